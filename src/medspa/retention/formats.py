"""The two portable history formats a clinic can bring from any system (CSV with a header row).

`appointment-history` (one row per appointment):

    appointment_id, client_id, booked_at, starts_at, status, service, service_category, provider,
    location, price, reminder_sent, x_<name>...

- Required columns: `appointment_id` (unique), `client_id`, `starts_at` (ISO date or datetime) and
  `status` (one of `completed`, `no_show`, `cancelled`, `late_cancelled`). `booked_at` (ISO datetime) is
  optional: the column may be absent and a value may be empty (booking time unknown).
- Optional columns: `service`, `service_category`, `provider`, `location` (free text), `price` (a decimal
  amount in the clinic's currency, >= 0), `reminder_sent` (`0/1`, `true/false`, `yes/no`).
- Any number of `x_<name>` attribute columns, numeric or categorical (empty = unknown).
- Times are the clinic's local wall-clock time. A value with an offset (`Z`, `+02:00`) is converted to UTC
  and the offset dropped, so a file should not mix naive and offset values.

`visit-transactions` (one row per transaction; a *visit* is a distinct day with at least one transaction):

    client_id, date, amount

- All three columns required; `date` is an ISO date (a datetime is accepted, its time ignored),
  `amount` a decimal (may be 0 or negative for refunds).

`client-survival` (one row per client's membership or package, for time-to-churn):

    client_id, tenure_days | tenure_months, event, x_<name>...

- `client_id` (unique), exactly one tenure column, whose name gives the unit (`tenure_days` or
  `tenure_months`): time from the start to the churn, or to the end of observation for a client still a
  member (a number >= 0); `event` is 1 if the client churned (cancelled, lapsed), 0 if still a member
  (censored). Any number of `x_<name>` covariates, numeric or categorical (empty = unknown); a covariate
  must be known at the start, not accumulate over the tenure (`survival` refuses those that do).

Reading validates every row. Problems are collected (missing columns by name, bad rows by line number,
column and value; a row with more values than the header has columns as column `(row)`) and raised
together as a `FormatError`; with `skip_bad_rows=True` bad rows are dropped and counted instead. Missing
columns are never skippable.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pandas as pd

HISTORY_REQUIRED: Final = ("appointment_id", "client_id", "starts_at", "status")
HISTORY_OPTIONAL: Final = (
    "booked_at",
    "service",
    "service_category",
    "provider",
    "location",
    "price",
    "reminder_sent",
)
HISTORY_COLUMNS: Final = (
    "appointment_id",
    "client_id",
    "booked_at",
    "starts_at",
    "status",
    "service",
    "service_category",
    "provider",
    "location",
    "price",
    "reminder_sent",
)
STATUSES: Final = frozenset({"completed", "no_show", "cancelled", "late_cancelled"})
TRANSACTION_COLUMNS: Final = ("client_id", "date", "amount")
SURVIVAL_TENURE_COLUMNS: Final = ("tenure_days", "tenure_months")

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})
_MAX_REPORTED_PROBLEMS: Final = 20


@dataclass(frozen=True)
class RowProblem:
    """One unparseable value: `line` is the 1-based line number in the file (the header is line 1)."""

    line: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}={self.value!r}: {self.reason}"


class FormatError(ValueError):
    """A file does not follow its format: names the missing columns and the bad rows."""

    def __init__(
        self,
        kind: str,
        *,
        missing_columns: Sequence[str] = (),
        unknown_columns: Sequence[str] = (),
        problems: Sequence[RowProblem] = (),
        bad_row_count: int = 0,
    ) -> None:
        self.kind = kind
        self.missing_columns = tuple(missing_columns)
        self.unknown_columns = tuple(unknown_columns)
        self.problems = tuple(problems)
        self.bad_row_count = bad_row_count
        super().__init__(self._message())

    def _message(self) -> str:
        parts: list[str] = []
        if self.missing_columns:
            parts.append(f"{self.kind}: missing column(s): {', '.join(self.missing_columns)}")
        if self.unknown_columns:
            parts.append(
                f"{self.kind}: unknown column(s): {', '.join(self.unknown_columns)} "
                "(rename attribute columns to x_<name>)"
            )
        if self.problems:
            shown = "; ".join(str(p) for p in self.problems[:_MAX_REPORTED_PROBLEMS])
            more = len(self.problems) - _MAX_REPORTED_PROBLEMS
            suffix = f"; and {more} more" if more > 0 else ""
            parts.append(
                f"{self.kind}: {self.bad_row_count} bad row(s): {shown}{suffix} "
                "(use --skip-bad-rows to drop them)"
            )
        return "\n".join(parts) or f"{self.kind}: invalid file"


@dataclass
class ReadResult:
    """Rows that passed validation, with how many were skipped and why (first problems kept)."""

    frame: pd.DataFrame
    skipped_rows: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def parse_datetime(value: str) -> datetime:
    """Parse an ISO date or datetime; an offset is converted to UTC and dropped (naive result)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_date(value: str) -> date:
    """Parse an ISO date (or datetime, whose time of day is ignored)."""
    text = value.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return parse_datetime(text).date()


def parse_bool(value: str) -> bool:
    """Parse `0/1`, `true/false`, `yes/no` (case-insensitive)."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected 0/1, true/false or yes/no")


def parse_amount(value: str) -> float:
    """Parse a finite decimal amount."""
    number = float(value.strip())
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


_EXTRA_FIELDS: Final = "\0extra"  # a row's values beyond the header's columns (never a column name)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (names stripped) and every row with its line number (the file is read whole). A row with
    more values than the header has columns (an unquoted comma in a value shifts every column after it)
    keeps its extra values under `_EXTRA_FIELDS`, for `_collect` to name it."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, restkey=_EXTRA_FIELDS)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [
            (
                reader.line_num,
                {k: (",".join(v) if isinstance(v, list) else v or "") for k, v in row.items()},
            )
            for row in reader
        ]
    return header, rows


def _unique_id_problems(row: dict[str, str], column: str, line: int, seen_ids: set[str]) -> list[RowProblem]:
    """An empty or already seen identifier in `column`."""
    value = row[column].strip()
    if not value:
        return [RowProblem(line, column, "", "empty")]
    if value in seen_ids:
        return [RowProblem(line, column, value, "duplicate")]
    return []


def _check_history_row(row: dict[str, str], line: int, seen_ids: set[str]) -> list[RowProblem]:
    problems = _unique_id_problems(row, "appointment_id", line, seen_ids)
    if not row["client_id"].strip():
        problems.append(RowProblem(line, "client_id", "", "empty"))
    starts_at: datetime | None = None
    try:
        starts_at = parse_datetime(row["starts_at"])
    except ValueError:
        problems.append(RowProblem(line, "starts_at", row["starts_at"], "not an ISO date or datetime"))
    if row["status"].strip() not in STATUSES:
        problems.append(
            RowProblem(line, "status", row["status"], f"not one of {', '.join(sorted(STATUSES))}")
        )
    booked_text = row.get("booked_at", "").strip()
    if booked_text:
        try:
            booked_at = parse_datetime(booked_text)
        except ValueError:
            problems.append(RowProblem(line, "booked_at", booked_text, "not an ISO datetime"))
        else:
            if starts_at is not None and booked_at.date() > starts_at.date():
                problems.append(RowProblem(line, "booked_at", booked_text, "after the appointment day"))
    price_text = row.get("price", "").strip()
    if price_text:
        try:
            if parse_amount(price_text) < 0:
                problems.append(RowProblem(line, "price", price_text, "negative"))
        except ValueError:
            problems.append(RowProblem(line, "price", price_text, "not a number"))
    reminder_text = row.get("reminder_sent", "").strip()
    if reminder_text:
        try:
            parse_bool(reminder_text)
        except ValueError as error:
            problems.append(RowProblem(line, "reminder_sent", reminder_text, str(error)))
    return problems


def _collect(
    kind: str,
    rows: Iterable[tuple[int, dict[str, str]]],
    check: Any,
    *,
    skip_bad_rows: bool,
) -> tuple[list[dict[str, str]], list[RowProblem], int]:
    good: list[dict[str, str]] = []
    problems: list[RowProblem] = []
    bad_rows = 0
    seen: set[str] = set()
    for line, row in rows:
        extra = row.pop(_EXTRA_FIELDS, None)
        row_problems: list[RowProblem] = check(row, line, seen)
        if extra is not None:
            row_problems.append(
                RowProblem(line, "(row)", extra, f"more values than the header's {len(row)} columns")
            )
        if row_problems:
            bad_rows += 1
            if len(problems) < 1000:
                problems.extend(row_problems)
            continue
        if "appointment_id" in row:
            seen.add(row["appointment_id"].strip())
        good.append(row)
    if bad_rows and not skip_bad_rows:
        raise FormatError(kind, problems=problems, bad_row_count=bad_rows)
    return good, problems, bad_rows


def read_appointment_history(path: Path, *, skip_bad_rows: bool = False) -> ReadResult:
    """Read and validate an `appointment-history` CSV into a typed frame.

    Columns of the frame: every standard column (absent optional ones filled with missing values),
    `booked_at`/`starts_at` as naive `datetime64[ns]` (local wall time), `price` as float,
    `reminder_sent` as nullable boolean-as-float (1.0/0.0/NaN), strings elsewhere; `x_*` columns are
    numeric when every non-empty value parses as a number, else strings. Raises `FormatError`.
    """
    import pandas as pd

    header, rows = _read_rows(path)
    missing = [c for c in HISTORY_REQUIRED if c not in header]
    unknown = [c for c in header if c not in HISTORY_COLUMNS and not c.startswith("x_")]
    if missing or unknown:
        raise FormatError("appointment-history", missing_columns=missing, unknown_columns=unknown)
    good, problems, bad_rows = _collect(
        "appointment-history", rows, _check_history_row, skip_bad_rows=skip_bad_rows
    )
    frame = pd.DataFrame(good, columns=header, dtype=object)
    for column in HISTORY_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    return ReadResult(frame=_type_history(frame), skipped_rows=bad_rows, problems=problems)


def _type_history(frame: pd.DataFrame) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    out["appointment_id"] = frame["appointment_id"].str.strip()
    out["client_id"] = frame["client_id"].str.strip()
    out["booked_at"] = pd.Series(
        [parse_datetime(v) if v.strip() else None for v in frame["booked_at"]],
        index=frame.index,
        dtype="datetime64[ns]",
    )
    out["starts_at"] = pd.Series(
        [parse_datetime(v) for v in frame["starts_at"]], index=frame.index, dtype="datetime64[ns]"
    )
    out["status"] = frame["status"].str.strip()
    for column in ("service", "service_category", "provider", "location"):
        out[column] = frame[column].str.strip()
    out["price"] = [parse_amount(v) if v.strip() else np.nan for v in frame["price"]]
    out["reminder_sent"] = [float(parse_bool(v)) if v.strip() else np.nan for v in frame["reminder_sent"]]
    for column in frame.columns:
        if column.startswith("x_"):
            out[column] = _attribute_column(frame[column])
    return out.reset_index(drop=True)


def _attribute_column(values: pd.Series[Any]) -> pd.Series[Any]:
    import pandas as pd

    stripped = values.astype(str).str.strip()
    non_empty = stripped != ""
    present: pd.Series[Any] = stripped.where(non_empty)
    numeric: pd.Series[Any] = pd.to_numeric(present, errors="coerce")
    if bool(numeric[non_empty].notna().all()):
        return numeric.astype(float)
    return present


def _check_transaction_row(row: dict[str, str], line: int, seen_ids: set[str]) -> list[RowProblem]:
    del seen_ids
    problems: list[RowProblem] = []
    if not row["client_id"].strip():
        problems.append(RowProblem(line, "client_id", "", "empty"))
    try:
        parse_date(row["date"])
    except ValueError:
        problems.append(RowProblem(line, "date", row["date"], "not an ISO date"))
    try:
        parse_amount(row["amount"])
    except ValueError:
        problems.append(RowProblem(line, "amount", row["amount"], "not a number"))
    return problems


def read_visit_transactions(path: Path, *, skip_bad_rows: bool = False) -> ReadResult:
    """Read and validate a `visit-transactions` CSV: `client_id` (str), `date` (datetime64 at midnight),
    `amount` (float). Extra columns are refused. Raises `FormatError`."""

    header, rows = _read_rows(path)
    missing = [c for c in TRANSACTION_COLUMNS if c not in header]
    unknown = [c for c in header if c not in TRANSACTION_COLUMNS]
    if missing or unknown:
        raise FormatError("visit-transactions", missing_columns=missing, unknown_columns=unknown)
    good, problems, bad_rows = _collect(
        "visit-transactions", rows, _check_transaction_row, skip_bad_rows=skip_bad_rows
    )
    frame = transactions_frame((r["client_id"].strip(), r["date"], r["amount"]) for r in good)
    return ReadResult(frame=frame, skipped_rows=bad_rows, problems=problems)


def _check_survival_row(row: dict[str, str], line: int, seen_ids: set[str]) -> list[RowProblem]:
    problems = _unique_id_problems(row, "client_id", line, seen_ids)
    seen_ids.add(row["client_id"].strip())
    tenure_column = next(c for c in SURVIVAL_TENURE_COLUMNS if c in row)
    tenure_text = row[tenure_column]
    try:
        tenure = parse_amount(tenure_text)
    except ValueError:
        problems.append(RowProblem(line, tenure_column, tenure_text, "not a number"))
    else:
        if tenure < 0:
            problems.append(RowProblem(line, tenure_column, tenure_text, "negative tenure"))
    if row["event"].strip() not in {"0", "1"}:
        problems.append(RowProblem(line, "event", row["event"], "not 0 or 1"))
    return problems


def read_client_survival(path: Path, *, skip_bad_rows: bool = False) -> tuple[ReadResult, str]:
    """Read and validate a `client-survival` CSV. Returns the frame (`client_id` str, `tenure` float,
    `event` int 0/1, `x_*` numeric when every non-empty value is a number, else strings) and the tenure
    unit (`days` or `months`). Raises `FormatError` naming missing columns and bad rows (line, column,
    value, reason)."""
    import pandas as pd

    header, rows = _read_rows(path)
    tenures = [c for c in SURVIVAL_TENURE_COLUMNS if c in header]
    missing = [c for c in ("client_id", "event") if c not in header]
    if not tenures:
        missing.append("tenure_days or tenure_months")
    known = {"client_id", "event", *SURVIVAL_TENURE_COLUMNS}
    unknown = [c for c in header if c not in known and not c.startswith("x_")]
    unknown.extend(str(c) for c in tenures[1:])
    if missing or unknown:
        raise FormatError("client-survival", missing_columns=missing, unknown_columns=unknown)
    good, problems, bad_rows = _collect(
        "client-survival", rows, _check_survival_row, skip_bad_rows=skip_bad_rows
    )
    frame = pd.DataFrame(good, columns=header, dtype=object)
    out = pd.DataFrame(index=frame.index)
    out["client_id"] = frame["client_id"].str.strip()
    out["tenure"] = [parse_amount(v) for v in frame[tenures[0]]]
    out["event"] = [int(v.strip()) for v in frame["event"]]
    for column in header:
        if column.startswith("x_"):
            out[column] = _attribute_column(frame[column])
    unit = tenures[0].removeprefix("tenure_")
    return ReadResult(frame=out.reset_index(drop=True), skipped_rows=bad_rows, problems=problems), unit


def history_frame(rows: Iterable[Sequence[object]]) -> pd.DataFrame:
    """The typed frame `read_appointment_history` returns, from rows in `HISTORY_COLUMNS` order (as they
    would be written to the CSV file; None = empty). Rows are not validated: this is for rows a program
    produced, such as the live database's, whose `status` may also be a live one (`booked`...)."""
    import pandas as pd

    text = [["" if v is None else str(v) for v in row] for row in rows]
    return _type_history(pd.DataFrame(text, columns=list(HISTORY_COLUMNS), dtype=object))


def transactions_frame(rows: Iterable[Sequence[object]]) -> pd.DataFrame:
    """The typed frame `read_visit_transactions` returns, from `(client_id, date, amount)` rows."""
    import pandas as pd

    text = [[str(v) for v in row] for row in rows]
    return pd.DataFrame(
        {
            "client_id": [r[0] for r in text],
            "date": pd.to_datetime([parse_date(r[1]) for r in text]).astype("datetime64[ns]"),
            "amount": [parse_amount(r[2]) for r in text],
        }
    )


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a header and rows as CSV (None -> empty); returns the number of rows written."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count

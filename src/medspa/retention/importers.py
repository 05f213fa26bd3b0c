"""Importers from two public data sets into the portable formats (see `formats`).

- `import_noshow_brazil`: the Kaggle "Medical Appointment No Shows" file (Vitória, Brazil, 2016) ->
  `appointment-history`. Every appointment there was either attended or missed, so status is
  `completed` or `no_show`. Attributes become `x_age`, `x_sex`, `x_neighbourhood`, `x_scholarship`,
  `x_hypertension`, `x_diabetes`, `x_alcoholism`, `x_handicap`; `SMS_received` becomes `reminder_sent`.
  Known quirks are repaired, not dropped, and counted: a negative age is blanked, and a booking time after
  the appointment day (impossible) is blanked so the row keeps its label but no lead time.
- `import_cdnow`: the CDNOW master file (whitespace-separated: customer id, YYYYMMDD, number of CDs,
  dollars) -> `visit-transactions`. Customer ids lose their leading zeros.

Both raise `FormatError` naming missing columns and bad rows; with `skip_bad_rows=True` bad rows are
dropped and counted in the returned `ImportReport`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Final

from medspa.retention.formats import (
    HISTORY_COLUMNS,
    TRANSACTION_COLUMNS,
    FormatError,
    RowProblem,
    parse_datetime,
    write_rows,
)

BRAZIL_COLUMNS: Final = (
    "PatientId",
    "AppointmentID",
    "Gender",
    "ScheduledDay",
    "AppointmentDay",
    "Age",
    "Neighbourhood",
    "Scholarship",
    "Hipertension",
    "Diabetes",
    "Alcoholism",
    "Handcap",
    "SMS_received",
    "No-show",
)
BRAZIL_ATTRIBUTES: Final = {
    "x_age": "Age",
    "x_sex": "Gender",
    "x_neighbourhood": "Neighbourhood",
    "x_scholarship": "Scholarship",
    "x_hypertension": "Hipertension",
    "x_diabetes": "Diabetes",
    "x_alcoholism": "Alcoholism",
    "x_handicap": "Handcap",
}
CDNOW_COLUMNS: Final = ("customer_id", "date", "number_of_cds", "dollar_value")


@dataclass
class ImportReport:
    """What an import wrote: rows in and out, skipped bad rows, and repairs by kind."""

    rows_read: int = 0
    rows_written: int = 0
    skipped_rows: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)


def _id_text(value: str) -> str:
    """An id written as an integer or float (`2.98725e+13` or `29872499824296.0`) -> digits."""
    text = value.strip()
    if text.isdigit():
        return text.lstrip("0") or "0"
    number = float(text)
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ValueError("not a non-negative integer id")
    return str(int(number))


def _client_id_text(value: str) -> str:
    """A patient id: integral values as digits; a few ids in the file are fractional (`9377952927E-5`)
    and are kept as written, since an id is only compared for equality."""
    text = value.strip()
    if not text:
        raise ValueError("empty")
    try:
        return _id_text(text)
    except ValueError:
        return text


def _flag(value: str) -> str:
    text = value.strip()
    if text not in {"0", "1"}:
        raise ValueError("expected 0 or 1")
    return text


def import_noshow_brazil(source: Path, destination: Path, *, skip_bad_rows: bool = False) -> ImportReport:
    """Convert `KaggleV2-May-2016.csv` to an `appointment-history` CSV at `destination`.

    Raises `FormatError` (nothing written) on missing columns, or on bad rows unless `skip_bad_rows`.
    """
    report = ImportReport()
    out_rows: list[list[object]] = []
    bad_rows = 0
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [c for c in BRAZIL_COLUMNS if c not in header]
        if missing:
            raise FormatError("noshow-brazil", missing_columns=missing)
        for row in reader:
            report.rows_read += 1
            line = reader.line_num
            converted, row_problems = _convert_brazil_row(row, line, report.repairs)
            if row_problems:
                bad_rows += 1
                if len(report.problems) < 1000:
                    report.problems.extend(row_problems)
                continue
            out_rows.append(converted)
    if bad_rows and not skip_bad_rows:
        raise FormatError("noshow-brazil", problems=report.problems, bad_row_count=bad_rows)
    report.skipped_rows = bad_rows
    columns = [*HISTORY_COLUMNS, *BRAZIL_ATTRIBUTES]
    report.rows_written = write_rows(destination, columns, out_rows)
    return report


def _convert_brazil_row(
    row: dict[str, str], line: int, repairs: dict[str, int]
) -> tuple[list[object], list[RowProblem]]:
    problems: list[RowProblem] = []

    def field_value(column: str, parse: Callable[[str], str]) -> str:
        raw = row.get(column) or ""
        try:
            return parse(raw)
        except ValueError as error:
            problems.append(RowProblem(line, column, raw, str(error)))
            return ""

    client_id = field_value("PatientId", _client_id_text)
    appointment_id = field_value("AppointmentID", _id_text)
    booked: datetime | None = None
    starts: date | None = None
    try:
        booked = parse_datetime(row.get("ScheduledDay") or "")
    except ValueError:
        problems.append(
            RowProblem(line, "ScheduledDay", row.get("ScheduledDay") or "", "not an ISO datetime")
        )
    try:
        starts = parse_datetime(row.get("AppointmentDay") or "").date()
    except ValueError:
        problems.append(
            RowProblem(line, "AppointmentDay", row.get("AppointmentDay") or "", "not an ISO date")
        )
    outcome = (row.get("No-show") or "").strip()
    if outcome not in {"Yes", "No"}:
        problems.append(RowProblem(line, "No-show", outcome, "expected Yes or No"))
    sex = (row.get("Gender") or "").strip()
    if sex not in {"F", "M"}:
        problems.append(RowProblem(line, "Gender", sex, "expected F or M"))
    age_text = (row.get("Age") or "").strip()
    age: int | None = None
    try:
        age = int(age_text)
    except ValueError:
        problems.append(RowProblem(line, "Age", age_text, "not an integer"))
    flags = {
        name: field_value(column, _flag)
        for name, column in BRAZIL_ATTRIBUTES.items()
        if column in {"Scholarship", "Hipertension", "Diabetes", "Alcoholism"}
    }
    handicap = (row.get("Handcap") or "").strip()
    if handicap not in {"0", "1", "2", "3", "4"}:
        problems.append(RowProblem(line, "Handcap", handicap, "expected 0-4"))
    reminder = field_value("SMS_received", _flag)
    if problems or booked is None or starts is None:
        return [], problems
    booked_text = booked.isoformat()
    if booked.date() > starts:
        repairs["booked after the appointment day: booked_at blanked"] = (
            repairs.get("booked after the appointment day: booked_at blanked", 0) + 1
        )
        booked_text = ""
    if age is not None and age < 0:
        repairs["negative age: x_age blanked"] = repairs.get("negative age: x_age blanked", 0) + 1
        age = None
    converted: list[object] = [
        appointment_id,
        client_id,
        booked_text,
        starts.isoformat(),
        "no_show" if outcome == "Yes" else "completed",
        "",
        "",
        "",
        "",
        "",
        reminder,
        age,
        sex,
        (row.get("Neighbourhood") or "").strip(),
        flags["x_scholarship"],
        flags["x_hypertension"],
        flags["x_diabetes"],
        flags["x_alcoholism"],
        handicap,
    ]
    return converted, []


def import_cdnow(source: Path, destination: Path, *, skip_bad_rows: bool = False) -> ImportReport:
    """Convert `CDNOW_master.txt` to a `visit-transactions` CSV at `destination`.

    The file may start with the header `customer_id date number_of_cds dollar_value`; without it the four
    columns are taken in that order. Raises `FormatError` (nothing written) on a short header or bad rows
    unless `skip_bad_rows`.
    """
    report = ImportReport()
    out_rows: list[list[object]] = []
    bad_rows = 0
    with source.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if line_number == 1 and not parts[0].isdigit():
                missing = [c for c in CDNOW_COLUMNS if c not in parts]
                if missing:
                    raise FormatError("cdnow", missing_columns=missing)
                continue
            report.rows_read += 1
            row_problems = _check_cdnow_parts(parts, line_number)
            if row_problems:
                bad_rows += 1
                if len(report.problems) < 1000:
                    report.problems.extend(row_problems)
                continue
            day = datetime.strptime(parts[1], "%Y%m%d").date()  # noqa: DTZ007  (a date, no time zone)
            out_rows.append([parts[0].lstrip("0") or "0", day.isoformat(), parts[3]])
    if bad_rows and not skip_bad_rows:
        raise FormatError("cdnow", problems=report.problems, bad_row_count=bad_rows)
    report.skipped_rows = bad_rows
    report.rows_written = write_rows(destination, TRANSACTION_COLUMNS, out_rows)
    return report


def _check_cdnow_parts(parts: list[str], line: int) -> list[RowProblem]:
    if len(parts) != len(CDNOW_COLUMNS):
        return [
            RowProblem(line, "*", " ".join(parts), f"expected {len(CDNOW_COLUMNS)} fields, got {len(parts)}")
        ]
    problems: list[RowProblem] = []
    if not parts[0].isdigit():
        problems.append(RowProblem(line, "customer_id", parts[0], "not an integer id"))
    try:
        datetime.strptime(parts[1], "%Y%m%d")  # noqa: DTZ007
    except ValueError:
        problems.append(RowProblem(line, "date", parts[1], "not a YYYYMMDD date"))
    try:
        amount = float(parts[3])
        if not math.isfinite(amount):
            raise ValueError
    except ValueError:
        problems.append(RowProblem(line, "dollar_value", parts[3], "not a number"))
    return problems

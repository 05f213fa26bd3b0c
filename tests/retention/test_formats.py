from __future__ import annotations

from pathlib import Path

import pytest

from medspa.retention.formats import (
    FormatError,
    read_appointment_history,
    read_client_survival,
    read_visit_transactions,
)
from tests.retention.factories import write_csv

HEADER = ["appointment_id", "client_id", "booked_at", "starts_at", "status", "price", "x_age", "x_tier"]


def test_history_is_read_and_typed(tmp_path: Path) -> None:
    # given a history with an offset booking time, an empty booking time and attribute columns
    path = write_csv(
        tmp_path / "h.csv",
        HEADER,
        [
            ["a1", "c1", "2024-03-01T09:30:00Z", "2024-03-05", "completed", "120.50", "34", "gold"],
            ["a2", "c1", "", "2024-03-09T14:00:00", "no_show", "", "", "silver"],
        ],
    )
    # when it is read
    result = read_appointment_history(path)
    # then the values are typed, absent optional columns exist, and attributes keep their kind
    frame = result.frame
    assert result.skipped_rows == 0
    assert list(frame["appointment_id"]) == ["a1", "a2"]
    assert str(frame.loc[0, "booked_at"]) == "2024-03-01 09:30:00"
    assert frame["booked_at"].isna().tolist() == [False, True]
    assert str(frame.loc[1, "starts_at"]) == "2024-03-09 14:00:00"
    assert frame.loc[0, "price"] == 120.5
    assert frame["service"].tolist() == ["", ""]
    assert frame.loc[0, "x_age"] == 34.0
    assert frame["x_tier"].tolist() == ["gold", "silver"]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    # given a history without status and starts_at
    path = write_csv(tmp_path / "h.csv", ["appointment_id", "client_id", "when"], [["a1", "c1", "x"]])
    # when it is read, then the error names both missing columns and the unknown one
    with pytest.raises(FormatError) as raised:
        read_appointment_history(path)
    assert raised.value.missing_columns == ("starts_at", "status")
    assert raised.value.unknown_columns == ("when",)
    assert "missing column(s): starts_at, status" in str(raised.value)


def test_bad_rows_are_named_or_skipped(tmp_path: Path) -> None:
    # given one good row and three bad ones (bad date, unknown status, duplicate id)
    rows = [
        ["a1", "c1", "", "2024-03-05", "completed", "", "", ""],
        ["a2", "c1", "", "05/03/2024", "completed", "", "", ""],
        ["a3", "c2", "", "2024-03-06", "showed", "", "", ""],
        ["a1", "c3", "", "2024-03-07", "completed", "", "", ""],
    ]
    path = write_csv(tmp_path / "h.csv", HEADER, rows)
    # when it is read strictly, then every bad row is named by line, column and value
    with pytest.raises(FormatError) as raised:
        read_appointment_history(path)
    assert raised.value.bad_row_count == 3
    assert [(p.line, p.column, p.value) for p in raised.value.problems] == [
        (3, "starts_at", "05/03/2024"),
        (4, "status", "showed"),
        (5, "appointment_id", "a1"),
    ]
    # when it is read with skip_bad_rows, then only the good row is kept and three are counted
    result = read_appointment_history(path, skip_bad_rows=True)
    assert result.frame["appointment_id"].tolist() == ["a1"]
    assert result.skipped_rows == 3


def test_booking_after_the_appointment_day_is_a_bad_row(tmp_path: Path) -> None:
    row = ["a1", "c1", "2024-03-06T08:00:00", "2024-03-05", "no_show", "", "", ""]
    path = write_csv(tmp_path / "h.csv", HEADER, [row])
    with pytest.raises(FormatError) as raised:
        read_appointment_history(path)
    problems = [(p.column, p.reason) for p in raised.value.problems]
    assert problems == [("booked_at", "after the appointment day")]


def test_transactions_are_read_and_validated(tmp_path: Path) -> None:
    # given two transactions and one with an unparseable amount
    path = write_csv(
        tmp_path / "t.csv",
        ["client_id", "date", "amount"],
        [["7", "1997-01-01", "11.77"], ["7", "1997-01-01T15:00:00", "3"], ["8", "1997-01-02", "ten"]],
    )
    # when read strictly, then the bad amount is named
    with pytest.raises(FormatError) as raised:
        read_visit_transactions(path)
    assert [(p.line, p.column) for p in raised.value.problems] == [(4, "amount")]
    # when read with skip_bad_rows, then the two good rows remain, dates at midnight
    result = read_visit_transactions(path, skip_bad_rows=True)
    assert result.skipped_rows == 1
    assert result.frame["amount"].tolist() == [11.77, 3.0]
    assert [str(d) for d in result.frame["date"]] == ["1997-01-01 00:00:00", "1997-01-01 00:00:00"]


def test_transactions_missing_amount_column_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["client_id", "date"], [["7", "1997-01-01"]])
    with pytest.raises(FormatError, match="missing column\\(s\\): amount"):
        read_visit_transactions(path)


def test_history_with_only_the_required_columns_is_read(tmp_path: Path) -> None:
    # given the four required columns and nothing else
    path = write_csv(
        tmp_path / "h.csv",
        ["appointment_id", "client_id", "starts_at", "status"],
        [["a1", "c1", "2024-03-05T10:30:00", "late_cancelled"]],
    )
    # when read, then the optional columns exist and are empty or missing
    frame = read_appointment_history(path).frame
    assert frame["status"].tolist() == ["late_cancelled"]
    assert frame["booked_at"].isna().tolist() == [True]
    assert frame["reminder_sent"].isna().tolist() == [True]
    assert not any(column.startswith("x_") for column in frame.columns)


def test_a_row_with_more_values_than_the_header_is_named(tmp_path: Path) -> None:
    # given files in each format where an unquoted comma in a value shifted a row (one value too many)
    history = write_csv(
        tmp_path / "h.csv",
        HEADER,
        [
            ["a1", "c1", "", "2024-03-05", "completed", "", "34", "gold"],
            ["a2", "c2", "", "2024-03-06", "completed", "", "41", "Smith", " Jr"],
        ],
    )
    survival = write_csv(
        tmp_path / "s.csv",
        ["client_id", "tenure_months", "event", "x_plan"],
        [["m1", "4", "1", "basic"], ["m2", "7", "0", "plus", "annual"]],
    )
    visits = write_csv(tmp_path / "t.csv", ["client_id", "date", "amount"], [["c1", "2024-03-05", "10", "5"]])
    # when they are read, then the row is named with its extra value, and skipping drops only it
    with pytest.raises(FormatError, match=r"line 3: \(row\)=' Jr': more values than the header's 8 columns"):
        read_appointment_history(history)
    with pytest.raises(
        FormatError, match=r"line 3: \(row\)='annual': more values than the header's 4 columns"
    ):
        read_client_survival(survival)
    with pytest.raises(FormatError, match=r"line 2: \(row\)='5': more values than the header's 3 columns"):
        read_visit_transactions(visits)
    skipped = read_appointment_history(history, skip_bad_rows=True)
    assert (skipped.skipped_rows, skipped.frame["appointment_id"].tolist()) == (1, ["a1"])

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medspa.cli import app
from medspa.retention.formats import FormatError, read_appointment_history, read_visit_transactions
from medspa.retention.importers import BRAZIL_COLUMNS, import_cdnow, import_noshow_brazil
from tests.retention.factories import write_csv

BRAZIL_ROWS = [
    # PatientId, AppointmentID, Gender, ScheduledDay, AppointmentDay, Age, Neighbourhood, Scholarship,
    # Hipertension, Diabetes, Alcoholism, Handcap, SMS_received, No-show
    ["29872499824296", "5642903", "F", "2016-04-29T18:38:08Z", "2016-04-29T00:00:00Z", "62", "JD", "0", "1",
     "0", "0", "0", "0", "No"],
    ["2.98724998242960E+13", "5642904", "F", "2016-04-20T08:00:00Z", "2016-05-02T00:00:00Z", "-1", "JD", "0",
     "1", "0", "0", "1", "1", "Yes"],
    ["9377952927E-5", "5642905", "M", "2016-05-10T10:51:53Z", "2016-05-09T00:00:00Z", "7", "CENTRO", "1", "0",
     "0", "0", "0", "0", "Yes"],
]  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_brazil_rows_become_history_with_repairs_counted(tmp_path: Path) -> None:
    # given three Brazil rows: a clean one, a float-written id with age -1, and a booking made after the
    # appointment day
    source = write_csv(tmp_path / "kaggle.csv", list(BRAZIL_COLUMNS), BRAZIL_ROWS)
    # when imported
    report = import_noshow_brazil(source, tmp_path / "history.csv")
    # then every row is written, the two quirks are repaired and counted, and the output reads back
    assert (report.rows_read, report.rows_written, report.skipped_rows) == (3, 3, 0)
    assert report.repairs == {
        "booked after the appointment day: booked_at blanked": 1,
        "negative age: x_age blanked": 1,
    }
    rows = _read(tmp_path / "history.csv")
    assert [r["client_id"] for r in rows] == ["29872499824296", "29872499824296", "9377952927E-5"]
    assert [r["status"] for r in rows] == ["completed", "no_show", "no_show"]
    assert [r["booked_at"] for r in rows] == ["2016-04-29T18:38:08", "2016-04-20T08:00:00", ""]
    assert [r["starts_at"] for r in rows] == ["2016-04-29", "2016-05-02", "2016-05-09"]
    assert [r["x_age"] for r in rows] == ["62", "", "7"]
    assert [r["reminder_sent"] for r in rows] == ["0", "1", "0"]
    assert read_appointment_history(tmp_path / "history.csv").frame.shape == (3, 19)


def test_brazil_missing_columns_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    columns = [c for c in BRAZIL_COLUMNS if c not in {"No-show", "Gender"}]
    source = write_csv(tmp_path / "kaggle.csv", columns, [])
    with pytest.raises(FormatError) as raised:
        import_noshow_brazil(source, tmp_path / "history.csv")
    assert raised.value.missing_columns == ("Gender", "No-show")
    assert not (tmp_path / "history.csv").exists()


def test_import_command_skips_bad_rows_and_reports_how_many(tmp_path: Path) -> None:
    # given one good row and one with an unparseable appointment day
    bad = list(BRAZIL_ROWS[0])
    bad[1], bad[4] = "5642999", "someday"
    source = write_csv(tmp_path / "kaggle.csv", list(BRAZIL_COLUMNS), [BRAZIL_ROWS[0], bad])
    runner = CliRunner()
    output = tmp_path / "history.csv"
    # when imported without the option, then it fails naming the row and writes nothing
    failed = runner.invoke(app, ["import", "noshow-brazil", str(source), "-o", str(output)])
    assert failed.exit_code == 2
    assert "line 3: AppointmentDay='someday'" in failed.output
    assert not output.exists()
    # when imported with --skip-bad-rows, then the good row is written and the skip is reported
    arguments = ["import", "noshow-brazil", str(source), "-o", str(output), "--skip-bad-rows"]
    skipped = runner.invoke(app, arguments)
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 bad row(s)" in skipped.output
    assert [r["appointment_id"] for r in _read(output)] == ["5642903"]


def test_cdnow_becomes_visit_transactions(tmp_path: Path) -> None:
    # given the CDNOW layout: a header, zero-padded ids, YYYYMMDD dates, one malformed line
    source = tmp_path / "cdnow.txt"
    source.write_text(
        " customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n"
        " 00002 19970112  2   89.00\r\n"
        " 00002 1997011x  1   12.00\r\n"
    )
    # when imported strictly, then the bad date is named
    with pytest.raises(FormatError) as raised:
        import_cdnow(source, tmp_path / "t.csv")
    assert [(p.line, p.column, p.value) for p in raised.value.problems] == [(4, "date", "1997011x")]
    # when imported skipping bad rows, then two transactions with plain ids remain
    report = import_cdnow(source, tmp_path / "t.csv", skip_bad_rows=True)
    assert (report.rows_read, report.rows_written, report.skipped_rows) == (3, 2, 1)
    frame = read_visit_transactions(tmp_path / "t.csv").frame
    assert frame["client_id"].tolist() == ["1", "2"]
    assert frame["amount"].tolist() == [11.77, 89.0]


def test_cdnow_header_missing_a_column_is_named(tmp_path: Path) -> None:
    source = tmp_path / "cdnow.txt"
    source.write_text("customer_id date dollar_value\n00001 19970101 11.77\n")
    with pytest.raises(FormatError) as raised:
        import_cdnow(source, tmp_path / "t.csv")
    assert raised.value.missing_columns == ("number_of_cds",)


def test_train_list_activate_through_the_cli(tmp_path: Path) -> None:
    # given a simulated history written in the portable format
    from tests.retention.factories import simulate_history

    history, _ = simulate_history(clients=300, days=30)
    frame = history.assign(
        booked_at=history["booked_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
        starts_at=history["starts_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
        reminder_sent=history["reminder_sent"].astype(int),
        price="",
    )
    frame.to_csv(tmp_path / "history.csv", index=False)
    runner = CliRunner()
    registry = str(tmp_path / "models")
    # when a model is trained into the registry, then it is listed but not active
    trained = runner.invoke(
        app,
        ["models", "train", "noshow", "--history", str(tmp_path / "history.csv"), "--train-end", "2024-03-28",
         "--registry", registry],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    version = trained.stdout.strip().splitlines()[-1]
    listed = runner.invoke(app, ["models", "list", "noshow", "--registry", registry])
    assert listed.stdout.startswith(f"  {version}  trained before 2024-03-28")
    # when activated, then it is marked; an unknown version is refused with a clear error
    activated = runner.invoke(app, ["models", "activate", "noshow", version, "--registry", registry])
    assert activated.exit_code == 0
    assert runner.invoke(app, ["models", "list", "--registry", registry]).stdout.startswith(f"* {version}")
    unknown = "20990101T000000Z-00000000"
    missing = runner.invoke(app, ["models", "activate", "noshow", unknown, "--registry", registry])
    assert missing.exit_code == 2
    assert "no noshow model 20990101T000000Z-00000000" in missing.output

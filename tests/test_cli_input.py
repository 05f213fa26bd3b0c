"""Bad input on the command line: one line naming the field or option, a non-zero exit, no traceback,
nothing stored."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from medspa.cli import app
from medspa.config import load_settings
from medspa.kit.db import engine_for, unit_of_work
from medspa.resources import service as resources
from medspa.security import service as security
from medspa.security.actors import system_actor

runner = CliRunner()
LOCATION = {"name": "Downtown", "time_zone": "America/New_York"}


@pytest.fixture
def location_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with the organization `demo` and one location made through the command line; the
    commands act within `demo` through MEDSPA_ORGANIZATION."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("MEDSPA_DATABASE_URL", url)
    monkeypatch.setenv("MEDSPA_ORGANIZATION", "demo")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    with unit_of_work(engine_for(url)) as session:
        security.create_organization(session, slug="demo", name="Demo")
    made = runner.invoke(app, ["locations", "create", "--data", json.dumps(LOCATION)])
    assert made.exit_code == 0, made.output
    return str(json.loads(made.stdout)["id"])


def locations() -> list[dict[str, object]]:
    """The organization's locations as they are stored now."""
    with unit_of_work(engine_for(load_settings().database_url), write=False) as session:
        actor = system_actor(security.get_organization(session, slug="demo").id)
        return [r.model_dump(mode="json") for r in resources.list_locations(session, actor=actor).items]


def refused(result: Result, words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert words in lines[0], lines[0]


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({**LOCATION, "name": "a\x00b"}, "name: must not contain a NUL character"),
        ({**LOCATION, "name": "n" * 201}, "name: String should have at most 200 characters"),
        (
            {**LOCATION, "opening_hours": [{"weekday": 0, "starts_at": "09:00:30", "ends_at": "17:00"}]},
            "opening_hours.0.starts_at: must be a wall-clock time",
        ),
        ({**LOCATION, "booking_horizon_days": 0}, "booking_horizon_days:"),
    ],
)
def test_create_with_bad_data_names_the_field_and_stores_nothing(
    location_id: str, payload: dict[str, object], words: str
) -> None:
    before = locations()
    refused(runner.invoke(app, ["locations", "create", "--data", json.dumps(payload)]), words)
    assert locations() == before


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"name": None}, "name: must not be null; leave it out to keep it"),
        ({"minimum_notice_minutes": 2**63}, "minimum_notice_minutes:"),
        (
            {"opening_hours": [{"weekday": 0, "starts_at": "09:00+05:00", "ends_at": "17:00"}]},
            "wall-clock time",
        ),
    ],
)
def test_update_with_bad_data_names_the_field_and_changes_nothing(
    location_id: str, payload: dict[str, object], words: str
) -> None:
    before = locations()
    refused(runner.invoke(app, ["locations", "update", location_id, "--data", json.dumps(payload)]), words)
    assert locations() == before


def test_a_payload_file_that_cannot_be_read_is_one_line(location_id: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    refused(runner.invoke(app, ["locations", "create", "--data", f"@{missing}"]), "--data: cannot read")
    refused(runner.invoke(app, ["locations", "create", "--data", "{"]), "--data: not JSON")


@pytest.mark.parametrize(
    ("at", "words"),
    [
        ("9999-12-31T23:59:59-14:00", "--at: must be between 1900-01-01 and 2199-12-31"),
        ("0001-01-01T00:00:00+14:00", "--at: must be between"),
        ("2027-01-01T10:00:00", "--at: must carry a UTC offset"),
    ],
)
def test_book_at_an_absurd_instant_is_one_line(location_id: str, at: str, words: str) -> None:
    some = str(uuid.uuid4())
    result = runner.invoke(
        app, ["book", "--client", some, "--service", some, "--location", location_id, "--at", at]
    )
    refused(result, words)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (
            ["slots", "--service", "{some}", "--location", "{location}", "--from", "9999-12-31"],
            "--from: must be between",
        ),
        (
            [
                "slots",
                "--service",
                "{some}",
                "--location",
                "{location}",
                "--from",
                "2026-12-01",
                "--to",
                "9999-12-31",
            ],
            "--to: must be between",
        ),
        (["optimize-day", "--location", "{location}", "--date", "0001-01-01"], "--date: must be between"),
    ],
)
def test_dates_out_of_range_are_one_line(location_id: str, arguments: list[str], words: str) -> None:
    filled = [a.format(some=uuid.uuid4(), location=location_id) for a in arguments]
    refused(runner.invoke(app, filled), words)


def test_an_offset_beyond_any_list_is_refused(location_id: str) -> None:
    result = runner.invoke(app, ["locations", "list", "--offset", str(2**63)])
    assert result.exit_code == 2
    assert "--offset" in result.output


def test_a_command_without_an_organization_is_refused(
    location_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No clinic is assumed: without --organization or MEDSPA_ORGANIZATION nothing is read or written."""
    monkeypatch.delenv("MEDSPA_ORGANIZATION")
    before = locations()
    for arguments in (["locations", "list"], ["locations", "create", "--data", json.dumps(LOCATION)]):
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2
        assert "Missing option '--organization'" in " ".join(result.output.split())
    assert locations() == before
    assert runner.invoke(app, ["locations", "list", "-o", "demo"]).exit_code == 0

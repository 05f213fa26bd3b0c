"""`medspa audit verify` and `medspa audit heads` on a private SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medspa.cli import app
from medspa.kit.db import engine_for, unit_of_work
from medspa.security import service as security
from medspa.security.actors import system_actor
from tests.factories import make_client

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("MEDSPA_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("MEDSPA_AUDIT_HEAD_FILE", raising=False)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    with unit_of_work(engine_for(f"sqlite:///{path}")) as session:
        organization = security.create_organization(session, slug="demo", name="Demo")
        for _ in range(3):
            make_client(session, actor=system_actor(organization.id, "test"))
    return path


def test_verify_passes_on_an_intact_trail_without_a_head_file(database: Path) -> None:
    result = runner.invoke(app, ["audit", "verify"])

    assert result.exit_code == 0, result.output
    assert "audit trail intact: 4 rows in 1 chains" in " ".join(result.output.split())
    assert "no head file" in result.output


def test_heads_then_verify_checks_against_the_head_file(database: Path) -> None:
    written = runner.invoke(app, ["audit", "heads"])
    assert written.exit_code == 0, written.output
    assert (database.parent / "audit-heads.jsonl").exists()

    result = runner.invoke(app, ["audit", "verify"])

    assert result.exit_code == 0, result.output
    assert "1 heads checked against" in " ".join(result.output.split())


def test_verify_exits_1_naming_an_edited_row(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        row_id = connection.execute("SELECT id FROM audit_events WHERE seq = 2").fetchone()[0]
        connection.execute("UPDATE audit_events SET action = action || 'x' WHERE id = ?", (row_id,))

    result = runner.invoke(app, ["audit", "verify"])

    assert result.exit_code == 1
    assert f"edited: row id {row_id} (seq 2)" in " ".join(result.output.split())

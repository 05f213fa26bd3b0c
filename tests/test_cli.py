"""The `medspa` command line on a private SQLite file."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medspa.cli import app

runner = CliRunner()


def flat(output: str) -> str:
    """The output with Rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("MEDSPA_DATABASE_URL", url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return url


def test_tokens_create_prints_a_token_that_authenticates(database: str) -> None:
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.security import service as security

    with unit_of_work(engine_for(database)) as session:
        security.create_organization(session, slug="demo", name="Demo")
    result = runner.invoke(app, ["tokens", "create", "--organization", "demo", "--role", "owner"])
    assert result.exit_code == 0, result.output
    token = re.findall(r"msp_[A-Za-z0-9_\-]{20,}", result.stdout)[-1]
    with unit_of_work(engine_for(database)) as session:
        actor = security.authenticate_token(session, token=token)
    assert actor.role.value == "owner"


def test_tokens_create_refuses_an_unknown_organization_or_role(database: str) -> None:
    unknown = runner.invoke(app, ["tokens", "create", "--organization", "nowhere", "--role", "owner"])
    assert unknown.exit_code == 1
    assert "organization nowhere not found" in flat(unknown.output)
    bad_role = runner.invoke(app, ["tokens", "create", "--organization", "demo", "--role", "janitor"])
    assert bad_role.exit_code == 2


def test_demo_seed_then_slots_then_book_then_models(database: str, tmp_path: Path) -> None:
    from medspa.catalog import service as catalog
    from medspa.clients import service as clients
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.resources import service as resources
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    seeded = runner.invoke(app, ["demo", "seed", "--clients", "30", "--past-days", "2", "--future-days", "2"])
    assert seeded.exit_code == 0, seeded.output
    assert "30 clients" in seeded.output
    again = runner.invoke(app, ["demo", "seed"])
    assert again.exit_code == 0
    assert "exists already" in again.output

    with unit_of_work(engine_for(database), write=False) as session:
        actor = system_actor(security.get_organization(session, slug="demo").id)
        location = resources.list_locations(session, actor=actor).items[0]
        botox = next(s for s in catalog.list_services(session, actor=actor).items if "Botox" in s.name)
        client = clients.list_clients(session, actor=actor, limit=1).items[0]
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) + timedelta(days=20)).date()
    while day.weekday() != 1:  # a Tuesday, when the clinic is open
        day += timedelta(days=1)
    listed = runner.invoke(
        app,
        [
            "slots",
            "-o",
            "demo",
            "--location",
            str(location.id),
            "--service",
            str(botox.id),
            "--from",
            day.isoformat(),
        ],
    )
    assert listed.exit_code == 0, listed.output
    first = re.search(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2})", listed.stdout)
    assert first is not None
    booked = runner.invoke(
        app,
        [
            "book",
            "--organization",
            "demo",
            "--client",
            str(client.id),
            "--service",
            str(botox.id),
            "--location",
            str(location.id),
            "--at",
            first.group(1),
        ],
    )
    assert booked.exit_code == 0, booked.output
    assert "booked" in booked.output
    twice = runner.invoke(
        app,
        [
            "book",
            "--organization",
            "demo",
            "--client",
            str(client.id),
            "--service",
            str(botox.id),
            "--location",
            str(location.id),
            "--at",
            first.group(1),
            "--provider",
            re.search(r"provider ([0-9a-f-]{36})", flat(booked.output)).group(1),  # type: ignore[union-attr]
        ],
    )
    assert twice.exit_code == 1
    assert "is already booked at that time" in flat(twice.output)

    # The day is optimized here and now (the job the worker would run), into a proposal; a closed day
    # is refused with the reason.
    where = ["--location", str(location.id), "--organization", "demo", "--time-limit", "1"]
    optimized = runner.invoke(app, ["optimize-day", *where, "--date", day.isoformat(), "--max-moves", "0"])
    assert optimized.exit_code == 0, optimized.output
    assert re.search(
        r"proposal [0-9a-f-]{36}: current \$[\d,.]+, proposed .*, 0 of at most 0 moved",
        flat(optimized.output),
    )
    sunday = day + timedelta(days=5)
    closed = runner.invoke(app, ["optimize-day", *where, "--date", sunday.isoformat()])
    assert closed.exit_code == 1
    assert f"the location is closed on Sunday, {sunday} (it has no opening hours on Sundays)" in flat(
        closed.output
    )

    # Two days of history are too little for the models; one trained from a file into the clinic's
    # registry is listed, activated (which scores the clinic), and a client's score can be read.
    from_database = runner.invoke(app, ["models", "train", "returns", "--organization", "demo"])
    assert from_database.exit_code == 2
    assert re.search(r"\d+ days of visits before \S+; a return model needs 21", flat(from_database.output))
    visits = tmp_path / "visits.csv"
    visits.write_text(
        "client_id,date,amount\n"
        + "".join(
            f"c{n},2026-0{month}-{1 + (n * 7 + month * 3) % 27:02d},100\n"
            for n in range(60)
            for month in range(1, 6)
            if month <= 1 + n % 5 and (n * month) % 3 != 1
        )
    )
    trained = runner.invoke(
        app,
        ["models", "train", "returns", "--organization", "demo", "--transactions", str(visits),
         "--train-end", "2026-06-01", "--activate"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    version = trained.stdout.strip().splitlines()[-1]
    assert f"clients (returns {version})" in flat(trained.output)
    listed = runner.invoke(app, ["models", "list", "returns", "--organization", "demo"])
    assert listed.stdout.startswith(f"* {version}  fitted to 2026-05-31")
    assert runner.invoke(app, ["models", "list", "noshow", "--organization", "demo"]).stdout == ""
    shown = runner.invoke(app, ["retention", "show", str(client.id), "--organization", "demo"])
    assert shown.exit_code == 0, shown.output
    assert f'"model_version": "{version}"' in shown.stdout
    assert f'"client_id": "{client.id}"' in shown.stdout


def test_records_can_be_created_read_updated_and_deactivated(database: str, tmp_path: Path) -> None:
    import json

    made = runner.invoke(app, ["organizations", "create", "--slug", "lumen", "--name", "Lumen"])
    assert made.exit_code == 0, made.output
    payload = tmp_path / "location.json"
    payload.write_text(json.dumps({"name": "Riverside", "time_zone": "America/New_York"}))
    created = runner.invoke(app, ["locations", "create", "-o", "lumen", "--data", f"@{payload}"])
    assert created.exit_code == 0, created.output
    location_id = json.loads(created.stdout)["id"]
    room = runner.invoke(
        app,
        [
            "rooms",
            "create",
            "-o",
            "lumen",
            "-d",
            json.dumps({"location_id": location_id, "name": "A", "room_type": "facial"}),
        ],
    )
    assert room.exit_code == 0, room.output
    updated = runner.invoke(
        app, ["locations", "update", location_id, "-o", "lumen", "-d", '{"name": "Uptown"}']
    )
    assert json.loads(updated.stdout)["name"] == "Uptown"
    shown = runner.invoke(app, ["locations", "show", location_id, "-o", "lumen"])
    assert json.loads(shown.stdout)["name"] == "Uptown"
    listed = runner.invoke(app, ["rooms", "list", "-o", "lumen"])
    assert [r["name"] for r in json.loads(listed.stdout)["items"]] == ["A"]
    gone = runner.invoke(app, ["locations", "deactivate", location_id, "-o", "lumen"])
    assert json.loads(gone.stdout)["is_active"] is False


def test_records_refuse_bad_payloads_naming_the_field(database: str) -> None:
    runner.invoke(app, ["organizations", "create", "--slug", "lumen", "--name", "Lumen"])
    bad_zone = runner.invoke(
        app, ["locations", "create", "-o", "lumen", "-d", '{"name": "X", "time_zone": "Nowhere/Land"}']
    )
    assert bad_zone.exit_code == 2
    assert "time_zone" in flat(bad_zone.output)
    not_json = runner.invoke(app, ["locations", "create", "-o", "lumen", "-d", "{name"])
    assert not_json.exit_code == 2
    assert "not JSON" in flat(not_json.output)
    missing = runner.invoke(app, ["clients", "show", "00000000-0000-4000-8000-000000000000", "-o", "lumen"])
    assert missing.exit_code == 2
    assert "not found" in flat(missing.output)
    listed = runner.invoke(app, ["locations", "list", "-o", "lumen"])
    assert '"items": []' in listed.stdout


def test_keys_rotate_rewraps_every_organization_and_records_still_read(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from medspa.clients import service as clients
    from medspa.clients.schemas import ClientCreate
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    key_file = tmp_path / "keys" / "medspa.keys"
    monkeypatch.setenv("MEDSPA_KEY_FILE", str(key_file))
    engine = engine_for(database)
    actors = []
    for slug in ("one", "two"):
        with unit_of_work(engine) as session:
            org = security.create_organization(session, slug=slug, name=slug)
            actor = system_actor(org.id, "test")
            data = ClientCreate(first_name="Nova", last_name=slug, email=f"nova@{slug}.example")
            actors.append((actor, clients.create_client(session, actor=actor, data=data).id))
    first_kek = json.loads(key_file.read_text())["current"]

    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "6 data keys of 2 organizations re-wrapped" in flat(rotated.output)
    document = json.loads(key_file.read_text())
    assert document["current"] != first_kek
    assert first_kek in document["keys"]  # kept until retired
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    retired = runner.invoke(app, ["keys", "rotate", "--retire"])
    assert retired.exit_code == 0, retired.output
    assert first_kek in flat(retired.output)
    assert len(json.loads(key_file.read_text())["keys"]) == 1
    for actor, client_id in actors:
        with unit_of_work(engine) as session:
            assert clients.get_client(session, actor=actor, client_id=client_id).first_name == "Nova"


def test_keys_rotate_refuses_a_key_file_others_may_read(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "open.keys"
    monkeypatch.setenv("MEDSPA_KEY_FILE", str(key_file))
    assert runner.invoke(app, ["keys", "rotate"]).exit_code == 0
    key_file.chmod(0o644)
    refused = runner.invoke(app, ["keys", "rotate"])
    assert refused.exit_code == 1
    assert "chmod 600" in flat(refused.output)


def test_integrations_add_prints_the_connection_id_last_and_never_the_secret(database: str) -> None:
    from medspa.integrations import service as integrations
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    with unit_of_work(engine_for(database)) as session:
        org = security.create_organization(session, slug="demo", name="Demo")
    added = runner.invoke(
        app, ["integrations", "add", "mindbody", "--organization", "demo", "--secret", "a-mindbody-secret"]
    )
    assert added.exit_code == 0, added.output
    assert "a-mindbody-secret" not in added.output
    connection_id = added.stdout.split()[-1]
    with unit_of_work(engine_for(database)) as session:
        listed = integrations.list_connections(session, actor=system_actor(org.id)).items
    assert [str(c.id) for c in listed] == [connection_id]
    bad = runner.invoke(
        app, ["integrations", "add", "standard", "--organization", "demo", "--secret", "whsec_x"]
    )
    assert bad.exit_code == 2
    assert "--secret" in flat(bad.output)
    unknown = runner.invoke(
        app, ["integrations", "add", "zenoti", "--organization", "nowhere", "--secret", "s" * 12]
    )
    assert unknown.exit_code == 1
    assert (
        runner.invoke(
            app, ["integrations", "add", "other", "--organization", "demo", "--secret", "s" * 12]
        ).exit_code
        == 2
    )


def test_integrations_add_with_polling_settings_then_poll_stores_what_the_source_has(database: str) -> None:
    from medspa.integrations.fakes import FakeMindbody, World
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.security import service as security

    with unit_of_work(engine_for(database)) as session:
        security.create_organization(session, slug="demo", name="Demo")
    world = World(seed=2)
    world.populate(clients=3, appointments=2)
    fake = FakeMindbody(world, api_key="fake-api-key-1", account="-99", secret="a-mindbody-secret")
    add = ["integrations", "add", "mindbody", "--organization", "demo", "--secret", "a-mindbody-secret"]
    with fake:
        polled = [*add, "--poll-url", fake.base_url, "--poll-account", "-99", "--poll-key", "fake-api-key-1"]
        added = runner.invoke(app, polled)
        assert added.exit_code == 0, added.output
        assert "fake-api-key-1" not in added.output
        connection = added.stdout.split()[-1]

        first = runner.invoke(app, ["integrations", "poll", "--connection", connection])
        again = runner.invoke(app, ["integrations", "poll", "--connection", connection])

        assert first.exit_code == again.exit_code == 0, first.output
        assert "2 pages read: 5 changes stored, 0 already in the inbox" in flat(first.output)
        assert "2 pages read: 0 changes stored, 5 already in the inbox" in flat(again.output)
    down = runner.invoke(app, ["integrations", "poll", "--connection", connection])
    assert down.exit_code == 1
    assert "polling stopped: GET /public/v6/client/clients: ConnectError" in flat(down.output)
    incomplete = runner.invoke(app, [*add, "--poll-url", "http://127.0.0.1:9"])
    assert incomplete.exit_code == 2
    assert "--poll-url: polling needs poll_url, poll_account and poll_key together" in flat(incomplete.output)
    assert runner.invoke(app, ["integrations", "poll", "--connection", "nope"]).exit_code == 2


def test_dev_fake_source_serves_its_api_and_sends_signed_webhooks_until_stopped(database: str) -> None:
    import threading

    import httpx

    from medspa.integrations import service as integrations
    from medspa.integrations.schemas import ConnectionCreate
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.security import service as security
    from medspa.security.actors import system_actor
    from tests.serving import free_port, running_server

    engine = engine_for(database)
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug="demo", name="Demo")
        data = ConnectionCreate(connector="zenoti", secret="a-zenoti-secret")
        connection = integrations.add_connection(session, actor=system_actor(org.id), data=data)
    port, outcome = free_port(), {}
    with running_server(engine) as server:
        command = ["dev", "fake-source", "zenoti", "--port", str(port), "--secret", "a-zenoti-secret"]
        command += ["--target", f"{server}{connection.webhook_path}", "--events", "4", "--rate", "40"]
        command += ["--duplicate", "0.5", "--reorder", "2", "--seconds", "1.5", "--account", "c1"]
        thread = threading.Thread(target=lambda: outcome.update(result=runner.invoke(app, command)))
        thread.start()
        answer = None
        for _ in range(100):
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/v1/appointments",
                    params={"center_id": "c1", "start_date": "2000-01-01", "end_date": "2100-01-01"},
                    headers={"Authorization": "apikey fake-api-key"},
                )
                break
            except httpx.ConnectError:
                threading.Event().wait(0.02)
        thread.join(timeout=20)
    assert answer is not None
    assert answer.status_code == 200
    assert answer.json()["page_info"]["total"] >= 40
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    assert f"fake zenoti serving http://127.0.0.1:{port}" in flat(result.output)
    assert "4 changes; webhooks:" in flat(result.output)
    with unit_of_work(engine, write=False) as session:
        inbox = integrations.list_inbox(session, actor=system_actor(org.id), connection_id=connection.id)
    counts = re.search(r"webhooks: (\d+) made, (\d+) acknowledged, 0 dropped", flat(result.output))
    assert counts is not None
    assert inbox.total == int(counts.group(1)) == int(counts.group(2))


def test_integrations_map_maps_a_service_of_the_source_to_ours(database: str) -> None:
    from medspa.integrations import mappings
    from medspa.kit.db import engine_for, unit_of_work
    from medspa.security import service as security
    from medspa.security.actors import system_actor
    from tests.factories import make_service

    with unit_of_work(engine_for(database)) as session:
        org = security.create_organization(session, slug="demo", name="Demo")
        service = make_service(session, actor=system_actor(org.id))
    added = runner.invoke(
        app, ["integrations", "add", "mindbody", "--organization", "demo", "--secret", "a-mindbody-secret"]
    )
    connection = added.stdout.split()[-1]
    mapped = runner.invoke(
        app,
        [
            "integrations",
            "map",
            "--connection",
            connection,
            "--kind",
            "service",
            "--external",
            "55",
            "--to",
            str(service.id),
        ],
    )
    assert mapped.exit_code == 0, mapped.output
    with unit_of_work(engine_for(database)) as session:
        listed = mappings.list_mappings(
            session, actor=system_actor(org.id), connection_id=uuid.UUID(connection)
        )
    assert [(m.kind, m.external_id, m.record_id) for m in listed.items] == [("service", "55", service.id)]
    wrong = {
        "bad kind": (["--kind", "room", "--external", "1", "--to", str(service.id)], 2),
        "bad id": (["--kind", "service", "--external", "1", "--to", "nope"], 2),
        "not ours": (["--kind", "provider", "--external", "1", "--to", str(service.id)], 1),
        "NUL": (["--kind", "service", "--external", "5\x005", "--to", str(service.id)], 2),
    }
    for name, (arguments, code) in wrong.items():
        answer = runner.invoke(app, ["integrations", "map", "--connection", connection, *arguments])
        assert answer.exit_code == code, (name, answer.output)
    gone = runner.invoke(
        app,
        [
            "integrations",
            "map",
            "--connection",
            str(uuid.uuid4()),
            "--kind",
            "service",
            "--external",
            "1",
            "--to",
            str(service.id),
        ],
    )
    assert gone.exit_code == 1
    assert "no such connection" in gone.output

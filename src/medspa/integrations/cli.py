"""CLI commands of the integrations: `medspa integrations poll` (one pass over a connection's API),
`medspa integrations map` (which of ours a source's location, service or provider is) and
`medspa dev fake-source` (a fake Mindbody or Zenoti to connect to, for development and demonstrations)."""

from __future__ import annotations

import time
import uuid
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

dev_app = typer.Typer(help="Tools for developing against medspa.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print("[red]error:[/red] ", escape(message), sep="")
    raise typer.Exit(code)


def poll_command(
    connection: str = typer.Option(..., "--connection", help="the connection's id"),
) -> None:
    """Poll a connection's API once (every stream, from its checkpoints) and store what changed in the
    inbox; the worker applies it. Exits 1 when the source could not be read to the end (what was
    stored stays, and the next poll resumes there)."""
    from medspa.integrations.polling import Poller, PollError
    from medspa.kit.db import default_engine

    try:
        connection_id = uuid.UUID(connection)
    except ValueError:
        _fail("--connection: not a connection id", 2)
    try:
        report = Poller(default_engine()).poll(connection_id)
    except PollError as error:
        _fail(f"polling stopped: {error}")
    console.print(
        f"{report.pages} pages read: {report.stored} changes stored, {report.duplicates} already in the inbox"
        + (f", {report.unreadable} records unreadable" if report.unreadable else "")
    )


def map_command(
    connection: str = typer.Option(..., "--connection", help="the connection's id"),
    kind: str = typer.Option(..., "--kind", help="location, service or provider"),
    external: str = typer.Option(..., "--external", help="its id in the connected system"),
    to: str = typer.Option(..., "--to", help="the id of ours it is"),
) -> None:
    """Say which of our locations, services or providers is the connected system's one: appointments
    from it are booked with ours. Setting one again moves it."""
    from pydantic import ValidationError

    from medspa.integrations import mappings
    from medspa.integrations.models import Connection
    from medspa.integrations.schemas import MappingSet
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security.actors import system_actor

    try:
        connection_id = uuid.UUID(connection)
        data = MappingSet.model_validate({"kind": kind, "external_id": external, "record_id": to})
    except ValueError as error:  # a ValidationError is one
        detail = "; ".join(e["msg"] for e in error.errors()) if isinstance(error, ValidationError) else ""
        _fail(f"--connection, --kind, --external or --to: {detail or 'not a connection id'}", 2)
    try:
        with unit_of_work() as session:
            found = session.get(Connection, connection_id)
            if found is None:
                _fail("no such connection")
            actor = system_actor(found.organization_id, "cli")
            made = mappings.set_mapping(session, actor=actor, connection_id=connection_id, data=data)
    except MedspaError as error:
        _fail(error.detail)
    console.print(f"{made.kind} {escape(made.external_id)} of the connection is ours {made.record_id}")


@dev_app.command("fake-source")
def fake_source(
    connector: str = typer.Argument(..., help="mindbody or zenoti"),
    port: int = typer.Option(8100, min=0, max=65535, help="the port to serve its API on (127.0.0.1)"),
    target: str | None = typer.Option(None, help="where to send its webhooks (the connection's URL)"),
    secret: str = typer.Option("fake-source-secret", help="the secret its webhooks are signed with"),
    api_key: str = typer.Option("fake-api-key", help="the API key its API asks for"),
    account: str = typer.Option("-99", help="the Mindbody site id or Zenoti center id"),
    events: int = typer.Option(100, min=0, help="how many changes to make, then only serve"),
    rate: float = typer.Option(1.0, min=0.01, max=1000, help="changes a second"),
    duplicate: float = typer.Option(0.0, min=0, max=1, help="the share of webhooks sent twice"),
    reorder: int = typer.Option(1, min=1, max=1000, help="webhooks sent in shuffled windows of this many"),
    drop: float = typer.Option(0.0, min=0, max=1, help="the share of webhooks never sent"),
    seed: int = typer.Option(1, help="the seed of the world and of the knobs"),
    clients: int = typer.Option(20, min=0, help="clients that exist before it starts"),
    appointments: int = typer.Option(40, min=0, help="appointments that exist before it starts"),
    signature_header: str = typer.Option("X-Zenoti-Signature", help="Zenoti: the signature's header"),
    signature_encoding: str = typer.Option("base64", help="Zenoti: base64 or hex"),
    seconds: float | None = typer.Option(None, min=0, help="stop after this long (else at Ctrl-C)"),
) -> None:
    """Run a fake Mindbody or Zenoti until Ctrl-C: its API on 127.0.0.1:PORT, and a change of its world
    every 1/RATE seconds, each sent as a signed webhook to TARGET (duplicated, reordered or dropped as
    asked). Connect to it with `medspa integrations add CONNECTOR --secret SECRET --poll-url URL
    --poll-account ACCOUNT --poll-key API_KEY`."""
    from medspa.integrations.fakes import Knobs, World, make_fake
    from medspa.integrations.schemas import http_url

    if connector not in ("mindbody", "zenoti"):
        _fail(f"no fake of {connector!r}: mindbody or zenoti", 2)
    if target is not None:
        try:
            http_url(target)
        except ValueError as error:
            _fail(f"--target: {error}", 2)
    if signature_encoding not in ("base64", "hex"):
        _fail("--signature-encoding: base64 or hex", 2)
    world = World(seed=seed)
    world.populate(clients=clients, appointments=appointments)
    knobs = Knobs(duplicate=duplicate, reorder=reorder, drop=drop, seed=seed)
    zenoti = {"signature_header": signature_header, "signature_encoding": signature_encoding}
    fake = make_fake(
        connector,
        world,
        api_key=api_key,
        account=account,
        secret=secret,
        target=target,
        knobs=knobs,
        **(zenoti if connector == "zenoti" else {}),
    )
    try:
        base_url = fake.start(port)
    except OSError as error:
        _fail(f"--port: cannot serve on 127.0.0.1:{port} ({error.strerror})")
    console.print(f"fake {connector} serving {base_url} (API key {api_key}, account {account})")
    console.print(f"webhooks to {target}" if target else "no --target: webhooks are not sent")
    started, made = time.monotonic(), 0
    try:
        while seconds is None or time.monotonic() - started < seconds:
            if made < events:
                fake.change(1)
                made += 1
                fake.flush(everything=made == events)
            time.sleep(1.0 / rate)
    except KeyboardInterrupt:
        pass
    finally:
        fake.flush()
        fake.stop()
    console.print(
        f"{made} changes; webhooks: {len(fake.sent)} made, {len(fake.acknowledged())} acknowledged, "
        f"{len(fake.dropped())} dropped"
    )

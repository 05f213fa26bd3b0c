"""The `medspa` command line (Typer + Rich): noun-verb commands over the same service functions."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medspa.cli_records import problems
from medspa.cli_records import register as register_records
from medspa.config import load_settings
from medspa.kit.cli_options import organization_option

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from medspa.security.actors import Actor

app = typer.Typer(help="medspa: the operating system of a medical spa.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo clinic.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
keys_app = typer.Typer(help="The keys that protect client records (PHI).", no_args_is_help=True)
users_app = typer.Typer(help="Staff users.", no_args_is_help=True)
integrations_app = typer.Typer(
    help="Connections to Zenoti, Mindbody and Standard Webhooks senders.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(integrations_app, name="integrations")
audit_app = typer.Typer(
    help="The audit trail (hash-chained, one chain per organization).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
console = Console()
errors = Console(stderr=True, soft_wrap=True)

OrganizationOption = organization_option()


def _fail(message: str, code: int = 1) -> NoReturn:
    errors.print("[red]error:[/red] ", escape(message), sep="")
    raise typer.Exit(code)


def _require_date_in_range(option: str, value: datetime | None) -> None:
    """Exit with a one-line error when a date option lies outside the range every input must keep."""
    from medspa.kit.schemas import EARLIEST_DATE, LATEST_DATE, in_accepted_range

    if value is not None and not in_accepted_range(value):
        _fail(f"{option}: must be between {EARLIEST_DATE} and {LATEST_DATE}", 2)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="worker processes (more than one suits PostgreSQL)"),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="do not run the background worker in this process (run `medspa worker`)"
    ),
    tls_certfile: Path | None = typer.Option(None, help="TLS certificate (PEM) to serve HTTPS with"),
    tls_keyfile: Path | None = typer.Option(None, help="the certificate's private key (PEM)"),
    behind_tls_proxy: bool = typer.Option(
        False, "--behind-tls-proxy", help="a TLS proxy fronts this server: listen in the clear on any address"
    ),
) -> None:
    """Serve the web app and the API (OpenAPI at /docs). With one process, the background worker (model
    scores after each booking, optimization jobs, weekly refreshes) runs inside it unless --no-worker.

    Outside this machine (any address but loopback) it serves only with TLS of its own or behind a TLS
    proxy; session cookies are then marked Secure."""
    import os

    import uvicorn

    from medspa.app import EMBEDDED_WORKER_VARIABLE
    from medspa.kit.transport import TransportError, check_listening

    try:
        listening = check_listening(
            host, certfile=tls_certfile, keyfile=tls_keyfile, behind_tls_proxy=behind_tls_proxy
        )
    except TransportError as error:
        _fail(str(error), 2)
    embedded = not no_worker and workers == 1
    os.environ[EMBEDDED_WORKER_VARIABLE] = "1" if embedded else "0"
    if listening.secure:
        os.environ["MEDSPA_SECURE_COOKIES"] = "1"
    worker_note = "worker: in this process" if embedded else "worker: run `medspa worker`"
    scheme = "https" if listening.tls else "http"
    # The links in clients' messages lead here unless MEDSPA_PUBLIC_URL names the address they reach.
    os.environ.setdefault("MEDSPA_PUBLIC_URL", f"{scheme}://{host}:{port}")
    _check_channels()
    console.print(
        f"medspa on {scheme}://{host}:{port}  (database: {load_settings().database_url}; {worker_note})"
    )
    _warn_when_row_security_is_bypassed()
    uvicorn.run(
        "medspa.app:serving_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        ssl_certfile=str(listening.certfile) if listening.certfile else None,
        ssl_keyfile=str(listening.keyfile) if listening.keyfile else None,
    )


def _check_channels() -> None:
    """Refuse to start (exit 2, one line) with a malformed MEDSPA_SMTP_URL or MEDSPA_SMS_URL."""
    import os

    from medspa.engagement.service import configured

    try:
        configured(os.environ)
    except ValueError as error:
        _fail(str(error), 2)


def _warn_when_row_security_is_bypassed() -> None:
    """On PostgreSQL, say so when the server's database role is one row-level security does not bind."""
    from sqlalchemy.exc import SQLAlchemyError

    from medspa.kit.db import default_engine, row_security_bypass

    if load_settings().is_sqlite:
        return
    try:
        bypass = row_security_bypass(default_engine())
    except SQLAlchemyError:
        return  # the server reports an unreachable database itself
    if bypass:
        errors.print(
            f"[yellow]warning:[/yellow] row-level security does not bind this server ({bypass}): "
            "serve as an application role (README, PostgreSQL)"
        )


@app.command()
def worker(
    poll_seconds: float = typer.Option(0.5, min=0.05, max=60, help="how often to look for new events"),
    no_scheduled_jobs: bool = typer.Option(
        False, "--no-scheduled-jobs", help="leave the weekly refresh to another worker (run it in one only)"
    ),
    source_poll_seconds: float = typer.Option(
        300.0, min=5, max=86400, help="how often to poll the connected systems that have polling settings"
    ),
) -> None:
    """Run the background worker until stopped: scores bookings and clients from the outbox within
    seconds, runs the optimization jobs the pages and the API hand it, and the scheduled jobs (Huey:
    SQLite beside the database, or Redis with MEDSPA_REDIS_URL)."""
    import logging

    from medspa.kit.db import default_engine
    from medspa.retention.serving import ModelCache
    from medspa.worker import BackgroundWorker, build_huey

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    _check_channels()
    queue = f"Redis {settings.redis_url}" if settings.redis_url else f"SQLite {settings.huey_path}"
    console.print(
        f"medspa worker (database: {settings.database_url}; jobs: {queue}; models: {settings.model_dir})"
    )
    BackgroundWorker(
        default_engine(),
        cache=ModelCache(settings.model_dir),
        huey=build_huey(settings),
        poll_seconds=poll_seconds,
        periodic=not no_scheduled_jobs,
        source_poll_seconds=source_poll_seconds,
    ).run_until_stopped()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to the configured database (MEDSPA_DATABASE_URL)."""
    from medspa.kit.migrate import upgrade

    url = load_settings().database_url
    upgrade(url)
    console.print(f"database at head: {url}")


@demo_app.command("seed")
def demo_seed(
    clients: int = typer.Option(1500, help="how many clients to create"),
    past_days: int = typer.Option(56, help="days of history"),
    future_days: int = typer.Option(14, help="days of future bookings"),
) -> None:
    """Create the demo clinic (organization `demo`) unless it exists already."""
    from medspa.demo.seed import DEMO_PASSWORD, DEMO_SLUG, STAFF, seed_demo
    from medspa.kit.db import default_engine, unit_of_work
    from medspa.security import service as security

    with unit_of_work(write=False) as session:
        exists = security.find_organization(session, slug=DEMO_SLUG) is not None
    if exists:
        console.print("the demo clinic exists already; nothing to do")
        return
    with console.status("seeding the demo clinic (clients, staff, ten weeks of bookings, models)..."):
        summary = seed_demo(
            default_engine(),
            client_count=clients,
            past_days=past_days,
            future_days=future_days,
            model_dir=load_settings().model_dir,
        )
    console.print(
        f"demo clinic ready: {summary.clients} clients, {summary.past_appointments} past and "
        f"{summary.future_appointments} upcoming appointments ({summary.statuses})"
    )
    console.print(
        f"models {summary.models or 'not trained (too little history)'}: {summary.scored_appointments} "
        f"upcoming appointments and {summary.scored_clients} clients scored"
    )
    console.print(
        f"sign in at /login as {STAFF[2][0]}, password [bold]{DEMO_PASSWORD}[/bold]; as {STAFF[0][0]} "
        "with the code `medspa demo code` prints"
    )


@tokens_app.command("create")
def tokens_create(
    organization: str = OrganizationOption,
    role: str = typer.Option(..., help="owner, manager, front_desk, provider, marketing or contractor"),
    name: str = typer.Option("cli", help="a label for the token"),
    days: int | None = typer.Option(
        None, "--days", help="days until the token stops working (1-3650; required for a contractor)"
    ),
) -> None:
    """Issue an API token; it is printed once and stored only as a hash."""
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security import service as security
    from medspa.security.actors import Role, system_actor
    from medspa.security.schemas import TokenCreate

    roles = ", ".join(r.value for r in Role)
    if role not in {r.value for r in Role}:
        _fail(f"--role: unknown role {role!r} ({roles})", 2)
    if days is not None and not 1 <= days <= 3650:
        _fail("--days: between 1 and 3650", 2)
    if role == Role.CONTRACTOR.value and days is None:
        _fail("--days: a contractor's token needs an expiry", 2)
    try:
        with unit_of_work() as session:
            org = security.get_organization(session, slug=organization)
            data = TokenCreate(name=name, role=Role(role), expires_in_days=days)
            issued = security.issue_token(session, actor=system_actor(org.id, "cli"), data=data)
    except MedspaError as error:
        _fail(error.detail)
    errors.print(f"token for {organization} ({role}); shown once, keep it safe:")
    print(issued.token)


@integrations_app.command("add")
def integrations_add(
    connector: str = typer.Argument(..., help="mindbody, zenoti or standard"),
    organization: str = OrganizationOption,
    secret: str = typer.Option(
        ...,
        help="the shared secret the source signs with (Standard Webhooks: whsec_...)",
        envvar="MEDSPA_SECRET",
    ),
    name: str = typer.Option("default", help="a label for the connection"),
    signature_header: str | None = typer.Option(None, help="Zenoti: the header with the signature"),
    signature_encoding: str = typer.Option("base64", help="Zenoti: base64 or hex"),
    poll_url: str | None = typer.Option(None, help="to poll its API too: the API's root URL"),
    poll_account: str | None = typer.Option(None, help="polling: the Mindbody site id or Zenoti center id"),
    poll_key: str | None = typer.Option(None, help="polling: the API key", envvar="MEDSPA_POLL_KEY"),
) -> None:
    """Connect an organization to an outside system. Prints where its webhooks go, then the new
    connection's id last. The secret (and the API key) are stored sealed, never printed."""
    from medspa.integrations import service as integrations
    from medspa.integrations.schemas import ConnectionCreate
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    try:
        data = ConnectionCreate.model_validate(
            {
                "connector": connector,
                "name": name,
                "secret": secret,
                "signature_header": signature_header,
                "signature_encoding": signature_encoding,
                "poll_url": poll_url,
                "poll_account": poll_account,
                "poll_key": poll_key,
            }
        )
    except ValidationError as error:
        options = {"--data": "--poll-url", "secret": "--secret", "name": "--name", "poll_url": "--poll-url"}
        _fail(problems(error, options | {"poll_account": "--poll-account", "poll_key": "--poll-key"}), 2)
    try:
        with unit_of_work() as session:
            org = security.get_organization(session, slug=organization)
            added = integrations.add_connection(session, actor=system_actor(org.id, "cli"), data=data)
    except MedspaError as error:
        _fail(error.detail)
    errors.print(f"{connector} connection for {organization}; webhooks go to {added.webhook_path}")
    print(added.id)


@keys_app.command("rotate")
def keys_rotate(
    retire: bool = typer.Option(
        False, "--retire", help="then remove the key-encryption keys no data key uses any more"
    ),
) -> None:
    """Make a new key-encryption key and re-wrap every organization's data keys with it, while the
    server keeps running. Records themselves are not rewritten. Back up the key file afterwards."""
    from medspa.kit.db import default_engine
    from medspa.security import keys

    try:
        rotation = keys.rotate_all(default_engine(), retire=retire)
    except keys.KeyMaterialError as error:
        _fail(str(error))
    console.print(
        f"key-encryption key {rotation.kek_id} is current: {rotation.rewrapped} data keys of "
        f"{rotation.organizations} organizations re-wrapped"
    )
    if retire:
        console.print(f"retired: {', '.join(rotation.retired) or 'none'}")
    console.print(f"back up the key file now: {load_settings().key_file}")


@app.command()
def backup(target: Path = typer.Argument(..., help="the file to write (must not exist)")) -> None:
    """Write a consistent copy of the database (SQLite while serving; PostgreSQL with pg_dump). The key
    file and the erasure ledger are not in it: back them up apart."""
    from medspa.kit.backup import BackupError
    from medspa.kit.backup import backup as write_backup

    settings = load_settings()
    try:
        write_backup(settings.database_url, target)
    except BackupError as error:
        _fail(str(error))
    console.print(f"backup written: {target} ({target.stat().st_size:,} bytes)")
    console.print(f"not in it, back up apart: {settings.key_file} and {settings.erasure_ledger}")


@app.command()
def restore(source: Path = typer.Argument(..., help="a file written by `medspa backup`")) -> None:
    """Replace the database with a backup (stop the server first), migrate it to this release, then
    erase again every client the erasure ledger names, so that no erased client comes back."""
    from medspa.clients import ledger
    from medspa.clients import service as clients
    from medspa.kit.backup import BackupError
    from medspa.kit.backup import restore as read_backup
    from medspa.kit.db import unit_of_work
    from medspa.kit.migrate import upgrade

    settings = load_settings()
    try:
        entries = ledger.entries()  # read first: a damaged ledger stops the restore before it starts
        read_backup(settings.database_url, source)
    except (BackupError, ledger.LedgerError) as error:
        _fail(str(error))
    upgrade(settings.database_url)  # a backup from an older release gets this release's schema
    replayed = 0
    for entry in entries:
        with unit_of_work() as session:
            replayed += clients.replay_erasure(session, entry)
    console.print(
        f"restored from {source}; {replayed} of {len(entries)} erasures in {settings.erasure_ledger} "
        "applied again"
    )


@users_app.command("totp-enrol")
def users_totp_enrol(
    organization: str = OrganizationOption,
    email: str = typer.Option(..., "--email", help="the user's e-mail"),
) -> None:
    """Give a user a new second factor (TOTP) and print the otpauth:// URI for their authenticator app;
    their next sign-in asks for a code from it. Owners and managers cannot sign in without one."""
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security import service as security

    try:
        with unit_of_work() as session:
            enrolment = security.enrol_totp(session, actor=_actor_for(session, organization), email=email)
    except MedspaError as error:
        _fail(error.detail)
    errors.print(f"second factor for {email} in {organization}; add it to an authenticator app:")
    print(enrolment.uri)


@demo_app.command("code")
def demo_code(
    email: str = typer.Option("owner@lumen.example", "--email", help="a demo user's e-mail"),
) -> None:
    """Print the current sign-in code of the demo owner or manager (whose second factor is the demo's
    published secret), so that anyone trying the demo can sign in as them."""
    from medspa.demo.seed import DEMO_SLUG, DEMO_TOTP_SECRET
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security import service as security

    try:
        with unit_of_work(write=False) as session:
            code = security.current_code(
                session, actor=_actor_for(session, DEMO_SLUG), email=email, only_secret=DEMO_TOTP_SECRET
            )
    except MedspaError as error:
        _fail(error.detail)
    if code is None:
        _fail(f"{email} is not a demo user with the demo's second factor")
    print(code)


HeadFileOption = typer.Option(
    None, "--head-file", help="the chains' heads kept outside the database (default: MEDSPA_AUDIT_HEAD_FILE)"
)


@audit_app.command("verify")
def audit_verify(head_file: Path | None = HeadFileOption) -> None:
    """Check every organization's audit chain and its heads (in the database and in the head file); exit
    1 naming the first edited, deleted, inserted or reordered row of each broken chain."""
    from medspa.kit.db import unit_of_work
    from medspa.security import audit

    path = head_file or load_settings().audit_head_file
    recorded = audit.read_heads(path)
    with unit_of_work(write=False) as session:
        result = audit.verify(session, recorded=recorded)
    if not result.is_intact:
        for problem in result.problems:
            errors.print("[red]audit trail broken:[/red] ", escape(str(problem)), sep="")
        raise typer.Exit(1)
    if path.exists():
        against = f"{result.heads_checked} heads checked against {path}"
    else:
        against = f"no head file at {path}: the chains' ends were checked against the database only"
    console.print(f"audit trail intact: {result.rows} rows in {result.chains} chains; {escape(against)}")


@audit_app.command("heads")
def audit_heads(head_file: Path | None = HeadFileOption) -> None:
    """Append each chain's head to the head file (the worker does it every five minutes)."""
    from medspa.kit.db import unit_of_work
    from medspa.security import audit

    path = head_file or load_settings().audit_head_file
    with unit_of_work(write=False) as session:
        written = audit.write_heads(session, path)
    console.print(f"{written} chain heads appended to {path}")


def _actor_for(session: Session, organization: str) -> Actor:
    """The organization's system actor, for commands run by whoever holds the server's shell."""
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    return system_actor(security.get_organization(session, slug=organization).id, "cli")


@app.command()
def slots(
    location: uuid.UUID = typer.Option(..., "--location", help="location id"),
    service: uuid.UUID = typer.Option(..., "--service", help="service id"),
    first: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"], help="first date"),
    last: datetime = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="last date (default: --from)"),
    provider: uuid.UUID | None = typer.Option(None, "--provider", help="only this provider"),
    organization: str = OrganizationOption,
) -> None:
    """List bookable starts for a service."""
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.scheduling import service as scheduling

    _require_date_in_range("--from", first)
    _require_date_in_range("--to", last)
    try:
        with unit_of_work(write=False) as session:
            actor = _actor_for(session, organization)
            found = scheduling.find_slots(
                session,
                actor=actor,
                location_id=location,
                service_id=service,
                first_date=first.date(),
                last_date=(last or first).date(),
                provider_id=provider,
            )
    except MedspaError as error:
        _fail(error.detail, 2 if error.status_code in (404, 422) else 1)
    table = Table("starts (local)", "provider", "room", "device")
    for slot in found:
        table.add_row(slot.local_start, slot.provider_name, slot.room_name, slot.device_name or "")
    console.print(table)
    console.print(f"{len(found)} slots")


@app.command()
def book(
    client: uuid.UUID = typer.Option(..., "--client"),
    service: uuid.UUID = typer.Option(..., "--service"),
    location: uuid.UUID = typer.Option(..., "--location"),
    starts_at: datetime = typer.Option(
        ..., "--at", help="start, ISO 8601 with offset, e.g. 2026-12-01T10:00-05:00"
    ),
    provider: uuid.UUID | None = typer.Option(None, "--provider"),
    organization: str = OrganizationOption,
) -> None:
    """Book an appointment directly."""
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.scheduling import service as scheduling
    from medspa.scheduling.schemas import BookingRequest

    try:
        request = BookingRequest(
            client_id=client,
            service_id=service,
            location_id=location,
            starts_at=starts_at,
            provider_id=provider,
        )
    except ValidationError as error:
        _fail(problems(error, {"starts_at": "--at"}), 2)
    try:
        with unit_of_work() as session:
            actor = _actor_for(session, organization)
            booked = scheduling.book_appointment(session, actor=actor, data=request)
    except MedspaError as error:
        _fail(error.detail, 2 if error.status_code in (404, 422) else 1)
    console.print(f"booked {booked.id} at {booked.starts_at.isoformat()} (provider {booked.provider_id})")


@app.command("optimize-day")
def optimize_day(
    location: uuid.UUID = typer.Option(..., "--location", help="location id"),
    day: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"], help="local date"),
    time_limit: float = typer.Option(10.0, "--time-limit", min=0.1, max=120, help="seconds"),
    max_moves: int | None = typer.Option(
        None,
        "--max-moves",
        min=0,
        max=1000,
        help="replan: bookings that may be moved (another provider, room or device) or left for staff",
    ),
    organization: str = OrganizationOption,
) -> None:
    """Optimize a location's day (bookings kept, waitlist placed; with --max-moves bookings may also be
    reassigned) and store a proposal; nothing moves until it is applied. Runs the optimization job in
    this process (the same job the worker runs for the web pages and the API), solving outside any
    transaction, so bookings go on meanwhile."""
    import threading
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from medspa.kit.db import default_engine, unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.kit.money import format_cents
    from medspa.scheduling import service as scheduling
    from medspa.scheduling.schemas import ProposalRead

    _require_date_in_range("--date", day)
    try:
        with unit_of_work() as session:
            actor = _actor_for(session, organization)
    except MedspaError as error:
        _fail(error.detail, 2 if error.status_code in (404, 422) else 1)
    best: list[float] = []
    outcome: list[ProposalRead | MedspaError] = []

    def run() -> None:
        try:
            outcome.append(
                scheduling.optimize_day(
                    default_engine(),
                    actor=actor,
                    location_id=location,
                    service_date=day.date(),
                    time_limit_seconds=time_limit,
                    max_moves=max_moves,
                    on_progress=best.append,
                )
            )
        except MedspaError as error:
            outcome.append(error)

    solver = threading.Thread(target=run, name="optimize-day")
    columns = (
        TextColumn("optimizing {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[best]}"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(str(day.date()), total=time_limit, best="")
        started = time.monotonic()
        solver.start()
        while solver.is_alive():
            solver.join(0.2)
            value = f"best so far {format_cents(round(max(best) * 100))}" if best else ""
            bar.update(task, completed=min(time_limit, time.monotonic() - started), best=value)
    proposal = outcome[0]
    if isinstance(proposal, MedspaError):
        _fail(proposal.detail, 2 if proposal.status_code in (404, 422) else 1)
    table = Table("request", "kind", "status", "starts", "value", "why")
    for item in proposal.items:
        starts = item.starts_at.isoformat() if item.starts_at else ""
        table.add_row(
            item.request, item.kind, item.status, starts, format_cents(item.value_cents), item.reason
        )
    console.print(table)
    limit = proposal.max_moves
    moves = f", {proposal.moves} of at most {limit} moved or left" if limit is not None else ""
    console.print(
        f"proposal {proposal.id}: current {format_cents(proposal.current_value_cents)}, "
        f"proposed {format_cents(proposal.proposed_value_cents)}, gain {format_cents(proposal.gain_cents)}"
        f"{moves}"
    )


register_records(app)


from medspa.scheduling.solver.cli import optimize_command  # noqa: E402

app.command("optimize")(optimize_command)


from medspa.integrations.cli import dev_app, map_command, poll_command  # noqa: E402
from medspa.retention.cli import (  # noqa: E402  (registered after the core ones)
    export_app,
    import_app,
    models_app,
    retention_app,
)

integrations_app.command("poll")(poll_command)
integrations_app.command("map")(map_command)
app.add_typer(dev_app, name="dev")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(models_app, name="models")
app.add_typer(retention_app, name="retention")


def main() -> None:
    app()

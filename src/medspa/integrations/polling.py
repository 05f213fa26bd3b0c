"""Polling Mindbody and Zenoti for what their webhooks did not bring (dropped, never sent: Zenoti sends
no cancellation), each change stored in the inbox exactly as its webhook would be (`envelopes`), so the
inbox's worker applies both the same way and a change seen twice is stored once.

Streams and checkpoints (`Checkpoint.position`, one per connection and stream):

- Mindbody `clients` and `appointments`: the records modified since `since` (`LastModifiedDate`), paged
  by `offset` (200 a page; the API orders by id, so records changed or added during a pass neither shift
  nor hide the pages still to come). A pass starts at `started_at` = now minus `overlap`; when it ends,
  that becomes the next `since`, so a record changed while the pass ran is read again next time rather
  than missed (read twice it is one inbox row: its source event id holds its last-modified time).
  Appointments are asked for in the window `days_before` .. `days_after` around today.
- Zenoti `appointments`: the center's appointments in that window, page by page (100 a page); Zenoti
  has no last-modified filter, so every pass reads the whole window and the inbox keeps what is new.

Each page's inbox rows and the checkpoint's move are one transaction: a pass interrupted (the source
down, the process killed) resumes at the page after the last one stored and loses or repeats nothing.
The checkpoint is locked and compared first, so two pollers of one connection never move it backwards.
Calls are paced to `calls_per_minute` (Zenoti's limit is 60) and a 429 waits out its `Retry-After`.
Errors are logged without secrets and the connection is tried again on the next pass.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from medspa.integrations.envelopes import (
    Event,
    polled_mindbody_appointment,
    polled_mindbody_client,
    polled_zenoti_appointment,
)
from medspa.integrations.models import Checkpoint, Connection
from medspa.integrations.service import open_poll_key, store_delivery
from medspa.kit import clock
from medspa.kit.db import insert_ignoring_conflict, run_in_unit_of_work
from medspa.kit.ids import new_id

logger = logging.getLogger(__name__)

STREAMS: Final = {"mindbody": ("clients", "appointments"), "zenoti": ("appointments",)}
MINDBODY_LIMIT: Final = 200
ZENOTI_SIZE: Final = 100


@dataclass(frozen=True)
class PollOptions:
    """`days_before` .. `days_after` today: the appointments asked for; `overlap`: how far before a
    pass's start the next one reads again; `waits`: 429 answers in a row a call waits out before the
    pass stops (it resumes on the next)."""

    days_before: int = 1
    days_after: int = 60
    calls_per_minute: int = 60
    timeout_seconds: float = 10.0
    overlap: timedelta = timedelta(minutes=5)
    waits: int = 5
    longest_wait_seconds: float = 120.0


class PollError(Exception):
    """A pass that stopped: the source unreachable, an error answer, a body not of its shape. What was
    stored stays, with its checkpoint; the next pass resumes there."""


@dataclass
class PollReport:
    pages: int = 0
    stored: int = 0
    duplicates: int = 0
    unreadable: int = 0  # records without an id or a readable last-modified time


@dataclass(frozen=True)
class Fetched:
    """A page: its events, how many records could not be read, and the checkpoint after it."""

    events: list[Event]
    unreadable: int
    position: dict[str, Any]
    done: bool


class Pacer:
    """At most `calls_per_minute` calls in any 60 seconds: `wait()` before each call sleeps until one
    more fits."""

    def __init__(
        self, calls_per_minute: int, *, monotonic: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.limit, self.monotonic, self.sleep = max(1, calls_per_minute), monotonic, sleep
        self.calls: deque[float] = deque()

    def wait(self) -> None:
        now = self.monotonic()
        while self.calls and now - self.calls[0] >= 60.0:
            self.calls.popleft()
        if len(self.calls) >= self.limit:
            self.sleep(self.calls[0] + 60.0 - now)
            self.calls.popleft()
            now = self.monotonic()
        self.calls.append(now)


@dataclass
class SourceApi:
    """GET a source's JSON, paced, waiting out 429s; PollError for anything but a JSON object."""

    http: httpx.Client
    pacer: Pacer
    options: PollOptions
    sleep: Callable[[float], None]
    waited: list[float] = field(default_factory=list)

    def get(self, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        for attempt in range(self.options.waits + 1):
            self.pacer.wait()
            try:
                response = self.http.get(path, params=dict(params))
            except httpx.HTTPError as error:
                raise PollError(f"GET {path}: {type(error).__name__}") from error
            if response.status_code == 429 and attempt < self.options.waits:
                seconds = _retry_after(response.headers.get("retry-after"), self.options.longest_wait_seconds)
                self.waited.append(seconds)
                self.sleep(seconds)
                continue
            if response.status_code != 200:
                raise PollError(f"GET {path}: answered {response.status_code}")
            try:
                body = response.json()
            except ValueError as error:
                raise PollError(f"GET {path}: the answer is not JSON") from error
            if not isinstance(body, dict):
                raise PollError(f"GET {path}: the answer is not a JSON object")
            return body
        raise PollError(f"GET {path}: still over the rate limit after {self.options.waits} waits")


def _retry_after(value: str | None, longest: float) -> float:
    """Seconds to wait by a `Retry-After` (seconds or an HTTP date); a minute when missing or unreadable."""
    seconds = 60.0
    if value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(value) - clock.now()).total_seconds()
            except (TypeError, ValueError):
                seconds = 60.0
    return min(max(seconds, 0.0), longest)


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _items(body: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list):
        raise PollError(f"GET {path}: no {key} list in the answer")
    return [item for item in items if isinstance(item, dict)]


def _mindbody_stream(
    stream: str,
) -> Callable[[SourceApi, str, dict[str, Any], datetime, PollOptions], Fetched]:
    path, key = {
        "clients": ("/public/v6/client/clients", "Clients"),
        "appointments": ("/public/v6/appointment/staffappointments", "Appointments"),
    }[stream]

    def fetch(
        api: SourceApi, site_id: str, position: dict[str, Any], now: datetime, options: PollOptions
    ) -> Fetched:
        started = str(position.get("started_at") or _iso(now - options.overlap))
        since, offset = position.get("since"), int(position.get("offset", 0))
        params: dict[str, str | int] = {"limit": MINDBODY_LIMIT, "offset": offset}
        if since:
            params["LastModifiedDate"] = str(since)
        if stream == "appointments":
            params["StartDate"] = (now.date() - timedelta(days=options.days_before)).isoformat()
            params["EndDate"] = (now.date() + timedelta(days=options.days_after)).isoformat()
        body = api.get(path, params)
        items = _items(body, key, path)
        total = (body.get("PaginationResponse") or {}).get("TotalResults")
        make = polled_mindbody_client if stream == "clients" else polled_mindbody_appointment
        made = [make(site_id, item) for item in items]
        events = [e for e in made if e is not None]
        offset += len(items)
        done = not items or not isinstance(total, int) or offset >= total
        after = {"since": started} if done else {"since": since, "offset": offset, "started_at": started}
        return Fetched(events, len(made) - len(events), after, done)

    return fetch


def _zenoti_appointments(
    api: SourceApi, center_id: str, position: dict[str, Any], now: datetime, options: PollOptions
) -> Fetched:
    if "page" in position:
        start, end, page = str(position["start_date"]), str(position["end_date"]), int(position["page"])
    else:
        start = (now.date() - timedelta(days=options.days_before)).isoformat()
        end = (now.date() + timedelta(days=options.days_after)).isoformat()
        page = 1
    path = "/v1/appointments"
    body = api.get(
        path,
        {"center_id": center_id, "start_date": start, "end_date": end, "page": page, "size": ZENOTI_SIZE},
    )
    items = _items(body, "appointments", path)
    total = (body.get("page_info") or {}).get("total")
    made = [polled_zenoti_appointment(item) for item in items]
    events = [e for e in made if e is not None]
    done = not items or not isinstance(total, int) or page * ZENOTI_SIZE >= total
    after = {"completed_at": _iso(now)} if done else {"start_date": start, "end_date": end, "page": page + 1}
    return Fetched(events, len(made) - len(events), after, done)


FETCHERS: Final = {
    ("mindbody", "clients"): _mindbody_stream("clients"),
    ("mindbody", "appointments"): _mindbody_stream("appointments"),
    ("zenoti", "appointments"): _zenoti_appointments,
}


@dataclass(frozen=True)
class _Target:
    connector: str
    base_url: str
    account: str
    key: str
    positions: dict[str, dict[str, Any]]


def _headers(connector: str, account: str, key: str) -> dict[str, str]:
    if connector == "mindbody":
        return {"Api-Key": key, "SiteId": account, "Accept": "application/json"}
    return {"Authorization": f"apikey {key}", "Accept": "application/json"}


class Poller:
    """Polls connections; keeps each connection's pace between passes. `sleep` and `monotonic` are the
    waits' (a test passes its own)."""

    def __init__(
        self,
        engine: Engine,
        *,
        options: PollOptions | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.options = engine, options or PollOptions()
        self.sleep, self.monotonic = sleep, monotonic
        self._pacers: dict[uuid.UUID, Pacer] = {}
        self.waited: list[float] = []

    def poll(self, connection_id: uuid.UUID) -> PollReport:
        """One pass over each stream of the connection, from its checkpoints; PollError when it stopped
        (what was stored stays). A connection that is inactive or not polled gives an empty report."""
        target = run_in_unit_of_work(
            self.engine, functools.partial(_read_target, connection_id=connection_id), write=False
        )
        report = PollReport()
        if target is None:
            return report
        pacer = self._pacers.setdefault(
            connection_id,
            Pacer(self.options.calls_per_minute, monotonic=self.monotonic, sleep=self.sleep),
        )
        with httpx.Client(
            base_url=target.base_url,
            headers=_headers(target.connector, target.account, target.key),
            timeout=self.options.timeout_seconds,
        ) as http:
            api = SourceApi(http, pacer, self.options, self.sleep, self.waited)
            for stream in STREAMS[target.connector]:
                self._stream(api, connection_id, target, stream, report)
        return report

    def _stream(
        self, api: SourceApi, connection_id: uuid.UUID, target: _Target, stream: str, report: PollReport
    ) -> None:
        fetch = FETCHERS[(target.connector, stream)]
        position = target.positions.get(stream, {})
        while True:
            fetched = fetch(api, target.account, position, clock.now(), self.options)
            store = functools.partial(
                _store_page, connection_id=connection_id, stream=stream, expected=position, fetched=fetched
            )
            counts = run_in_unit_of_work(self.engine, store)
            if counts is None:
                logger.info("polling %s %s: moved on by another poller", connection_id, stream)
                return
            report.pages += 1
            report.stored, report.duplicates = report.stored + counts[0], report.duplicates + counts[1]
            report.unreadable += fetched.unreadable
            position = fetched.position
            if fetched.done:
                return

    def poll_all(self) -> dict[uuid.UUID, PollReport | Exception]:
        """One pass over every active connection with polling settings; a connection's failure (the
        source's, or ours: its key unreadable, the database busy) is logged, never with its key, and
        left for the next pass, and the other connections are polled all the same."""
        ids = run_in_unit_of_work(self.engine, _polled_connections, write=False)
        outcomes: dict[uuid.UUID, PollReport | Exception] = {}
        for connection_id in ids:
            try:
                outcomes[connection_id] = self.poll(connection_id)
            except PollError as error:
                logger.warning("polling connection %s stopped: %s", connection_id, error)
                outcomes[connection_id] = error
            except Exception as error:
                logger.exception("polling connection %s failed", connection_id)
                outcomes[connection_id] = error
        return outcomes


def _polled_connections(session: Session) -> list[uuid.UUID]:
    query = select(Connection.id).where(Connection.is_active, Connection.poll_base_url.is_not(None))
    return list(session.scalars(query.order_by(Connection.created_at, Connection.id)))


def _read_target(session: Session, *, connection_id: uuid.UUID) -> _Target | None:
    connection = session.get(Connection, connection_id)
    if connection is None or not connection.is_active or connection.connector not in STREAMS:
        return None
    key = open_poll_key(session, connection)
    if connection.poll_base_url is None or connection.poll_account is None or key is None:
        return None
    checkpoints = session.scalars(select(Checkpoint).where(Checkpoint.connection_id == connection_id))
    return _Target(
        connection.connector,
        connection.poll_base_url,
        connection.poll_account,
        key,
        {c.stream: dict(c.position) for c in checkpoints},
    )


def _store_page(
    session: Session, *, connection_id: uuid.UUID, stream: str, expected: dict[str, Any], fetched: Fetched
) -> tuple[int, int] | None:
    """The page's events into the inbox and the checkpoint moved past it, in this one transaction; None
    (nothing stored) when the checkpoint is no longer where this pass left it, or the connection stopped."""
    connection = session.get(Connection, connection_id)
    if connection is None or not connection.is_active:
        return None
    now = clock.now()
    insert_ignoring_conflict(
        session,
        Checkpoint,
        {
            "id": new_id(),
            "organization_id": connection.organization_id,
            "connection_id": connection_id,
            "stream": stream,
            "position": {},
            "updated_at": now,
        },
    )
    checkpoint = session.scalars(
        select(Checkpoint)
        .where(Checkpoint.connection_id == connection_id, Checkpoint.stream == stream)
        .with_for_update()
    ).one()
    if checkpoint.position != expected:
        return None
    stored = duplicates = 0
    for event in fetched.events:
        receipt = store_delivery(
            session,
            connection,
            source_event_id=event.source_event_id,
            event_type=event.event_type,
            source_time=event.source_time,
            text=event.text,
        )
        duplicates += receipt.duplicate
        stored += not receipt.duplicate
    checkpoint.position, checkpoint.updated_at = fetched.position, now
    session.flush()
    return stored, duplicates

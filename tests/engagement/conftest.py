"""Real channels for the engagement tests: an SMTP server (aiosmtpd) and a Twilio-compatible SMS
provider over HTTP on the loopback; and a clinic whose events are planned and whose messages are sent
on demand (one organization's only, so tests sharing a database never see each other's)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import Engine, select

from medspa.clients.schemas import ClientRead, ConsentChange
from medspa.engagement import service as engagement
from medspa.engagement.channels import Channels, SmtpChannel, TwilioChannel
from medspa.engagement.schemas import PolicyUpdate
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import Delivered, OutboxEvent
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest
from medspa.security.actors import Actor
from tests.factories import make_client, make_location, make_provider, make_room, make_service


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server accepted."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse_with: str | None = None  # an SMTP reply to give instead of accepting

    async def handle_DATA(self, _server: SMTP, _session: SmtpSession, envelope: Envelope) -> str:  # noqa: N802
        if self.refuse_with:
            return self.refuse_with
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(([str(r) for r in envelope.rcpt_tos], parsed))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [message for rcpt, message in self.messages if address in rcpt]

    @staticmethod
    def text(message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    """A real SMTP server on the loopback, and its URL."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@dataclass
class SmsProvider:
    """A Twilio-compatible Messages API: records each message; answers `status` (201 by default)."""

    sent: list[dict[str, str]] = field(default_factory=list)
    status: int = 201
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, number: str) -> list[str]:
        with self.lock:
            return [m["Body"] for m in self.sent if m["To"] == number]


@pytest.fixture
def sms_provider() -> Iterator[tuple[SmsProvider, str]]:
    provider = SmsProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
            authorised = self.headers.get("Authorization", "").startswith("Basic ")
            status = provider.status if authorised else 401
            if status == 201 and self.path == "/2010-04-01/Accounts/AC123/Messages.json":
                with provider.lock:
                    provider.sent.append(form)
                body = json.dumps({"sid": f"SM{uuid.uuid4().hex}"}).encode()
            else:
                body = b'{"message": "refused"}'
                status = status if status != 201 else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield provider, f"twilio+http://AC123:secret-token@127.0.0.1:{port}?from=%2B15550100000"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Clinic:
    """One organization's location (New York, 09:00-17:00 by default), a provider, a room and a service,
    and the engagement loop run by hand: `run()` plans the organization's new events and sends what is
    due through real channels."""

    engine: Engine
    owner: Actor
    clock: ManualClock
    channels: Channels
    location_id: uuid.UUID
    provider_id: uuid.UUID
    service_id: uuid.UUID
    seen: int = 0

    def client(
        self, *, email: str | None = None, phone: str | None = None, consent: ConsentChange | None = None
    ) -> ClientRead:
        with unit_of_work(self.engine) as session:
            return make_client(session, actor=self.owner, email=email, phone=phone, consent=consent)

    def book(self, client_id: uuid.UUID, starts_at: datetime, **changes: Any) -> AppointmentRead:
        data = BookingRequest(
            client_id=client_id,
            service_id=changes.get("service_id", self.service_id),
            location_id=self.location_id,
            starts_at=starts_at,
            provider_id=changes.get("provider_id", self.provider_id),
        )
        with unit_of_work(self.engine) as session:
            return scheduling.book_appointment(session, actor=self.owner, data=data)

    def events(self) -> list[Delivered]:
        with unit_of_work(self.engine, write=False) as session:
            rows = session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.organization_id == self.owner.organization_id, OutboxEvent.id > self.seen)
                .order_by(OutboxEvent.id)
            ).all()
            events = [
                Delivered(e.id, e.organization_id, e.topic, e.aggregate_id, dict(e.payload), e.created_at)
                for e in rows
            ]
        if events:
            self.seen = events[-1].id
        return events

    def plan(self) -> int:
        """Plan the new events' messages (as the `engagement` consumer does); how many events."""
        events = self.events()
        handled = engagement.EngagementHandler(self.engine)(events)
        assert handled == {e.id for e in events}
        return len(events)

    def run(self) -> engagement.DispatchReport:
        self.plan()
        engagement.sweep(self.engine, organization_id=self.owner.organization_id)
        self.plan()
        return engagement.dispatch_due(self.engine, self.channels, organization_id=self.owner.organization_id)

    def messages(self, **filters: Any) -> list[Any]:
        with unit_of_work(self.engine, write=False) as session:
            return engagement.list_messages(session, actor=self.owner, limit=500, **filters).items

    def set_policy(self, **changes: Any) -> None:
        with unit_of_work(self.engine) as session:
            engagement.set_policy(
                session, actor=self.owner, location_id=self.location_id, data=PolicyUpdate(**changes)
            )

    def at(self, instant: datetime) -> None:
        self.clock.set(instant)

    def local_day_start(self, days_ahead: int) -> datetime:
        """Midnight in New York `days_ahead` days after the clock's date there, as UTC."""
        from medspa.kit import tz

        today = tz.to_local(self.clock.now(), "America/New_York").date()
        start, _ = tz.local_day_bounds(today + timedelta(days=days_ahead), "America/New_York")
        return start


@pytest.fixture
def channels(mailbox: tuple[Mailbox, str], sms_provider: tuple[SmsProvider, str]) -> Channels:
    return Channels(email=SmtpChannel(mailbox[1]), sms=TwilioChannel(sms_provider[1]))


@pytest.fixture
def clinic(engine: Engine, owner: Actor, test_clock: ManualClock, channels: Channels) -> Clinic:
    with unit_of_work(engine) as session:
        location = make_location(session, actor=owner, hours=("09:00", "17:00"))
        provider = make_provider(session, actor=owner, location_id=location.id, name="Dr. Reyes")
        make_room(session, actor=owner, location_id=location.id)
        service = make_service(session, actor=owner, post_care="Avoid heat for 48 hours.")
    return Clinic(engine, owner, test_clock, channels, location.id, provider.id, service.id)

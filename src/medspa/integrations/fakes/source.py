"""What both fake sources share: an HTTP server on loopback (stdlib, one thread per request) answering
the source's API from its world, and a sender of the world's changes as signed webhooks, with knobs
(seeded) to duplicate, reorder and drop deliveries, retrying each with backoff until it is acknowledged
(2xx) or the attempts run out. Everything sent and acknowledged is recorded, for tests to compare.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx

from medspa.integrations.fakes.world import Change, World

logger = logging.getLogger(__name__)

Answer = tuple[int, dict[str, str], Any]


@dataclass(frozen=True)
class Knobs:
    """How faithfully webhooks are delivered: a share `duplicate` sent twice, a share `drop` never sent
    (only polling finds those), sent in shuffled windows of `reorder`; a failed send retried `retries`
    times, waiting `backoff_seconds` doubled each time. `seed` makes the choices repeatable."""

    duplicate: float = 0.0
    reorder: int = 1
    drop: float = 0.0
    retries: int = 5
    backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0
    seed: int = 1


@dataclass
class Sent:
    """One webhook: its delivery id, event, record, what became of it, and each transmission's answer
    (the status, or None when the connection failed)."""

    delivery_id: str
    event_type: str
    record_id: int
    body: bytes
    fate: Literal["queued", "dropped", "acknowledged", "failed"] = "queued"
    answers: list[int | None] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """An API call as the fake received it (for tests: which pages were asked for)."""

    path: str
    query: dict[str, str]
    status: int


class FakeSource:
    """A fake connected system: `start()` serves its API on 127.0.0.1 (`base_url`), `change(n)` changes
    its world and queues the webhooks, `flush()` sends them to `target`. Subclasses say the source's
    API (`answer`), webhook bodies (`webhook`) and signature (`signed_headers`)."""

    connector = ""

    def __init__(
        self,
        world: World,
        *,
        api_key: str,
        account: str,
        secret: str,
        target: str | None = None,
        knobs: Knobs | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.world, self.api_key, self.account, self.secret = world, api_key, account, secret
        self.target, self.knobs, self.sleep = target, knobs or Knobs(), sleep
        self.random = random.Random(self.knobs.seed)
        self.sent: list[Sent] = []
        self.requests: list[Request] = []
        self._queue: list[Sent] = []
        self._failures: list[int | None] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # One client for every webhook: a fresh one per send costs tens of milliseconds to set up.
        self._http = httpx.Client(timeout=self.knobs.timeout_seconds)

    # --- the API ------------------------------------------------------------------------------------

    def answer(self, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Answer:
        """The source's answer to `GET path?query` with `headers` (lower-case names)."""
        raise NotImplementedError

    def fail_next(self, count: int = 1, status: int = 503, *, after: int = 0) -> None:
        """After `after` more API calls answered as usual, the next `count` answer `status` (an outage,
        for tests)."""
        with self._lock:
            self._failures = [None] * after + [status] * count

    def _serve(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                answer: Answer = (failure, {}, {"error": "the fake is down, as asked"})
            else:
                answer = self.answer(path, query, headers)
            self.requests.append(Request(path, query, answer[0]))
            return answer

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not serving")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> str:
        """Serve the API on 127.0.0.1:`port` (0: any free port) in a thread; the base URL."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"fake-{self.connector}")
        self._thread.daemon = True
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        self._http.close()

    def __enter__(self) -> FakeSource:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # --- webhooks -----------------------------------------------------------------------------------

    def webhook(self, change: Change, delivery_id: str) -> tuple[str, dict[str, Any]] | None:
        """The event type and body of the webhook of `change`, or None when the source sends none."""
        raise NotImplementedError

    def signed_headers(self, body: bytes) -> dict[str, str]:
        raise NotImplementedError

    def change(self, count: int) -> list[Change]:
        """Change the world `count` times and queue the webhooks of the changes."""
        with self._lock:
            changes = self.world.change(count)
            for change in changes:
                self.queue(change)
            return changes

    def queue(self, change: Change) -> Sent | None:
        """Queue the webhook of `change` (the knobs decide whether it is dropped); without a `target`,
        none is made."""
        if self.target is None:
            return None
        delivery_id = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        made = self.webhook(change, delivery_id)
        if made is None:
            return None
        event_type, envelope = made
        sent = Sent(delivery_id, event_type, change.record.id, json.dumps(envelope).encode())
        with self._lock:
            self.sent.append(sent)
            if self.random.random() < self.knobs.drop:
                sent.fate = "dropped"
            else:
                self._queue.append(sent)
        return sent

    def flush(self, *, everything: bool = True) -> None:
        """Send what is queued in shuffled windows of `reorder`, each of a share `duplicate` twice, each
        transmission retried with backoff until acknowledged. Without `everything`, a last window not
        yet full waits for more."""
        with self._lock:
            size = max(1, self.knobs.reorder)
            whole = len(self._queue) if everything else len(self._queue) // size * size
            taken, self._queue = self._queue[:whole], self._queue[whole:]
        for start in range(0, len(taken), size):
            window = list(taken[start : start + size])
            window += [s for s in window if self.random.random() < self.knobs.duplicate]
            self.random.shuffle(window)
            for sent in window:
                self._transmit(sent)

    def _transmit(self, sent: Sent) -> None:
        if self.target is None:
            raise RuntimeError("no target to send webhooks to")
        headers = {"Content-Type": "application/json", **self.signed_headers(sent.body)}
        if self._http.is_closed:
            self._http = httpx.Client(timeout=self.knobs.timeout_seconds)
        for attempt in range(self.knobs.retries + 1):
            if attempt:
                self.sleep(self.knobs.backoff_seconds * 2 ** (attempt - 1))
            try:
                status: int | None = self._http.post(
                    self.target, content=sent.body, headers=headers
                ).status_code
            except httpx.HTTPError as error:
                logger.info("fake %s: sending %s failed: %s", self.connector, sent.delivery_id, error)
                status = None
            sent.answers.append(status)
            if status is not None and 200 <= status < 300:
                sent.fate = "acknowledged"
                return
        if sent.fate != "acknowledged":
            sent.fate = "failed"

    def acknowledged(self) -> set[str]:
        """The ids of the deliveries the target acknowledged (2xx) at least once."""
        return {s.delivery_id for s in self.sent if s.fate == "acknowledged"}

    def dropped(self) -> list[Sent]:
        return [s for s in self.sent if s.fate == "dropped"]


def _handler(source: FakeSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, extra, body = source._serve(parts.path, query, headers)
            content = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("fake %s: " + format, source.connector, *args)

    return Handler

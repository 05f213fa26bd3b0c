"""Request ids: every HTTP request gets one, kept in a context variable for the audit trail and logs.

A sane incoming `X-Request-ID` (a proxy's, up to 64 characters of letters, digits and `-_.:`) is kept,
so one id follows a request through the proxy and the application; otherwise a random one is made. The
id is echoed in the response's `X-Request-ID`. The threads a request hands its work to inherit it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_current: ContextVar[str | None] = ContextVar("medspa_request_id", default=None)


def current() -> str | None:
    """The id of the request being served in this context; None outside a request (CLI, worker)."""
    return _current.get()


def accepted(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new random one."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


@contextmanager
def using(request_id: str) -> Iterator[str]:
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


class RequestIdMiddleware:
    """Gives each HTTP request its id (see the module) and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == HEADER.encode():
                incoming = value.decode("latin-1")
                break
        request_id = accepted(incoming)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER.encode()]
                headers.append((HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with using(request_id):
            await self.app(scope, receive, send_with_id)

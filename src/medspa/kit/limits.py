"""Bounds on HTTP input that no schema sees: the size of a request body, and the text of query and form
parameters (ADR 9; the payloads themselves are bounded by `kit.schemas`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medspa.kit.schemas import storable_text_problem

DEFAULT_MAX_BODY_BYTES = 1_000_000
# A body over the limit is still read (and dropped) up to this many bytes before the 413: a client that
# is still sending when the server closes gets a reset instead of the answer. Past it, the connection is
# closed at once rather than reading without end.
DRAIN_BYTES = 16_000_000
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BodyLimit:
    """Refuse a request whose body is larger than `max_bytes` with 413 and the JSON error body, before
    anything parses it: at once when its Content-Length says so, or as soon as a body sent in chunks
    (without a length) grows past it. A body within the limit is read whole and handed on unchanged."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            if length <= DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES)
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_BYTES - size)
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "payload_too_large",
                "detail": f"the request body is larger than {self.max_bytes:,} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of the body, at most `budget` bytes more."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(chunks: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A `receive` that first answers the body read so far (or the message that ended it), then the
    server's own `receive` (which reports a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if pending is not None:
                return pending
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return replayed


async def refuse_unstorable_parameters(request: Request) -> None:
    """A dependency of every route: no query or form parameter (name or value) may hold a NUL
    character; 422 naming it. (Payloads in JSON are checked by `kit.schemas.Schema`; a query string is
    decoded with replacement, so an unpaired surrogate cannot reach here.)"""
    problems: list[dict[str, Any]] = []
    parameters: list[tuple[str, str, Any]] = [
        ("query", name, value) for name, value in request.query_params.multi_items()
    ]
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await request.form()
        parameters += [("body", name, value) for name, value in form.multi_items()]
    for where, name, value in parameters:
        problem = storable_text_problem(name) or (
            storable_text_problem(value) if isinstance(value, str) else None
        )
        if problem:
            problems.append({"type": "value_error", "loc": (where, name), "msg": problem, "input": None})
    if problems:
        raise RequestValidationError(problems)

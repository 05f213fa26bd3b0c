"""A fake Zenoti: a center's appointments by date window (`start_date`, `end_date`), paged by `page`
(from 1) and `size` (at most 100), ordered by start time; `Authorization: apikey <key>` required (401
otherwise), and at most `calls_per_window` calls in any `window_seconds` (60 a minute, as Zenoti):
over it, 429 with `Retry-After` in seconds. Webhooks `guest.created|updated` and
`appointment.created|updated`, signed with HMAC-SHA256 of the body in `signature_header` (base64 or
hex); a cancellation sends none (Zenoti does not), so only polling sees it.

Start and end times are the center's local time without offset; `last_updated_time` is UTC, without
offset.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final

from medspa.integrations.envelopes import zenoti_envelope
from medspa.integrations.fakes.source import Answer, FakeSource
from medspa.integrations.fakes.world import (
    Change,
    FakeAppointment,
    FakeClient,
    Status,
    local_text,
    service_name,
    utc_text,
)
from medspa.integrations.receiving import ZENOTI_HEADER

STATUSES: Final[dict[Status, int]] = {
    "no_show": -2,
    "cancelled": -1,
    "late_cancelled": -1,
    "booked": 0,
    "completed": 1,
    "arrived": 2,
    "confirmed": 4,
}
MAX_SIZE: Final = 100


def guid(number: int) -> str:
    """Zenoti's ids are GUIDs: a number as one, repeatably."""
    return str(uuid.UUID(int=number))


def api_appointment(
    appointment: FakeAppointment, center_id: str, clients: Mapping[int, FakeClient]
) -> dict[str, Any]:
    client = clients.get(appointment.client_id)
    return {
        "appointment_id": guid(appointment.id),
        "guest": {
            "id": guid(appointment.client_id),
            "first_name": client.first_name if client else None,
            "last_name": client.last_name if client else None,
            "email": client.email if client else None,
        },
        "therapist": {"id": guid(appointment.staff_id)},
        "service": {"id": guid(appointment.service_id), "name": service_name(appointment.service_id)},
        "center_id": center_id,
        "start_time": local_text(appointment.starts),
        "end_time": local_text(appointment.ends),
        "status": STATUSES[appointment.status],
        "last_updated_time": utc_text(appointment.modified_at, suffix=""),
    }


def guest(client: FakeClient) -> dict[str, Any]:
    return {
        "id": guid(client.id),
        "personal_info": {
            "first_name": client.first_name,
            "last_name": client.last_name,
            "email": client.email,
            "mobile_phone": {"number": client.phone},
            "date_of_birth": f"{client.birth_date.isoformat()}T00:00:00",
        },
    }


class FakeZenoti(FakeSource):
    connector = "zenoti"

    def __init__(
        self,
        *args: Any,
        signature_header: str = ZENOTI_HEADER,
        signature_encoding: str = "base64",
        calls_per_window: int = 60,
        window_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.signature_header, self.signature_encoding = signature_header, signature_encoding
        self.calls_per_window, self.window_seconds, self.monotonic = (
            calls_per_window,
            window_seconds,
            monotonic,
        )
        self._calls: deque[float] = deque()

    def _over_limit(self) -> int | None:
        """Seconds to wait when this call is over the rate limit, else None (and the call counts)."""
        now = self.monotonic()
        while self._calls and now - self._calls[0] >= self.window_seconds:
            self._calls.popleft()
        if len(self._calls) >= self.calls_per_window:
            return max(1, math.ceil(self._calls[0] + self.window_seconds - now))
        self._calls.append(now)
        return None

    def answer(self, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Answer:
        if headers.get("authorization") != f"apikey {self.api_key}":
            return 401, {}, {"error": {"code": 401, "message": "Authorization: apikey <key> required"}}
        wait = self._over_limit()
        if wait is not None:
            return 429, {"Retry-After": str(wait)}, {"error": {"code": 429, "message": "too many requests"}}
        if path != "/v1/appointments":
            return 404, {}, {"error": {"code": 404, "message": path}}
        if query.get("center_id") != self.account:
            return 400, {}, {"error": {"code": 400, "message": "unknown center_id"}}
        try:
            start = date.fromisoformat(query["start_date"])
            end = date.fromisoformat(query["end_date"])
            page, size = int(query.get("page", "1")), min(MAX_SIZE, int(query.get("size", "100")))
        except (KeyError, ValueError):
            return 400, {}, {"error": {"code": 400, "message": "start_date, end_date, page, size"}}
        if page < 1 or size < 1:
            return 400, {}, {"error": {"code": 400, "message": "page and size are at least 1"}}
        chosen = sorted(
            (a for a in self.world.appointments.values() if start <= a.starts.date() <= end),
            key=lambda a: (a.starts, a.id),
        )
        items = [api_appointment(a, self.account, self.world.clients) for a in chosen]
        return (
            200,
            {},
            {
                "appointments": items[(page - 1) * size : page * size],
                "page_info": {"total": len(items), "page": page, "size": size},
            },
        )

    def webhook(self, change: Change, delivery_id: str) -> tuple[str, dict[str, Any]] | None:
        record = change.record
        if change.action == "cancelled":
            return None
        at = utc_text(record.modified_at, suffix="")
        if isinstance(record, FakeClient):
            event_type, data = f"guest.{change.action}", guest(record)
        else:
            event_type = f"appointment.{change.action}"
            data = api_appointment(record, self.account, self.world.clients)
        event_id = f"{event_type}:{data.get('id') or data.get('appointment_id')}:{at}"
        return event_type, zenoti_envelope(delivery_id, event_id, event_type, at, data)

    def signed_headers(self, body: bytes) -> dict[str, str]:
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).digest()
        value = digest.hex() if self.signature_encoding == "hex" else base64.b64encode(digest).decode()
        return {self.signature_header: value}

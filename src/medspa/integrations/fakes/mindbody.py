"""A fake Mindbody (public API v6 shapes): clients and staff appointments by `LastModifiedDate`, paged
by `limit` (at most 200) and `offset`, ordered by id; `Api-Key` and `SiteId` headers required (401
otherwise). Webhooks `client.created|updated` and `appointmentBooking.created|updated|cancelled`,
signed `X-Mindbody-Signature: sha256=<base64 HMAC-SHA256(secret, body)>`.

Appointment times are the site's local time without offset; last-modified times are UTC (`Z`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, Final

from medspa.integrations.envelopes import (
    mindbody_appointment_data,
    mindbody_client_data,
    mindbody_envelope,
)
from medspa.integrations.fakes.source import Answer, FakeSource
from medspa.integrations.fakes.world import Change, FakeAppointment, FakeClient, Status, local_text, utc_text
from medspa.integrations.receiving import read_instant

STATUSES: Final[dict[Status, str]] = {
    "booked": "Booked",
    "confirmed": "Confirmed",
    "arrived": "Arrived",
    "completed": "Completed",
    "no_show": "NoShow",
    "cancelled": "Cancelled",
    "late_cancelled": "LateCancelled",
}
MAX_LIMIT: Final = 200


def api_client(client: FakeClient) -> dict[str, Any]:
    return {
        "Id": str(client.id),
        "FirstName": client.first_name,
        "LastName": client.last_name,
        "Email": client.email,
        "MobilePhone": client.phone,
        "BirthDate": f"{client.birth_date.isoformat()}T00:00:00",
        "LastModifiedDateTime": utc_text(client.modified_at),
    }


def api_appointment(appointment: FakeAppointment) -> dict[str, Any]:
    return {
        "Id": appointment.id,
        "Status": STATUSES[appointment.status],
        "StartDateTime": local_text(appointment.starts),
        "EndDateTime": local_text(appointment.ends),
        "LocationId": appointment.location_id,
        "ClientId": str(appointment.client_id),
        "StaffId": appointment.staff_id,
        "SessionTypeId": appointment.service_id,
        "LastModifiedDateTime": utc_text(appointment.modified_at),
    }


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def _page(items: Sequence[dict[str, Any]], key: str, query: Mapping[str, str]) -> Answer:
    try:
        limit = min(MAX_LIMIT, int(query.get("limit", "100")))
        offset = int(query.get("offset", "0"))
    except ValueError:
        return 400, {}, {"Error": {"Code": "InvalidParameter", "Message": "limit and offset are numbers"}}
    if limit < 1 or offset < 0:
        return 400, {}, {"Error": {"Code": "InvalidParameter", "Message": "limit >= 1, offset >= 0"}}
    page = list(items[offset : offset + limit])
    return (
        200,
        {},
        {
            "PaginationResponse": {
                "RequestedLimit": limit,
                "RequestedOffset": offset,
                "PageSize": len(page),
                "TotalResults": len(items),
            },
            key: page,
        },
    )


def _day(text: str | None, default: date, end: bool) -> datetime:
    day = datetime.fromisoformat(text) if text else datetime.combine(default, time())
    return day.replace(hour=23, minute=59, second=59) if end and day.time() == time() else day


class FakeMindbody(FakeSource):
    connector = "mindbody"

    def answer(self, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Answer:
        if headers.get("api-key") != self.api_key or headers.get("siteid") != self.account:
            return 401, {}, {"Error": {"Code": "DeniedAccess", "Message": "Api-Key and SiteId required"}}
        since = read_instant(query["LastModifiedDate"]) if query.get("LastModifiedDate") else None
        if query.get("LastModifiedDate") and since is None:
            return 400, {}, {"Error": {"Code": "InvalidParameter", "Message": "LastModifiedDate"}}
        if path == "/public/v6/client/clients":
            clients = [
                api_client(c)
                for _, c in sorted(self.world.clients.items())
                if since is None or c.modified_at >= since
            ]
            return _page(clients, "Clients", query)
        if path == "/public/v6/appointment/staffappointments":
            try:
                start = _day(query.get("StartDate"), self.world.today(), end=False)
                end = _day(query.get("EndDate") or query.get("StartDate"), self.world.today(), end=True)
            except ValueError:
                return 400, {}, {"Error": {"Code": "InvalidParameter", "Message": "StartDate, EndDate"}}
            appointments = [
                api_appointment(a)
                for _, a in sorted(self.world.appointments.items())
                if start <= a.starts <= end and (since is None or a.modified_at >= since)
            ]
            return _page(appointments, "Appointments", query)
        return 404, {}, {"Error": {"Code": "NotFound", "Message": path}}

    def webhook(self, change: Change, delivery_id: str) -> tuple[str, dict[str, Any]] | None:
        record, at = change.record, utc_text(change.record.modified_at)
        if isinstance(record, FakeClient):
            event_type = f"client.{change.action}"
            data = mindbody_client_data(self.account, api_client(record))
        else:
            event_type = f"appointmentBooking.{change.action}"
            data = mindbody_appointment_data(self.account, api_appointment(record))
        return event_type, mindbody_envelope(delivery_id, event_type, at, data)

    def signed_headers(self, body: bytes) -> dict[str, str]:
        return {"X-Mindbody-Signature": sign(self.secret, body)}

"""What a webhook delivery must prove before it is stored, and what is read from its envelope.

Signatures are checked on the raw body with constant-time comparison (`hmac.compare_digest`):

- Mindbody: `X-Mindbody-Signature: sha256=<base64 HMAC-SHA256(secret, body)>`; envelope `{messageId,
  eventId, eventSchemaVersion, eventInstanceOriginationDateTime, eventData}`: `messageId` identifies the
  delivery, `eventId` names the event (`client.created`).
- Zenoti: HMAC-SHA256 of the body in a header, base64 or hex, both set per connection (default
  `X-Zenoti-Signature`, base64); envelope `{id, event_type, event_timestamp, data}`.
- Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` (several,
  space-separated, during a secret's rotation), HMAC-SHA256 over `id.timestamp.body` with the base64 key
  after `whsec_`; a timestamp more than `TOLERANCE` from now is refused. Body `{type, timestamp, data}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

TOLERANCE: Final = timedelta(minutes=5)
MAX_ID_LENGTH: Final = 200
MAX_TYPE_LENGTH: Final = 100
ZENOTI_HEADER: Final = "X-Zenoti-Signature"


class DeliveryRefusedError(Exception):
    """A delivery that is not stored: `status` is the answer (400, 401, 415), `reason` the log line's."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id at the source, the event's name, when the source says it happened,
    and the event's data."""

    source_event_id: str
    event_type: str
    source_time: datetime | None
    data: dict[str, Any]


def _mac(key: bytes, content: bytes) -> bytes:
    return hmac.new(key, content, hashlib.sha256).digest()


def _same(expected: bytes, given: str, encoding: str) -> bool:
    try:
        raw = bytes.fromhex(given) if encoding == "hex" else base64.b64decode(given, validate=True)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(expected, raw)


def standard_key(secret: str) -> bytes:
    """The key of a Standard Webhooks secret (`whsec_<base64>`). ValueError for anything else."""
    if not secret.startswith("whsec_"):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error) as error:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from error
    if len(key) < 16:
        raise ValueError("a Standard Webhooks key has at least 16 bytes")
    return key


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise DeliveryRefusedError(400, "the body is not JSON") from error
    if not isinstance(parsed, dict):
        raise DeliveryRefusedError(400, "the body is not a JSON object")
    return parsed


def _text(value: object, name: str, limit: int) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise DeliveryRefusedError(400, f"the envelope's {name} is missing or not a short text")
    return value.strip()


def read_instant(value: object) -> datetime | None:
    """An ISO 8601 instant (naive read as UTC), or None when missing or unreadable."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _data(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DeliveryRefusedError(400, "the envelope's data is not an object")
    return value


def verify(
    connector: str,
    *,
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    signature_header: str | None = None,
    signature_encoding: str = "base64",
) -> Delivery:
    """The delivery, once its signature (and for Standard Webhooks its timestamp) holds; DeliveryRefusedError
    otherwise. The body is parsed only after the signature is checked."""
    if connector == "mindbody":
        given = headers.get("x-mindbody-signature", "")
        if not given.startswith("sha256=") or not _same(_mac(secret.encode(), body), given[7:], "base64"):
            raise DeliveryRefusedError(401, "bad or missing X-Mindbody-Signature")
        envelope = _json(body)
        return Delivery(
            _text(envelope.get("messageId"), "messageId", MAX_ID_LENGTH),
            _text(envelope.get("eventId"), "eventId", MAX_TYPE_LENGTH),
            read_instant(envelope.get("eventInstanceOriginationDateTime")),
            _data(envelope.get("eventData")),
        )
    if connector == "zenoti":
        header = (signature_header or ZENOTI_HEADER).lower()
        given = headers.get(header, "").removeprefix("sha256=")
        if not given or not _same(_mac(secret.encode(), body), given, signature_encoding):
            raise DeliveryRefusedError(401, f"bad or missing {signature_header or ZENOTI_HEADER}")
        envelope = _json(body)
        return Delivery(
            _text(envelope.get("id") or envelope.get("event_id"), "id", MAX_ID_LENGTH),
            _text(envelope.get("event_type"), "event_type", MAX_TYPE_LENGTH),
            read_instant(envelope.get("event_timestamp")),
            _data(envelope.get("data")),
        )
    if connector == "standard":
        message_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        if not message_id or len(message_id) > MAX_ID_LENGTH or not stamp.isdigit() or len(stamp) > 12:
            raise DeliveryRefusedError(401, "missing or malformed webhook-id or webhook-timestamp")
        sent = datetime.fromtimestamp(int(stamp), UTC)
        if abs(now - sent) > TOLERANCE:
            raise DeliveryRefusedError(401, "webhook-timestamp is more than 5 minutes from now")
        expected = _mac(standard_key(secret), f"{message_id}.{stamp}.".encode() + body)
        signatures = headers.get("webhook-signature", "").split()
        if not any(s.startswith("v1,") and _same(expected, s[3:], "base64") for s in signatures[:8]):
            raise DeliveryRefusedError(401, "bad or missing webhook-signature")
        envelope = _json(body)
        return Delivery(
            _text(message_id, "webhook-id", MAX_ID_LENGTH),
            _text(envelope.get("type"), "type", MAX_TYPE_LENGTH),
            read_instant(envelope.get("timestamp")) or sent,
            _data(envelope.get("data")),
        )
    raise DeliveryRefusedError(404, f"no connector {connector!r}")


def envelope_data(connector: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """The event's data in a stored (verified) delivery's envelope."""
    key = {"mindbody": "eventData", "zenoti": "data"}.get(connector, "data")
    data = envelope.get(key)
    return data if isinstance(data, dict) else {}

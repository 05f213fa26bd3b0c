"""What the API takes and gives for connections and their inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from medspa.integrations.receiving import standard_key
from medspa.kit.schemas import Name, ReadSchema, Schema

Connector = Literal["mindbody", "zenoti", "standard"]
InboxState = Literal["received", "applied", "skipped", "failed"]
# Connectors whose APIs can be polled (`integrations.polling`).
POLLED: tuple[Connector, ...] = ("mindbody", "zenoti")


def http_url(value: str) -> str:
    """`value` when it is an http or https URL with a host, without credentials or spaces; else
    ValueError."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http or https URL")
    if parts.username or parts.password:
        raise ValueError("a URL without credentials in it")
    if any(c.isspace() for c in value):
        raise ValueError("a URL without spaces")
    return value


def _printable(value: str | None) -> str | None:
    if value is not None and (not value.isprintable() or value != value.strip()):
        raise ValueError("printable text without surrounding spaces")
    return value


PollUrl = Annotated[str, Field(min_length=8, max_length=2000)]
PollAccount = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
PollKey = Annotated[str, Field(min_length=8, max_length=500)]


class ConnectionCreate(Schema):
    connector: Connector
    name: Name = "default"
    # The shared secret the source signs with (Standard Webhooks: `whsec_<base64>`); never shown again.
    secret: Annotated[str, Field(min_length=8, max_length=500)]
    # Zenoti only: the header that carries the signature, and its encoding.
    signature_header: Annotated[str | None, Field(max_length=64, pattern=r"^[A-Za-z0-9-]+$")] = None
    signature_encoding: Literal["base64", "hex"] = "base64"
    # Polling (Mindbody, Zenoti; all three or none): the API's root URL, the account there (Mindbody's
    # site id, Zenoti's center id) and the API key (stored sealed, never shown again).
    poll_url: PollUrl | None = None
    poll_account: PollAccount | None = None
    poll_key: PollKey | None = None

    printable_secrets = field_validator("secret", "poll_key")(_printable)

    @field_validator("poll_url")
    @classmethod
    def _poll_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("connector") == "standard":
            standard_key(value)  # ValueError, reported as the field's 422
        return value

    @model_validator(mode="after")
    def _polling_complete(self) -> ConnectionCreate:
        polling = (self.poll_url, self.poll_account, self.poll_key)
        if any(v is not None for v in polling):
            if self.connector not in POLLED:
                raise ValueError("only Mindbody and Zenoti connections are polled")
            if any(v is None for v in polling):
                raise ValueError("polling needs poll_url, poll_account and poll_key together")
        return self


class PollingSet(Schema):
    """A Mindbody or Zenoti connection's polling: the API's root URL, the account there (Mindbody's site
    id, Zenoti's center id) and the API key (stored sealed, never shown again)."""

    poll_url: PollUrl
    poll_account: PollAccount
    poll_key: PollKey

    printable_key = field_validator("poll_key")(_printable)

    @field_validator("poll_url")
    @classmethod
    def _poll_url(cls, value: str) -> str:
        return http_url(value)


class ConnectionRead(ReadSchema):
    id: uuid.UUID
    connector: Connector
    name: str
    signature_header: str | None
    signature_encoding: str
    poll_url: str | None
    poll_account: str | None
    is_active: bool
    created_at: datetime
    # Where the source should send its webhooks (relative to this server).
    webhook_path: str


class InboxRead(ReadSchema):
    id: uuid.UUID
    connection_id: uuid.UUID
    source_event_id: str
    event_type: str
    source_time: datetime | None
    state: InboxState
    attempts: int
    last_error: str | None
    not_before: datetime | None
    received_at: datetime
    processed_at: datetime | None


MappedKind = Literal["location", "service", "provider"]


class MappingSet(Schema):
    """One of the source's locations, services or providers (its id there) mapped to ours."""

    kind: MappedKind
    external_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
    record_id: uuid.UUID


class MappingRead(ReadSchema):
    connection_id: uuid.UUID
    kind: MappedKind
    external_id: str
    record_id: uuid.UUID
    updated_at: datetime


Topic = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")]
DeliveryState = Literal["pending", "sending", "delivered", "abandoned"]


class SubscriptionCreate(Schema):
    # Where our events go: an http or https URL without credentials in it.
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    topics: Annotated[list[Topic], Field(min_length=1, max_length=50)] = ["*"]

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)  # (the signature is the credential)


class SubscriptionRead(ReadSchema):
    id: uuid.UUID
    url: str
    topics: list[str]
    is_active: bool
    failures_in_a_row: int
    disabled_reason: str | None
    created_at: datetime


class SubscriptionCreated(SubscriptionRead):
    # The `whsec_` secret our messages are signed with: shown this once, never again.
    secret: str


class DeliveryRead(ReadSchema):
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: int
    topic: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

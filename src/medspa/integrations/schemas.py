"""What the API takes and gives for connections and their inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from medspa.integrations.receiving import standard_key
from medspa.kit.schemas import Name, ReadSchema, Schema

Connector = Literal["mindbody", "zenoti", "standard"]
InboxState = Literal["received", "applied", "skipped", "failed"]


class ConnectionCreate(Schema):
    connector: Connector
    name: Name = "default"
    # The shared secret the source signs with (Standard Webhooks: `whsec_<base64>`); never shown again.
    secret: Annotated[str, Field(min_length=8, max_length=500)]
    # Zenoti only: the header that carries the signature, and its encoding.
    signature_header: Annotated[str | None, Field(max_length=64, pattern=r"^[A-Za-z0-9-]+$")] = None
    signature_encoding: Literal["base64", "hex"] = "base64"

    @field_validator("secret")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or value != value.strip():
            raise ValueError("a secret is printable text without surrounding spaces")
        return value

    @model_validator(mode="after")
    def _standard_secret(self) -> ConnectionCreate:
        if self.connector == "standard":
            standard_key(self.secret)  # ValueError, reported as the field's 422
        return self


class ConnectionRead(ReadSchema):
    id: uuid.UUID
    connector: Connector
    name: str
    signature_header: str | None
    signature_encoding: str
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
    received_at: datetime
    processed_at: datetime | None

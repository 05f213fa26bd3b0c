"""Payloads for clients."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from medspa.kit import clock
from medspa.kit.schemas import BoundedDate, JSONObject, Name, Notes, ReadSchema, Schema, UpdateSchema

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    value = value.strip()
    if not EMAIL.match(value):
        raise ValueError("not an email address")
    return value


def _phone(value: str) -> str:
    digits = re.sub(r"[^\d]", "", value)
    if not 7 <= len(digits) <= 15:
        raise ValueError("a phone number has 7 to 15 digits")
    return value.strip()


def _not_future(value: date) -> date:
    if value > clock.now().date():
        raise ValueError("cannot be in the future")
    return value


Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(_phone)]
# What the client list filters by: exact matches, so only as long as what can be stored.
EmailQuery = Annotated[str, Field(max_length=320)]
PhoneQuery = Annotated[str, Field(max_length=32)]
# What the front desk types into the search box.
SearchQuery = Annotated[str, Field(max_length=200)]
BirthDate = Annotated[BoundedDate, AfterValidator(_not_future)]


class ConsentChange(Schema):
    """Contact permissions to set; a field left out stays as it is (on create: e-mail appointment
    messages on when an address is given, SMS and marketing off until the client says yes)."""

    email: bool | None = None
    sms: bool | None = None
    marketing: bool | None = None


class Consent(ReadSchema):
    email: bool
    sms: bool
    marketing: bool
    updated_at: datetime | None = None


class ClientCreate(Schema):
    first_name: Name
    last_name: Name
    email: Email | None = None
    phone: Phone | None = None
    date_of_birth: BirthDate | None = None
    preferences: JSONObject = {}
    notes: Notes = ""
    consent: ConsentChange = ConsentChange()


class ClientUpdate(UpdateSchema):
    clearable = frozenset({"email", "phone", "date_of_birth"})

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    date_of_birth: BirthDate | None = None
    preferences: JSONObject | None = None
    notes: Notes | None = None
    consent: ConsentChange | None = None


class ClientRead(ReadSchema):
    id: uuid.UUID
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    date_of_birth: date | None
    # Clinical fields: null for a role that may not read them (marketing).
    preferences: dict[str, Any] | None
    notes: str | None
    is_active: bool
    consent: Consent
    created_at: datetime
    updated_at: datetime
    # Set once the client was erased: every field above but the id and dates is then empty.
    erased_at: datetime | None = None
    # Set when this record was merged into another (the one to open instead).
    merged_into_id: uuid.UUID | None = None


ErasureState = Literal["requested", "erased", "refused"]


class MergeRequest(Schema):
    duplicate_id: uuid.UUID


class ErasureRequest(Schema):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class ClientErasureRead(ReadSchema):
    id: uuid.UUID
    client_id: uuid.UUID
    state: ErasureState
    reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None

"""Payloads for organizations, users and tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from medspa.kit.schemas import AwareDatetime, Cents, Name, ReadSchema, Schema
from medspa.security.permissions import Role

Slug = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]*$")]


class OrganizationRead(ReadSchema):
    id: uuid.UUID
    slug: str
    name: str
    is_active: bool


class UserCreate(Schema):
    email: Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    display_name: Name
    role: Role
    password: Annotated[str, Field(min_length=8, max_length=200)] | None = None
    expires_at: AwareDatetime | None = Field(
        default=None, description="when the user stops being able to sign in; required for a contractor"
    )
    provider_id: uuid.UUID | None = Field(
        default=None, description="a provider's own provider record: the appointments they may change"
    )
    location_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=200, description="the locations the user works at; none: every one"
    )

    @model_validator(mode="after")
    def _contractor_expires(self) -> UserCreate:
        if self.role is Role.CONTRACTOR and self.expires_at is None:
            raise ValueError("expires_at: a contractor needs an expiry")
        return self


class UserRead(ReadSchema):
    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    is_active: bool
    expires_at: datetime | None = None
    provider_id: uuid.UUID | None = None


class TokenCreate(Schema):
    name: Name = "api"
    role: Role
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="days until the token stops working; required for a contractor",
    )

    @model_validator(mode="after")
    def _contractor_expires(self) -> TokenCreate:
        if self.role is Role.CONTRACTOR and self.expires_in_days is None:
            raise ValueError("expires_in_days: a contractor's token needs an expiry")
        return self


class TokenRead(ReadSchema):
    id: uuid.UUID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None


class IssuedToken(TokenRead):
    """A new token: `token` is shown this once and never stored."""

    token: str


class AgentActionRead(ReadSchema):
    id: uuid.UUID
    action: str
    tier: int
    agent: str
    trigger: str
    subject_id: uuid.UUID | None
    summary: str
    value_cents: int | None
    state: Literal["ran", "queued", "approved", "rejected", "failed"]
    why: str
    outcome: str | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    ran_at: datetime | None


class AgentPolicyRead(Schema):
    action: str
    description: str
    least_tier: int
    tier: int
    daily_limit: int | None
    value_limit_cents: int | None


class AgentPolicyUpdate(Schema):
    tier: Annotated[int, Field(ge=1, le=3)]
    daily_limit: Annotated[int, Field(ge=0, le=100_000)] | None = None
    value_limit_cents: Cents | None = None


class EmergencyAccessOpen(Schema):
    location_id: uuid.UUID
    reason: Annotated[str, Field(min_length=10, max_length=1000, description="why, in words (audited)")]
    minutes: Annotated[int, Field(ge=1, le=240, description="how long, at most 4 hours")] = 60


class EmergencyAccessRead(ReadSchema):
    id: uuid.UUID
    user_label: str
    location_id: uuid.UUID
    reason: str
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    closed_by: str | None

"""Payloads for organizations, users and tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from medspa.kit.schemas import Cents, Name, ReadSchema, Schema
from medspa.security.actors import Role

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


class UserRead(ReadSchema):
    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    is_active: bool


class TokenCreate(Schema):
    name: Name = "api"
    role: Role


class TokenRead(ReadSchema):
    id: uuid.UUID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None


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

"""Tenants and the people and tokens that act within them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.db import Base, TenantMixin
from medspa.kit.ids import new_id


class Organization(TenantMixin, Base):
    """A tenant. Its `organization_id` is its own id, so every table, this one too, keys on it."""

    __tablename__ = "organizations"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class User(TenantMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("organization_id", "email"),)

    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    # After this instant the user can neither sign in nor use a session (a contractor's end of contract).
    expires_at: Mapped[datetime | None]
    # A provider's own provider record: the appointments they may change (`permissions`).
    provider_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("providers.id"))
    # The TOTP secret of the second factor, sealed under the organization's data key (`_store_totp_secret`);
    # None: not enrolled. `totp_last_step`: the time step of the last code accepted (a code is used once).
    totp_secret: Mapped[str | None] = mapped_column(String(128))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class UserLocation(TenantMixin, Base):
    """A location a user works at. A user with none sees every location of the organization."""

    __tablename__ = "user_locations"
    __table_args__ = (UniqueConstraint("user_id", "location_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))


class ApiToken(TenantMixin, Base):
    """A bearer token. Only its SHA-256 digest is stored; the token is shown once, at creation."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # After this instant the token authenticates nothing (None: until revoked).
    expires_at: Mapped[datetime | None]
    # When it last authenticated a request, to within `security.activity.FLUSH_SECONDS` (None: never).
    last_used_at: Mapped[datetime | None]


class WebSession(TenantMixin, Base):
    """A signed-in browser. The cookie holds a random token; only its digest is stored."""

    __tablename__ = "web_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # When a request last used it, to within `security.activity.FLUSH_SECONDS` (None: not since sign-in).
    last_seen_at: Mapped[datetime | None]


class PendingSignIn(TenantMixin, Base):
    """A password accepted, the second factor still to come: the browser holds a random token for a few
    minutes (only its digest is stored) and exchanges it, with a valid code, for a session."""

    __tablename__ = "pending_sign_ins"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)


class FailedSignIn(Base):
    """A failed sign-in, kept for the throttle's window (`security.service.LOGIN_WINDOW`): which account
    was tried (a digest of organization slug and e-mail, so the table names no one) and from where. Not a
    tenant's record: it is written before anyone is known."""

    __tablename__ = "failed_sign_ins"
    __table_args__ = (
        Index("ix_failed_sign_ins_account_at", "account_key", "attempted_at"),
        Index("ix_failed_sign_ins_address_at", "address", "attempted_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_key: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime]


class OrganizationKey(TenantMixin, Base):
    """A data key of an organization, stored only wrapped by the KEK named `kek_id`."""

    __tablename__ = "organization_keys"
    __table_args__ = (UniqueConstraint("organization_id", "purpose"),)

    purpose: Mapped[str] = mapped_column(String(16))
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    wrapped_at: Mapped[datetime]


class AgentAction(TenantMixin, Base):
    """One action an automated agent took or asked to take (`security.gate`): the action log and, for
    those waiting for a person, the approval queue. `state`: `ran`, `queued`, `approved` (run on a
    person's approval), `rejected`, `failed`."""

    __tablename__ = "agent_actions"
    __table_args__ = (Index("ix_agent_actions_organization_id_state", "organization_id", "state"),)

    action: Mapped[str] = mapped_column(String(64))
    tier: Mapped[int]
    agent: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(500))
    subject_id: Mapped[uuid.UUID | None]
    summary: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]]
    value_cents: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    why: Mapped[str] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    ran_at: Mapped[datetime | None]


class AgentPolicy(TenantMixin, Base):
    """An organization's setting for one kind of agent action: a stricter tier than the kind's own, or
    tier 2's thresholds (how many may run on their own per day; the value above which one waits)."""

    __tablename__ = "agent_policies"
    __table_args__ = (UniqueConstraint("organization_id", "action"),)

    action: Mapped[str] = mapped_column(String(64))
    tier: Mapped[int]
    daily_limit: Mapped[int | None]
    value_limit_cents: Mapped[int | None]
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class EmergencyAccess(TenantMixin, Base):
    """Break-glass: a user's access to a location outside their own, opened by themselves with a written
    reason, for at most `security.emergency.MAX_MINUTES`; audited, and on the managers' alert list."""

    __tablename__ = "emergency_access"
    __table_args__ = (Index("ix_emergency_access_user_id_expires_at", "user_id", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    user_label: Mapped[str] = mapped_column(String(200))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    reason: Mapped[str] = mapped_column(String(1000))
    opened_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))

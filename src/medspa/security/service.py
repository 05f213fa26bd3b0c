"""Organizations, users, API tokens and browser sessions; turning credentials into an `Actor`.

Tokens and session cookies are random and high-entropy, so only their SHA-256 digests are stored (a
stolen database yields no usable credential); passwords are hashed with argon2id.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.orm import Session

from medspa.kit import audit_trail, clock
from medspa.kit.errors import AuthenticationError, ConflictError, NotFoundError, RateLimitedError
from medspa.kit.outbox import record_event
from medspa.kit.schemas import storable_text_problem
from medspa.security.activity import SESSION_IDLE, Activity
from medspa.security.actors import Actor, Permission, Role, require, system_actor
from medspa.security.models import ApiToken, FailedSignIn, Organization, User, WebSession
from medspa.security.schemas import (
    IssuedToken,
    OrganizationRead,
    TokenCreate,
    TokenRead,
    UserCreate,
    UserRead,
)

TOKEN_PREFIX = "msp_"
SESSION_HOURS = 12
_hasher = PasswordHasher()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_organization(session: Session, *, slug: str, name: str) -> OrganizationRead:
    """A new tenant. ConflictError when the slug is taken."""
    if session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        raise ConflictError(f"organization {slug!r} already exists")
    org_id = uuid.uuid4()
    organization = Organization(
        id=org_id, organization_id=org_id, slug=slug, name=name, created_at=clock.now()
    )
    session.add(organization)
    session.flush()
    record_event(session, system_actor(org_id), "organization.created", org_id, {"slug": slug, "name": name})
    return OrganizationRead.model_validate(organization)


def find_organization(session: Session, *, slug: str) -> OrganizationRead | None:
    organization = session.scalar(select(Organization).where(Organization.slug == slug))
    return OrganizationRead.model_validate(organization) if organization else None


def get_organization(session: Session, *, slug: str) -> OrganizationRead:
    organization = find_organization(session, slug=slug)
    if organization is None:
        raise NotFoundError("organization", slug)
    return organization


def create_user(session: Session, *, actor: Actor, data: UserCreate) -> UserRead:
    """Add a staff user; ConflictError when the email is taken in this organization."""
    require(actor, Permission.MANAGE_ACCESS)
    email = data.email.strip().lower()
    taken = select(User.id).where(User.organization_id == actor.organization_id, User.email == email)
    if session.scalar(taken) is not None:
        raise ConflictError(f"a user with email {email} already exists")
    user = User(
        organization_id=actor.organization_id,
        email=email,
        display_name=data.display_name,
        role=data.role.value,
        password_hash=_hasher.hash(data.password) if data.password else None,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    record_event(session, actor, "user.created", user.id, {"id": str(user.id), "role": user.role})
    return UserRead.model_validate(user)


def issue_token(session: Session, *, actor: Actor, data: TokenCreate) -> IssuedToken:
    """A new API token for the actor's organization. The plain token is in the answer and nowhere else.

    An actor cannot issue a token more powerful than its own role allows (needs MANAGE_ACCESS)."""
    require(actor, Permission.MANAGE_ACCESS)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        organization_id=actor.organization_id,
        name=data.name,
        role=data.role.value,
        token_hash=digest(plain),
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        user_id=actor.actor_id if actor.kind == "user" else None,
        created_at=clock.now(),
    )
    session.add(token)
    session.flush()
    record_event(session, actor, "token.issued", token.id, {"id": str(token.id), "role": token.role})
    return IssuedToken.model_validate({**_token_fields(token), "token": plain})


def _token_fields(token: ApiToken) -> dict[str, object]:
    fields = ("id", "name", "role", "prefix", "created_at", "revoked_at", "last_used_at")
    return {key: getattr(token, key) for key in fields}


def list_tokens(session: Session, *, actor: Actor) -> list[TokenRead]:
    """The organization's API tokens, newest first, with when each was last used (to within a minute)
    and revoked; never the tokens themselves."""
    require(actor, Permission.MANAGE_ACCESS)
    rows = session.scalars(
        select(ApiToken)
        .where(ApiToken.organization_id == actor.organization_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [TokenRead.model_validate(_token_fields(token)) for token in rows]


def revoke_token(session: Session, *, actor: Actor, token_id: uuid.UUID) -> None:
    require(actor, Permission.MANAGE_ACCESS)
    token = session.get(ApiToken, token_id)
    if token is None or token.organization_id != actor.organization_id:
        raise NotFoundError("token", token_id)
    token.revoked_at = clock.now()
    session.flush()
    record_event(session, actor, "token.revoked", token.id, {"id": str(token.id)})


# Built once: every API request runs it.
_TOKEN_QUERY = (
    select(ApiToken.id, ApiToken.organization_id, ApiToken.role, ApiToken.name)
    .join(Organization, Organization.id == ApiToken.organization_id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        Organization.is_active.is_(True),
    )
)


def authenticate_token(session: Session, *, token: str, activity: Activity | None = None) -> Actor:
    """The actor behind a bearer token; AuthenticationError for an unknown or revoked one. The use is
    noted in `activity` (the serving process's; written as the token's `last_used_at`)."""
    row = session.execute(_TOKEN_QUERY, {"token_hash": digest(token)}).first()
    if row is None:
        raise AuthenticationError("invalid or revoked token")
    token_id, organization_id, role, name = row
    if activity is not None:
        activity.saw_token(token_id, clock.now())
    return Actor(organization_id=organization_id, kind="token", actor_id=token_id, role=Role(role), name=name)


# The sign-in throttle: within any LOGIN_WINDOW, at most ACCOUNT_FAILURES failed sign-ins to one account
# (organization and e-mail) and ADDRESS_FAILURES from one network address; beyond them a sign-in is
# refused before anything is looked up or any hash computed, until the oldest failure leaves the window.
LOGIN_WINDOW = timedelta(minutes=15)
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20


_TURN = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def _account_key(organization_slug: str, email: str) -> str:
    return digest(f"{organization_slug.strip().lower()}\n{email.strip().lower()}")


def _refuse_when_throttled(session: Session, account_key: str, address: str, now: datetime) -> None:
    """RateLimitedError when the account or the address has used up its failures in the window.

    Sign-ins of one account, and from one address, take their turn (on PostgreSQL a transaction-scoped
    advisory lock on each, always the account's first; SQLite's writer is alone anyway), so attempts
    made at once cannot all pass the count before any failure is recorded."""
    if session.get_bind().dialect.name == "postgresql":
        for key in (f"sign-in account {account_key}", f"sign-in address {address}"):
            session.execute(_TURN, {"key": key})
    since = now - LOGIN_WINDOW
    for column, value, allowed in (
        (FailedSignIn.account_key, account_key, ACCOUNT_FAILURES),
        (FailedSignIn.address, address, ADDRESS_FAILURES),
    ):
        recent = session.scalars(
            select(FailedSignIn.attempted_at)
            .where(column == value, FailedSignIn.attempted_at > since)
            .order_by(FailedSignIn.attempted_at.desc())
            .limit(allowed)
        ).all()
        if len(recent) >= allowed:
            frees_at = recent[-1] + LOGIN_WINDOW
            wait = math.ceil((frees_at - now).total_seconds())
            minutes = max(1, math.ceil(wait / 60))
            raise RateLimitedError(
                f"too many failed sign-ins; try again in {minutes} minute{'s' if minutes > 1 else ''}",
                retry_after=wait,
            )


def _record_failure(session: Session, account_key: str, address: str, now: datetime) -> None:
    """Keep the failure (and forget this account's and address's failures older than the window)."""
    since = now - LOGIN_WINDOW
    session.execute(
        delete(FailedSignIn).where(
            (FailedSignIn.account_key == account_key) | (FailedSignIn.address == address),
            FailedSignIn.attempted_at <= since,
        )
    )
    session.add(FailedSignIn(account_key=account_key, address=address[:64], attempted_at=now))
    session.flush()


def sign_in(
    session: Session, *, organization_slug: str, email: str, password: str, address: str = "unknown"
) -> str:
    """Check a user's password and open a browser session; the returned secret goes in the cookie.
    AuthenticationError (the same message whatever was wrong) otherwise, after the failure is recorded
    in `session` (the caller commits it: a sign-in page answers the error, it does not roll back).
    RateLimitedError (429) before anything else when the account or the network `address` has failed
    too often lately (see LOGIN_WINDOW); a success clears the account's failures. Successes and failures
    are recorded in the audit trail (a failure even when the caller rolls back)."""
    now = clock.now()
    account_key = _account_key(organization_slug, email)
    address = address[:64]
    _refuse_when_throttled(session, account_key, address, now)
    user = _user_with_password(session, organization_slug, email, password)
    if user is None:
        _record_failure(session, account_key, address, now)
        _audit_failure(session, organization_slug, email, address)
        raise AuthenticationError("wrong organization, email or password")
    session.execute(delete(FailedSignIn).where(FailedSignIn.account_key == account_key))
    audit_trail.record_sign_in(
        session, organization_id=user.organization_id, user_id=user.id, actor=f"user:{user.email}"
    )
    secret = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            organization_id=user.organization_id,
            user_id=user.id,
            token_hash=digest(secret),
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    session.flush()
    return secret


def _audit_failure(session: Session, organization_slug: str, email: str, address: str) -> None:
    """Note the failed sign-in in the audit trail, on the organization's chain when the slug names one
    (with the account tried, when it exists), else on the chain of no organization. What was typed is
    not recorded: a password typed into the wrong field would end up in the log."""
    organization_id = user_id = None
    if len(organization_slug) <= 64 and not storable_text_problem(organization_slug):
        organization = find_organization(session, slug=organization_slug.strip().lower())
        if organization is not None:
            organization_id = organization.id
            if len(email) <= 320 and not storable_text_problem(email):
                user_id = session.scalar(
                    select(User.id).where(
                        User.organization_id == organization.id, User.email == email.strip().lower()
                    )
                )
    audit_trail.record_failed_sign_in(
        session, organization_id=organization_id, user_id=user_id, detail=f"from {address}"
    )


def _user_with_password(session: Session, organization_slug: str, email: str, password: str) -> User | None:
    """The active user of that organization and e-mail whose password this is; None otherwise (also for
    text no organization slug or e-mail can be: too long, or not storable)."""
    if (
        len(organization_slug) > 64
        or len(email) > 320
        or any(storable_text_problem(text) for text in (organization_slug, email))
    ):
        return None
    organization = find_organization(session, slug=organization_slug.strip().lower())
    if organization is None:
        return None
    user = session.scalar(
        select(User).where(User.organization_id == organization.id, User.email == email.strip().lower())
    )
    if user is None or not user.is_active or user.password_hash is None:
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        return None
    return user


def authenticate_session(session: Session, *, secret: str, activity: Activity | None = None) -> Actor:
    """The user behind a session cookie; AuthenticationError when unknown, or ended: SESSION_HOURS
    after sign-in, or SESSION_IDLE after its last use (the later of the stored `last_seen_at` and what
    this process's `activity` saw; the use is noted there)."""
    now = clock.now()
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(secret)))
    if row is None or row.expires_at <= now:
        raise AuthenticationError("session expired; sign in again")
    seen = [row.last_seen_at or row.created_at]
    here = activity.session_last_seen(row.id) if activity is not None else None
    if here is not None:
        seen.append(here)
    if now - max(seen) >= SESSION_IDLE:
        raise AuthenticationError(
            f"session ended after {SESSION_IDLE.seconds // 60} minutes without use; sign in again"
        )
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthenticationError("session expired; sign in again")
    if activity is not None:
        activity.saw_session(row.id, now)
    return Actor(
        organization_id=user.organization_id,
        kind="user",
        actor_id=user.id,
        role=Role(user.role),
        name=user.email,
    )


def sign_out(session: Session, *, secret: str) -> None:
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(secret)))
    if row is not None:
        session.delete(row)
        session.flush()

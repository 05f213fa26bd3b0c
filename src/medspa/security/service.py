"""Organizations, users, API tokens and browser sessions; turning credentials into an `Actor`.

Tokens and session cookies are random and high-entropy, so only their SHA-256 digests are stored (a
stolen database yields no usable credential); passwords are hashed with argon2id.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.orm import Session

from medspa.kit import audit_trail, clock
from medspa.kit.crud import prefetch
from medspa.kit.db import confine_to_tenant
from medspa.kit.errors import AuthenticationError, ConflictError, NotFoundError, RateLimitedError
from medspa.kit.outbox import record_event
from medspa.kit.schemas import storable_text_problem
from medspa.security import emergency, keys, totp
from medspa.security.activity import SESSION_IDLE, Activity
from medspa.security.actors import Actor, Role, require, system_actor
from medspa.security.models import (
    ApiToken,
    FailedSignIn,
    Organization,
    PendingSignIn,
    User,
    UserLocation,
    WebSession,
)
from medspa.security.permissions import SECOND_FACTOR_REQUIRED
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
    keys.ensure_organization_keys(session, org_id)
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
    """Add a staff user; ConflictError when the email is taken in this organization, NotFoundError for
    a location or provider record that is not the organization's."""
    require(actor, "users", "create")
    email = data.email.strip().lower()
    for kind, record_id in [("location", i) for i in data.location_ids] + (
        [("provider", data.provider_id)] if data.provider_id else []
    ):
        if not prefetch(session, actor.organization_id, (kind, record_id)):
            raise NotFoundError(kind, record_id)
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
        expires_at=data.expires_at,
        provider_id=data.provider_id,
    )
    session.add(user)
    session.flush()
    session.add_all(
        UserLocation(organization_id=actor.organization_id, user_id=user.id, location_id=location_id)
        for location_id in sorted(set(data.location_ids))
    )
    session.flush()
    record_event(session, actor, "user.created", user.id, {"id": str(user.id), "role": user.role})
    return UserRead.model_validate(user)


def issue_token(session: Session, *, actor: Actor, data: TokenCreate) -> IssuedToken:
    """A new API token for the actor's organization. The plain token is in the answer and nowhere else.

    Only a role allowed to issue tokens may (the owner's); a token acts with the role it is given and
    stops working `expires_in_days` after it is issued, if given (a contractor's must be)."""
    require(actor, "tokens", "create")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    expires_at = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    token = ApiToken(
        organization_id=actor.organization_id,
        name=data.name,
        role=data.role.value,
        token_hash=digest(plain),
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        user_id=actor.actor_id if actor.kind == "user" else None,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    record_event(session, actor, "token.issued", token.id, {"id": str(token.id), "role": token.role})
    return IssuedToken.model_validate({**_token_fields(token), "token": plain})


def _token_fields(token: ApiToken) -> dict[str, object]:
    fields = ("id", "name", "role", "prefix", "created_at", "revoked_at", "last_used_at", "expires_at")
    return {key: getattr(token, key) for key in fields}


def list_tokens(session: Session, *, actor: Actor) -> list[TokenRead]:
    """The organization's API tokens, newest first, with when each was last used (to within a minute)
    and revoked; never the tokens themselves."""
    require(actor, "tokens", "list")
    rows = session.scalars(
        select(ApiToken)
        .where(ApiToken.organization_id == actor.organization_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [TokenRead.model_validate(_token_fields(token)) for token in rows]


def revoke_token(session: Session, *, actor: Actor, token_id: uuid.UUID) -> None:
    require(actor, "tokens", "revoke")
    token = session.get(ApiToken, token_id)
    if token is None or token.organization_id != actor.organization_id:
        raise NotFoundError("token", token_id)
    token.revoked_at = clock.now()
    session.flush()
    record_event(session, actor, "token.revoked", token.id, {"id": str(token.id)})


# Built once: every API request runs it.
_TOKEN_QUERY = (
    select(ApiToken.id, ApiToken.organization_id, ApiToken.role, ApiToken.name, ApiToken.expires_at)
    .join(Organization, Organization.id == ApiToken.organization_id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        Organization.is_active.is_(True),
    )
)


def authenticate_token(session: Session, *, token: str, activity: Activity | None = None) -> Actor:
    """The actor behind a bearer token; AuthenticationError for an unknown, revoked or expired one. The
    use is noted in `activity` (the serving process's; written as the token's `last_used_at`).

    A token acts with its role in every location of the organization, and with no provider record of
    its own (so a provider's token changes no appointment)."""
    row = session.execute(_TOKEN_QUERY, {"token_hash": digest(token)}).first()
    if row is None:
        raise AuthenticationError("invalid or revoked token")
    token_id, organization_id, role, name, expires_at = row
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise AuthenticationError("token expired")
    if activity is not None:
        activity.saw_token(token_id, now)
    confine_to_tenant(session, organization_id)
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


@dataclass(frozen=True)
class SignInStep:
    """What a correct password gets: a browser session (`secret` goes in the session cookie), or, for a
    user with a second factor (`needs_code`), a pending sign-in whose `secret` is exchanged with a code
    for a session by `confirm_sign_in` within PENDING_MINUTES."""

    secret: str
    needs_code: bool


PENDING_MINUTES = 5
PENDING_ATTEMPTS = 5


def sign_in(
    session: Session, *, organization_slug: str, email: str, password: str, address: str = "unknown"
) -> SignInStep:
    """Check a user's password: a browser session for a user without a second factor, a pending sign-in
    for one with it (owners and managers must have one: refused without). AuthenticationError (the same
    message whatever was wrong) otherwise, after the failure is recorded in `session` (the caller commits
    it: a sign-in page answers the error, it does not roll back). RateLimitedError (429) before anything
    else when the account or the network `address` has failed too often lately (see LOGIN_WINDOW); a
    correct password clears the account's failures. Sessions opened and failures are recorded in the
    audit trail (a failure even when the caller rolls back)."""
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
    if _totp_secret(session, user) is None:
        if Role(user.role) in SECOND_FACTOR_REQUIRED:
            raise AuthenticationError(
                "this account needs a second factor and has none yet: ask the clinic's owner to enrol it "
                "(medspa users totp-enrol)"
            )
        _audit_sign_in(session, user)
        return SignInStep(_open_session(session, user, now), needs_code=False)
    return SignInStep(_open_session(session, user, now, pending=True), needs_code=True)


def confirm_sign_in(session: Session, *, pending: str, code: str, address: str = "unknown") -> str:
    """Exchange a pending sign-in and the current TOTP code for a browser session (its cookie secret).

    AuthenticationError when the pending sign-in is unknown or older than PENDING_MINUTES, or the code is
    wrong or already used (each code is accepted once: a step no later than the last accepted is
    refused); after PENDING_ATTEMPTS wrong codes the pending sign-in ends. A wrong code counts as a
    failed sign-in of the account for the throttle (RateLimitedError)."""
    now = clock.now()
    row = session.scalar(select(PendingSignIn).where(PendingSignIn.token_hash == digest(pending)))
    if row is None or row.expires_at <= now:
        raise AuthenticationError("the sign-in has expired; enter your password again")
    user = session.get(User, row.user_id, with_for_update=True)  # one code at a time per user
    organization = session.get(Organization, row.organization_id)
    secret = _totp_secret(session, user) if user is not None else None
    if user is None or organization is None or secret is None or not is_current(user, now):
        raise AuthenticationError("the sign-in has expired; enter your password again")
    account_key = _account_key(organization.slug, user.email)
    address = address[:64]
    _refuse_when_throttled(session, account_key, address, now)
    step = totp.matching_step(secret, code, now, after=user.totp_last_step)
    if step is None:
        row.attempts += 1
        if row.attempts >= PENDING_ATTEMPTS:
            session.delete(row)
        _record_failure(session, account_key, address, now)
        _audit_failure(session, organization.slug, user.email, address)
        raise AuthenticationError("wrong or already used code")
    user.totp_last_step = step
    session.delete(row)
    _audit_sign_in(session, user)
    return _open_session(session, user, now)


def _open_session(session: Session, user: User, now: datetime, *, pending: bool = False) -> str:
    """A browser session of the user (or, `pending`, a sign-in waiting for its code): the random secret
    for the cookie; only its digest is stored."""
    secret = secrets.token_urlsafe(32)
    owned = {"organization_id": user.organization_id, "user_id": user.id, "token_hash": digest(secret)}
    if pending:
        session.add(PendingSignIn(**owned, expires_at=now + timedelta(minutes=PENDING_MINUTES)))
    else:
        session.add(WebSession(**owned, created_at=now, expires_at=now + timedelta(hours=SESSION_HOURS)))
    session.flush()
    return secret


def _totp_secret(session: Session, user: User) -> str | None:
    """The user's TOTP secret, opened from its sealed form (the one place that reads it)."""
    if user.totp_secret is None:
        return None
    key = keys.data_key(session, user.organization_id, "phi")
    return keys.open_text(key, user.totp_secret, where=f"users.totp_secret.{user.id}")


def _store_totp_secret(session: Session, user: User, secret: str) -> None:
    """Keep the user's TOTP secret sealed under the organization's data key, bound to the user (ADR 17):
    the database alone does not give anyone the codes."""
    key = keys.data_key(session, user.organization_id, "phi")
    user.totp_secret = keys.seal_text(key, secret, where=f"users.totp_secret.{user.id}")
    user.totp_last_step = None


@dataclass(frozen=True)
class Enrolment:
    """A second factor set up: the secret and the `otpauth://` URI an authenticator app reads."""

    secret: str
    uri: str


def enrol_totp(session: Session, *, actor: Actor, email: str, secret: str | None = None) -> Enrolment:
    """Give the user of `email` a new TOTP secret (or `secret`, base32), replacing any before; their next
    sign-in needs a code from it. NotFoundError for no such user in the actor's organization."""
    require(actor, "users", "enrol_second_factor")
    user = _user_by_email(session, actor.organization_id, email)
    if user is None:
        raise NotFoundError("user", email)
    chosen = secret or totp.new_secret()
    _store_totp_secret(session, user, chosen)
    session.flush()
    record_event(session, actor, "user.second_factor_enrolled", user.id, {"id": str(user.id)})
    organization = session.get(Organization, user.organization_id)
    issuer = f"medspa {organization.slug}" if organization else "medspa"
    return Enrolment(chosen, totp.provisioning_uri(chosen, account=user.email, issuer=issuer))


def _user_by_email(session: Session, organization_id: uuid.UUID, email: str) -> User | None:
    """The organization's user of that e-mail; None also for text no e-mail can be."""
    if len(email) > 320 or storable_text_problem(email):
        return None
    return session.scalar(
        select(User).where(User.organization_id == organization_id, User.email == email.strip().lower())
    )


def current_code(session: Session, *, actor: Actor, email: str, only_secret: str) -> str | None:
    """The current TOTP code of the user of `email`, when their secret is `only_secret` (the demo's
    published one): what `medspa demo code` prints so a visitor can sign in as the demo owner. None for
    a user with any other secret."""
    user = _user_by_email(session, actor.organization_id, email)
    if user is None or _totp_secret(session, user) != only_secret:
        return None
    return totp.code_at(only_secret, totp.step_at(clock.now()))


def _audit_failure(session: Session, organization_slug: str, email: str, address: str) -> None:
    """Note the failed sign-in in the audit trail, on the organization's chain when the slug names one
    (with the account tried, when it exists), else on the chain of no organization. What was typed is
    not recorded: a password typed into the wrong field would end up in the log."""
    organization_id = user_id = None
    if len(organization_slug) <= 64 and not storable_text_problem(organization_slug):
        organization = find_organization(session, slug=organization_slug.strip().lower())
        if organization is not None:
            organization_id = organization.id
            user = _user_by_email(session, organization.id, email)
            user_id = user.id if user is not None else None
    audit_trail.record_failed_sign_in(
        session, organization_id=organization_id, user_id=user_id, detail=f"from {address}"
    )


def _audit_sign_in(session: Session, user: User) -> None:
    audit_trail.record_sign_in(
        session, organization_id=user.organization_id, user_id=user.id, actor=f"user:{user.email}"
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
    if user is None or not is_current(user, clock.now()) or user.password_hash is None:
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
    if user is None or not is_current(user, now):
        raise AuthenticationError("session expired; sign in again")
    if activity is not None:
        activity.saw_session(row.id, now)
    confine_to_tenant(session, user.organization_id)
    return user_actor(session, user)


def is_current(user: User, now: datetime) -> bool:
    """Active, and not past its expiry (a contractor's end of contract)."""
    return user.is_active and (user.expires_at is None or now < user.expires_at)


def user_actor(session: Session, user: User) -> Actor:
    """The user as an actor: their role, their provider record, and the locations they work at (None,
    every location of the organization, when they are linked to none)."""
    locations = frozenset(
        session.scalars(
            select(UserLocation.location_id).where(
                UserLocation.organization_id == user.organization_id, UserLocation.user_id == user.id
            )
        )
    )
    if locations:  # break-glass grants open now add their locations (`security.emergency`)
        locations |= emergency.locations_open_to(session, user.id, clock.now())
    return Actor(
        organization_id=user.organization_id,
        kind="user",
        actor_id=user.id,
        role=Role(user.role),
        name=user.email,
        location_ids=locations or None,
        provider_id=user.provider_id,
        display_name=user.display_name,
    )


def sign_out(session: Session, *, secret: str) -> None:
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(secret)))
    if row is not None:
        session.delete(row)
        session.flush()

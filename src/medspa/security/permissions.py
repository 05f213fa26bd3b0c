"""Who may do what: one matrix of role x (resource, action), deny by default, and the declarations that
tie every API route and page route to an entry of it.

A route declares what it does with `@permits(resource, action)` (or `@public` for the few that need no
one signed in: health, sign-in). The declaration is enforced where the request's actor is established
(`api.authenticate`, `web.guards.page_actor`): a route without one refuses everybody, and a test walks
the application's routes and fails when one lacks it. Pages ask `allowed_actions(actor)` what to
offer, so they never show a button the role cannot use.

The attribute rules beside the matrix (ADR 19):
- a user linked to locations (`user_locations`) sees only those; with no link, every location of the
  organization (`Actor.location_ids` is None);
- a provider changes only the appointments whose provider is their own provider record
  (`OWN_APPOINTMENTS_ONLY`, `Actor.provider_id`);
- marketing never sees clinical fields (`("clients", "read_clinical")` is not theirs);
- a contractor (and anyone with `expires_at` on their user or token) is refused once it has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar


class Role(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    FRONT_DESK = "front_desk"
    PROVIDER = "provider"
    MARKETING = "marketing"
    CONTRACTOR = "contractor"


OWNER, MANAGER, FRONT_DESK, PROVIDER, MARKETING, CONTRACTOR = Role
EVERYONE = frozenset(Role)
STAFF = frozenset({OWNER, MANAGER, FRONT_DESK, PROVIDER, CONTRACTOR})  # everyone who works the day
DESK = frozenset({OWNER, MANAGER, FRONT_DESK})
LEADS = frozenset({OWNER, MANAGER})
STEPS = DESK | {PROVIDER, CONTRACTOR}  # the lifecycle steps of a visit

Permit = tuple[str, str]

# (resource, action) -> the roles allowed. Anything not here is denied to everyone.
MATRIX: dict[Permit, frozenset[Role]] = {
    # access
    ("users", "create"): frozenset({OWNER}),
    ("users", "enrol_second_factor"): frozenset({OWNER}),
    ("tokens", "create"): frozenset({OWNER}),
    ("tokens", "list"): frozenset({OWNER}),
    ("tokens", "revoke"): frozenset({OWNER}),
    # the clinic's set-up
    ("locations", "read"): EVERYONE,
    ("locations", "manage"): LEADS,
    ("providers", "read"): STAFF,
    ("providers", "manage"): LEADS,
    ("rooms", "read"): STAFF,
    ("rooms", "manage"): LEADS,
    ("devices", "read"): STAFF,
    ("devices", "manage"): LEADS,
    ("services", "read"): EVERYONE,
    ("services", "manage"): LEADS,
    # clients (PHI); marketing sees who, never the clinical fields
    ("clients", "read"): EVERYONE,
    ("clients", "read_clinical"): STAFF,
    ("clients", "create"): DESK,
    ("clients", "update"): DESK,
    ("clients", "deactivate"): DESK,
    # right to delete: asked by the desk, carried out by a manager or owner other than who asked (ADR 17)
    ("clients", "request_erasure"): DESK,
    ("clients", "list_erasures"): DESK,
    ("clients", "erase"): LEADS,
    ("clients", "merge"): LEADS,
    ("retention", "read"): DESK | {MARKETING},
    # memberships: a client's monthly plan (no PHI: plan, price, dates, a reason code)
    ("memberships", "read"): EVERYONE,
    ("memberships", "manage"): DESK,
    # the day
    ("availability", "read"): STAFF,
    ("appointments", "read"): STAFF,
    ("appointments", "hold"): DESK | {CONTRACTOR},
    ("appointments", "book"): DESK | {CONTRACTOR},
    ("appointments", "confirm"): DESK | {CONTRACTOR},
    ("appointments", "check_in"): STEPS,
    ("appointments", "start"): STEPS,
    ("appointments", "complete"): STEPS,
    ("appointments", "no_show"): STEPS,
    ("appointments", "score"): frozenset({OWNER}),  # the worker, acting as the system, stores scores
    ("appointments", "cancel"): DESK | {PROVIDER},
    ("appointments", "reschedule"): DESK | {PROVIDER},
    ("appointments", "overbook"): DESK,
    ("appointments", "correct"): frozenset({OWNER, MANAGER}),
    ("appointments", "remind"): DESK,
    ("appointments", "request_deposit"): DESK,
    ("waitlist", "read"): STAFF,
    ("waitlist", "add"): DESK | {CONTRACTOR},
    ("waitlist", "book"): DESK | {CONTRACTOR},
    ("waitlist", "remove"): DESK,
    ("optimizer", "run"): DESK,
    ("optimizer", "read"): DESK,
    ("optimizer", "apply"): DESK,
    # messages to clients: what was sent and why not; each location's limits and wording
    ("messages", "read"): DESK,
    ("engagement", "read"): DESK,
    ("engagement", "manage"): LEADS,
    # automated actions: the log and approval queue, and the policies that tier them (ADR 20)
    ("agent_actions", "read"): LEADS,
    ("agent_actions", "decide"): LEADS,
    ("agent_policies", "read"): LEADS,
    ("agent_policies", "manage"): frozenset({OWNER}),
    # connections to outside systems (Zenoti, Mindbody, Standard Webhooks) and what they delivered
    ("integrations", "read"): LEADS,
    ("integrations", "manage"): frozenset({OWNER}),
    # break-glass: a person limited to some locations opens another for a while; managers see and end it
    ("emergency_access", "open"): STAFF,
    ("emergency_access", "read"): LEADS,
    ("emergency_access", "close"): LEADS,
}

# Roles whose changes of an appointment are limited to the appointments of their own provider record.
OWN_APPOINTMENTS_ONLY = frozenset({PROVIDER})
# Roles that must sign in with a second factor (a TOTP code) after their password.
SECOND_FACTOR_REQUIRED = frozenset({OWNER, MANAGER})


def allows(role: Role, resource: str, action: str) -> bool:
    """Whether `role` may take `action` on `resource`; False for anything the matrix does not name."""
    return role in MATRIX.get((resource, action), frozenset())


def allowed_actions(role: Role) -> frozenset[str]:
    """Every "resource.action" the role may take: what a page consults to decide what to offer."""
    return frozenset(f"{resource}.{action}" for (resource, action), roles in MATRIX.items() if role in roles)


# --- route declarations -----------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])
PERMIT_ATTRIBUTE = "__medspa_permit__"
PUBLIC = ("public", "")


def permits(resource: str, action: str) -> Callable[[F], F]:
    """Declare that a route takes `action` on `resource`; `action="{name}"` takes it from the path
    parameter `name` (dashes read as underscores), for a route that serves several actions."""
    if not action.startswith("{") and (resource, action) not in MATRIX:
        raise ValueError(f"({resource!r}, {action!r}) is not in the permission matrix")

    def declare(endpoint: F) -> F:
        setattr(endpoint, PERMIT_ATTRIBUTE, (resource, action))
        return endpoint

    return declare


def public(endpoint: F) -> F:
    """Declare that a route needs no one signed in (health, sign-in)."""
    setattr(endpoint, PERMIT_ATTRIBUTE, PUBLIC)
    return endpoint


def declared_permit(endpoint: object) -> Permit | None:
    """What the route of `endpoint` declared; None when it declared nothing."""
    found = getattr(endpoint, PERMIT_ATTRIBUTE, None)
    return found if isinstance(found, tuple) else None


def permit_of_request(endpoint: object, path_params: dict[str, Any]) -> Permit | None:
    """The (resource, action) a request to `endpoint` takes, its action read from the path where the
    declaration names a parameter; None when the route declared nothing (and so permits no one)."""
    declared = declared_permit(endpoint)
    if declared is None or declared == PUBLIC:
        return declared
    resource, action = declared
    if action.startswith("{") and action.endswith("}"):
        action = str(path_params.get(action[1:-1], "")).replace("-", "_")
    return resource, action

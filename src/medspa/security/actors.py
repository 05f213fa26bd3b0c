"""Who is acting: every service call takes an `Actor`, and is scoped to the actor's organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from medspa.kit.errors import PermissionDeniedError


class Role(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    FRONT_DESK = "front_desk"
    PROVIDER = "provider"


class Permission(StrEnum):
    READ = "read"
    BOOK = "book"
    MANAGE_CLIENTS = "manage_clients"
    MANAGE_CLINIC = "manage_clinic"
    MANAGE_ACCESS = "manage_access"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.MANAGER: frozenset(
        {Permission.READ, Permission.BOOK, Permission.MANAGE_CLIENTS, Permission.MANAGE_CLINIC}
    ),
    Role.FRONT_DESK: frozenset({Permission.READ, Permission.BOOK, Permission.MANAGE_CLIENTS}),
    Role.PROVIDER: frozenset({Permission.READ, Permission.BOOK}),
}


@dataclass(frozen=True)
class Actor:
    """A user, an API token, the system itself or an automated agent, acting in one organization."""

    organization_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    role: Role
    name: str

    @property
    def label(self) -> str:
        """How the actor appears in histories: `user:ana@clinic.example`, `token:ci`, `system:holds`."""
        return f"{self.kind}:{self.name}"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def system_actor(organization_id: uuid.UUID, name: str = "medspa") -> Actor:
    return Actor(organization_id=organization_id, kind="system", actor_id=None, role=Role.OWNER, name=name)


def require(actor: Actor, permission: Permission) -> None:
    """Refuse (403) an actor whose role lacks the permission. Deny by default: every write checks. The
    refusal is recorded in the audit trail (by the unit of work that the error ends)."""

    if not actor.can(permission):
        raise PermissionDeniedError(
            f"role {actor.role.value} may not {permission.value}",
            organization_id=actor.organization_id,
            actor=actor.label,
            permission=permission.value,
        )

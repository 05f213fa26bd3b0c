"""Who is acting: every service call takes an `Actor`, and is scoped to the actor's organization (and,
for a user linked to some locations, to those)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from medspa.kit.errors import NotFoundError, PermissionDeniedError
from medspa.security.permissions import OWN_APPOINTMENTS_ONLY, Role, allows

__all__ = ["Actor", "Role", "require", "system_actor"]


@dataclass(frozen=True)
class Actor:
    """A user, an API token, the system itself or an automated agent, acting in one organization.

    `location_ids`: the locations the actor may see; None for every location of the organization.
    `provider_id`: the provider record of a user who is a provider (their own appointments).
    `display_name`: how a person is called on the pages (histories name them by `label`)."""

    organization_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    role: Role
    name: str
    location_ids: frozenset[uuid.UUID] | None = None
    provider_id: uuid.UUID | None = None
    display_name: str | None = None

    @property
    def label(self) -> str:
        """How the actor appears in histories: `user:ana@clinic.example`, `token:ci`, `system:holds`."""
        return f"{self.kind}:{self.name}"

    def can(self, resource: str, action: str) -> bool:
        return allows(self.role, resource, action)

    def sees_location(self, location_id: uuid.UUID) -> bool:
        return self.location_ids is None or location_id in self.location_ids

    def require_location(
        self, location_id: uuid.UUID, kind: str = "location", record_id: object = None
    ) -> None:
        """NotFoundError (404, as for a missing record) when the location is not one the actor sees."""
        if not self.sees_location(location_id):
            raise NotFoundError(kind, record_id if record_id is not None else location_id)

    @property
    def changes_own_appointments_only(self) -> bool:
        return self.role in OWN_APPOINTMENTS_ONLY

    def may_change_appointment_of(self, provider_id: uuid.UUID) -> bool:
        """False when the actor's role changes only its own appointments and `provider_id` (the
        appointment's provider) is not the actor's provider record."""
        return not self.changes_own_appointments_only or provider_id == self.provider_id

    def require_own_appointment(self, provider_id: uuid.UUID) -> None:
        """PermissionDeniedError (403) unless `may_change_appointment_of(provider_id)`."""
        if not self.may_change_appointment_of(provider_id):
            raise PermissionDeniedError(
                f"role {self.role.value} may change only their own appointments",
                organization_id=self.organization_id,
                actor=self.label,
                permission="appointments.own_only",
            )


def system_actor(organization_id: uuid.UUID, name: str = "medspa") -> Actor:
    return Actor(organization_id=organization_id, kind="system", actor_id=None, role=Role.OWNER, name=name)


def require(actor: Actor, resource: str, action: str) -> None:
    """Refuse (403) an actor whose role the permission matrix does not allow `action` on `resource`.
    Deny by default: every service function checks, whoever calls it (API, page, CLI, worker). The
    refusal is recorded in the audit trail (by the unit of work that the error ends)."""
    if not actor.can(resource, action):
        raise PermissionDeniedError(
            f"role {actor.role.value} may not {action.replace('_', ' ')} {resource}",
            organization_id=actor.organization_id,
            actor=actor.label,
            permission=f"{resource}.{action}",
        )

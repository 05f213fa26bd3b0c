"""One error hierarchy with stable codes; the API renders them as `{"error": code, "detail": message}`."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar


class MedspaError(Exception):
    """Base of every error the domain raises on purpose. `detail` is for people: it names things as
    staff know them, never by internal id. `extra` holds fields a program can act on (rendered beside
    `error` and `detail`)."""

    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, Any] = {}


class NotFoundError(MedspaError):
    """The record does not exist, or belongs to another organization (never said apart)."""

    code = "not_found"
    status_code = 404

    def __init__(self, kind: str, record_id: object) -> None:
        # An id says nothing to a person (and the caller knows which one it sent); a name or slug does.
        super().__init__(
            f"{kind} not found" if isinstance(record_id, uuid.UUID) else f"{kind} {record_id} not found"
        )
        self.kind = kind


class ConflictError(MedspaError):
    """A business rule or a concurrent change refuses the operation."""

    code = "conflict"
    status_code = 409


class ResourceBusyError(ConflictError):
    """A provider, room or device is already reserved for part of the time asked for."""

    code = "resource_busy"

    def __init__(self, resource_kind: str, resource_id: object, detail: str | None = None) -> None:
        super().__init__(detail or f"the {resource_kind} is already booked at that time")
        self.resource_kind = resource_kind
        self.resource_id = resource_id


class IllegalTransitionError(ConflictError):
    """The appointment's current status does not allow the step (it may have just changed under a
    concurrent request): `current_status` says what it is now."""

    code = "illegal_transition"

    def __init__(self, detail: str, *, current_status: str | None = None) -> None:
        super().__init__(detail)
        if current_status is not None:
            self.extra["current_status"] = current_status


class ValidationFailedError(MedspaError):
    """Input that parsed but breaks a rule of one field; `field` names it."""

    code = "validation_failed"
    status_code = 422

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class AuthenticationError(MedspaError):
    code = "unauthenticated"
    status_code = 401


class PermissionDeniedError(MedspaError):
    """Refused (403). When the refused actor is known (`organization_id`, `actor` label, `permission`),
    the unit of work records the denial in the audit trail even though it rolls back."""

    code = "forbidden"
    status_code = 403

    def __init__(
        self,
        detail: str,
        *,
        organization_id: uuid.UUID | None = None,
        actor: str | None = None,
        permission: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.organization_id, self.actor, self.permission = organization_id, actor, permission


class RateLimitedError(MedspaError):
    """Too many attempts of something in a while; `retry_after` is the whole seconds until one more is
    admitted (rendered as the `Retry-After` header and in the body)."""

    code = "rate_limited"
    status_code = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)
        self.extra["retry_after"] = self.retry_after

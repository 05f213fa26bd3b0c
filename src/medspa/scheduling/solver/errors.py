"""The solver's own errors: it is a pure engine and depends on nothing of medspa outside this package.
Callers that serve HTTP or a command line turn them into their own kind of error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class SolverInputError(ValueError):
    """An instance or solution the engine cannot take; `detail` says why."""

    code = "solver_input"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InstanceFormatError(SolverInputError):
    """A field of the instance document is missing or malformed; `field` is its path."""

    code = "instance_malformed"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class LockedBookingConflictError(SolverInputError):
    """Locked bookings that cannot all be kept: each entry of `conflicts` names the bookings and why."""

    code = "locked_bookings_conflict"

    def __init__(self, conflicts: Sequence[str]) -> None:
        super().__init__("locked bookings cannot all be kept: " + "; ".join(conflicts))
        self.conflicts = list(conflicts)


class MoveLimitError(SolverInputError):
    """A replan's move limit is lower than the number of bookings that cannot stay where they are (each
    must move or be dropped in any schedule). `reasons` maps each such request id to why."""

    code = "move_limit_too_low"

    def __init__(self, max_moves: int, reasons: Mapping[str, str]) -> None:
        super().__init__(
            f"{len(reasons)} bookings cannot stay where they are, more than the {max_moves} allowed to move: "
            + "; ".join(reasons.values())
        )
        self.max_moves = max_moves
        self.reasons = dict(reasons)

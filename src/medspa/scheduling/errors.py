"""Errors of the scheduling domain beyond the shared ones in `kit.errors`."""

from __future__ import annotations

from medspa.kit.errors import ConflictError


class ClientBusyError(ConflictError):
    """The client already has a live appointment overlapping the time asked for: one client cannot be
    in two places at once. (Choosing another provider or room would not help, so it is never retried.)"""

    code = "client_busy"

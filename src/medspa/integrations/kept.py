"""Connection secrets opened once per server process, not on every delivery.

A webhook's receipt needs its connection's shared secret in the clear to check the signature. Opening it
(AES-GCM under the organization's `integrations` key) on every delivery is work repeated for nothing, so the
opened secret is kept in memory, keyed by the connection and its sealed text exactly as stored. The
connection's row is still read for every delivery (`service.receive_many`, once for the deliveries it takes
together): a deactivated connection refuses at once, in every process, and a secret changed in the row has
another sealed text, so the kept one is simply not found. Kept entries expire `KEPT_SECONDS` after they were
opened, so a secret does not linger in memory long after its connection stopped delivering; at most
`MAX_KEPT` are kept.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from medspa.security import keys

KEPT_SECONDS: Final = 300.0
MAX_KEPT: Final = 4096

_kept: dict[tuple[str, str], tuple[float, str]] = {}
_lock = threading.Lock()


def opened_secret(key: bytes, sealed: str, *, where: str) -> str:
    """`keys.open_text(key, sealed, where=where)`, kept for `KEPT_SECONDS` (DecryptionError as there)."""
    now = time.monotonic()
    kept = _kept.get((where, sealed))
    if kept is not None and kept[0] > now:
        return kept[1]
    plain = keys.open_text(key, sealed, where=where)
    with _lock:
        if len(_kept) >= MAX_KEPT:
            _kept.clear()
        _kept[(where, sealed)] = (now + KEPT_SECONDS, plain)
    return plain


def forget() -> None:
    """Drop every kept secret (tests; and whoever wants none in memory)."""
    with _lock:
        _kept.clear()

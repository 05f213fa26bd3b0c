"""Counting the password hashes the code computes."""

from __future__ import annotations

import threading
from typing import Any


class CountingHasher:
    """The password hasher, counting the verifications it computes."""

    def __init__(self, hasher: Any) -> None:
        self.hasher, self.computed = hasher, 0
        self._lock = threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.computed += 1
        return bool(self.hasher.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hasher, name)

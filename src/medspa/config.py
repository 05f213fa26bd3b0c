"""Settings read from the environment (`MEDSPA_*`), with the embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./var/medspa.db"


@dataclass(frozen=True)
class Settings:
    database_url: str
    hold_minutes: int
    session_cookie_secure: bool

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    """Read the settings now; nothing is cached, so tests can change the environment."""
    return Settings(
        database_url=os.environ.get("MEDSPA_DATABASE_URL") or DEFAULT_DATABASE_URL,
        hold_minutes=int(os.environ.get("MEDSPA_HOLD_MINUTES", "10")),
        session_cookie_secure=os.environ.get("MEDSPA_SECURE_COOKIES", "") == "1",
    )


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a `sqlite:///` URL, or None for other databases and in-memory SQLite."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url.endswith(":memory:"):
        return None
    return Path(database_url[len(prefix) :])

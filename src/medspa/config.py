"""Settings read from the environment (`MEDSPA_*`), with the embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./var/medspa.db"
DEFAULT_DATA_DIR = Path("var")
# Where clients reach the server (the links in their messages); `medspa serve` sets it from its address.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    database_url: str
    hold_minutes: int
    session_cookie_secure: bool
    model_dir: Path
    redis_url: str | None
    huey_path: Path
    max_body_bytes: int
    key_file: Path
    erasure_ledger: Path
    audit_head_file: Path
    public_url: str

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    """Read the settings now; nothing is cached, so tests can change the environment.

    Files the embedded shape keeps (the model registry, Huey's SQLite queue, the key file that wraps the
    PHI data keys, the ledger of erased clients, the audit chains' heads) live beside the SQLite database
    file (`./var/` by default), unless `MEDSPA_MODEL_DIR` / `MEDSPA_HUEY_PATH` / `MEDSPA_KEY_FILE` /
    `MEDSPA_ERASURE_LEDGER` / `MEDSPA_AUDIT_HEAD_FILE` say otherwise."""
    database_url = os.environ.get("MEDSPA_DATABASE_URL") or DEFAULT_DATABASE_URL
    database_file = sqlite_path(database_url)
    data_dir = database_file.parent if database_file is not None else DEFAULT_DATA_DIR
    return Settings(
        database_url=database_url,
        hold_minutes=int(os.environ.get("MEDSPA_HOLD_MINUTES", "10")),
        session_cookie_secure=os.environ.get("MEDSPA_SECURE_COOKIES", "") == "1",
        model_dir=Path(os.environ.get("MEDSPA_MODEL_DIR") or data_dir / "models"),
        redis_url=os.environ.get("MEDSPA_REDIS_URL") or None,
        huey_path=Path(os.environ.get("MEDSPA_HUEY_PATH") or data_dir / "huey.db"),
        max_body_bytes=int(os.environ.get("MEDSPA_MAX_BODY_BYTES", "1000000")),
        key_file=Path(os.environ.get("MEDSPA_KEY_FILE") or data_dir / "medspa.keys"),
        erasure_ledger=Path(os.environ.get("MEDSPA_ERASURE_LEDGER") or data_dir / "erasures.jsonl"),
        audit_head_file=Path(os.environ.get("MEDSPA_AUDIT_HEAD_FILE") or data_dir / "audit-heads.jsonl"),
        public_url=os.environ.get("MEDSPA_PUBLIC_URL") or DEFAULT_PUBLIC_URL,
    )


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a `sqlite:///` URL, or None for other databases and in-memory SQLite."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url.endswith(":memory:"):
        return None
    return Path(database_url[len(prefix) :])

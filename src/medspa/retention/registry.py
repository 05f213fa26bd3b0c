"""A file-based model registry: versioned artifacts with metrics, training window and hashes.

Layout under a root directory:

    <root>/<kind>/<version>.json    one artifact per trained model (immutable once written)
    <root>/<kind>/ACTIVE            the version currently served (one line)

An artifact is JSON: `{"format": 1, "kind", "version", "created_at", "payload", "payload_sha256"}`.
`payload` is the model's own serialization (for the no-show model: booster text, calibration, feature
schema, training window, training-data hash and metrics). `payload_sha256` is the SHA-256 of the
canonical JSON of `payload`; `load` recomputes it and refuses an artifact whose hash does not match
(`ArtifactIntegrityError`). The database-backed registry (issue 6, item 5) can store the same document
in a table row; only `save`/`load` would change.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

ARTIFACT_FORMAT: Final = 1
_VERSION = re.compile(r"^[A-Za-z0-9_.-]+$")


class ArtifactIntegrityError(ValueError):
    """The artifact's payload does not match its recorded hash (corrupted or edited)."""


class ModelNotFoundError(LookupError):
    """No artifact with that kind and version, or no active version."""


def canonical_sha256(payload: dict[str, Any]) -> str:
    """SHA-256 of the payload as canonical JSON (sorted keys, no whitespace, NaN refused)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ArtifactInfo:
    kind: str
    version: str
    created_at: str
    payload_sha256: str
    is_active: bool
    metrics: dict[str, Any]
    training_window: dict[str, Any]


class FileRegistry:
    """Artifacts in a directory tree; every write is a new file (versions are never overwritten)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kind: str, version: str) -> Path:
        if not _VERSION.match(kind) or not _VERSION.match(version):
            raise ValueError(f"invalid kind or version: {kind!r} {version!r}")
        return self.root / kind / f"{version}.json"

    def save(self, kind: str, payload: dict[str, Any], *, now: datetime | None = None) -> str:
        """Store `payload` as a new version of `kind` (named by time and hash prefix); returns the version."""
        digest = canonical_sha256(payload)
        created = (now or datetime.now(UTC)).astimezone(UTC)
        version = f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"
        path = self._path(kind, version)
        if path.exists():
            raise FileExistsError(f"{kind} {version} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "format": ARTIFACT_FORMAT,
            "kind": kind,
            "version": version,
            "created_at": created.isoformat(),
            "payload": payload,
            "payload_sha256": digest,
        }
        path.write_text(json.dumps(document, sort_keys=True, allow_nan=False) + "\n")
        return version

    def load(self, kind: str, version: str | None = None) -> dict[str, Any]:
        """The payload of `version` (default: the active one), after checking its hash."""
        version = version or self.active_version(kind)
        path = self._path(kind, version)
        if not path.exists():
            raise ModelNotFoundError(f"no {kind} model {version}")
        document = json.loads(path.read_text())
        if document.get("format") != ARTIFACT_FORMAT or document.get("kind") != kind:
            raise ArtifactIntegrityError(f"{path} is not a {kind} artifact of format {ARTIFACT_FORMAT}")
        payload: dict[str, Any] = document["payload"]
        if canonical_sha256(payload) != document.get("payload_sha256"):
            raise ArtifactIntegrityError(f"{kind} {version}: payload hash does not match; refusing to load")
        return payload

    def activate(self, kind: str, version: str) -> None:
        """Make `version` the one served; it must exist and pass the hash check."""
        self.load(kind, version)
        (self.root / kind / "ACTIVE").write_text(version + "\n")

    def active_version(self, kind: str) -> str:
        marker = self.root / kind / "ACTIVE"
        if not marker.exists():
            raise ModelNotFoundError(f"no active {kind} model")
        return marker.read_text().strip()

    def list(self, kind: str) -> list[ArtifactInfo]:
        """Every stored version of `kind`, oldest first."""
        folder = self.root / kind
        if not folder.exists():
            return []
        try:
            active = self.active_version(kind)
        except ModelNotFoundError:
            active = ""
        infos: list[ArtifactInfo] = []
        for path in sorted(folder.glob("*.json")):
            document = json.loads(path.read_text())
            payload = document.get("payload", {})
            infos.append(
                ArtifactInfo(
                    kind=kind,
                    version=str(document.get("version")),
                    created_at=str(document.get("created_at")),
                    payload_sha256=str(document.get("payload_sha256")),
                    is_active=document.get("version") == active,
                    metrics=dict(payload.get("metrics", {})),
                    training_window=dict(payload.get("training_window", {})),
                )
            )
        return infos

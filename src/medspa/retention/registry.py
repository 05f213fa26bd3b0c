"""A file-based model registry: versioned artifacts with metrics, training window and a keyed MAC.

Layout under a root directory:

    <root>/<kind>/<version>.json    one artifact per trained model (immutable once written)
    <root>/<kind>/ACTIVE            the version currently served (one line)

An artifact is JSON: `{"format": 2, "kind", "version", "created_at", "payload", "mac"}`. `payload` is
the model's own serialization (for the no-show model: booster text, calibration, feature schema,
training window, training-data hash and metrics). `mac` is HMAC-SHA256, under the registry's key, of the
canonical JSON of everything else in the document; `load` recomputes it and refuses an artifact whose MAC
does not match (`ArtifactIntegrityError`): edited, corrupted, renamed to another version or kind, or
written under another key. The key is never in the artifact: it comes from `MEDSPA_MODEL_KEY` or from a
key file beside the model directory (`model_key`), so whoever can write the model directory but not read
the key cannot forge a model. (Format 1 carried a plain SHA-256 beside the payload, which anyone editing
the file could recompute; such artifacts are refused and must be trained again.)

Writes are atomic: a new artifact or ACTIVE marker is written to a temporary file in the same directory,
flushed to disk and renamed over its final name (then the directory is flushed, so the rename lasts),
so a reader sees the old file or the new one, never a part of one, even if the writer dies midway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from medspa.kit import clock

ARTIFACT_FORMAT: Final = 2
KEY_ENVIRONMENT: Final = "MEDSPA_MODEL_KEY"
MIN_KEY_LENGTH: Final = 32
_VERSION = re.compile(r"^[A-Za-z0-9_.-]+$")


class ArtifactIntegrityError(ValueError):
    """The artifact does not match its MAC (corrupted, edited, or signed with another key)."""


class ModelNotFoundError(LookupError):
    """No artifact with that kind and version, or no active version."""


def canonical_json(document: dict[str, Any]) -> bytes:
    """The document as canonical JSON (sorted keys, no whitespace, NaN refused), UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def canonical_sha256(payload: dict[str, Any]) -> str:
    """SHA-256 of the payload as canonical JSON (a content fingerprint: it names versions)."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def key_file_for(model_dir: Path) -> Path:
    """Where the key of a model directory lives when `MEDSPA_MODEL_KEY` is not set: beside the directory
    (`<model dir>.key`), not in it."""
    return model_dir.with_name(model_dir.name + ".key")


def model_key(model_dir: Path) -> bytes:
    """The MAC key of the registries under `model_dir`: `MEDSPA_MODEL_KEY` when set (at least 32
    characters; every process of a deployment must share it), else the key file beside the directory,
    created with 32 random bytes (hex, mode 0600) the first time. Raises `ValueError` for a short key."""
    configured = os.environ.get(KEY_ENVIRONMENT)
    if configured:
        if len(configured) < MIN_KEY_LENGTH:
            raise ValueError(f"{KEY_ENVIRONMENT} must be at least {MIN_KEY_LENGTH} characters")
        return configured.encode("utf-8")
    path = key_file_for(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    key = path.read_text().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the model key in {path} is shorter than {MIN_KEY_LENGTH} characters")
    return key.encode("utf-8")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old content or the new, never a part: a temporary
    file in the same directory, flushed to disk, then renamed over `path`; the directory is then flushed
    too, so that the rename itself survives a power cut (on a file system that supports it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Flush a directory's entries to disk (where the platform can open a directory; else nothing)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class ArtifactInfo:
    kind: str
    version: str
    created_at: str
    payload_sha256: str
    is_active: bool
    metrics: dict[str, Any]
    training_window: dict[str, Any]
    problem: str | None = None  # why the file could not be read (it is listed, and `load` refuses it)


class FileRegistry:
    """Artifacts in a directory tree; every write is a new file (versions are never overwritten)."""

    def __init__(self, root: Path, *, key: bytes) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"a registry key must be at least {MIN_KEY_LENGTH} bytes")
        self.root = root
        self._key = key

    def _path(self, kind: str, version: str) -> Path:
        if not _VERSION.match(kind) or not _VERSION.match(version):
            raise ValueError(f"invalid kind or version: {kind!r} {version!r}")
        return self.root / kind / f"{version}.json"

    def _mac(self, document: dict[str, Any]) -> str:
        unsigned = {k: v for k, v in document.items() if k != "mac"}
        return hmac.new(self._key, canonical_json(unsigned), hashlib.sha256).hexdigest()

    def save(self, kind: str, payload: dict[str, Any], *, now: datetime | None = None) -> str:
        """Store `payload` as a new version of `kind` (named by time and content hash); returns the
        version. The artifact is written atomically, with its MAC. `now` defaults to the injected clock's
        (`medspa.kit.clock`)."""
        digest = canonical_sha256(payload)
        created = (now or clock.now()).astimezone(UTC)
        version = f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"
        path = self._path(kind, version)
        if path.exists():
            raise FileExistsError(f"{kind} {version} already exists")
        document: dict[str, Any] = {
            "format": ARTIFACT_FORMAT,
            "kind": kind,
            "version": version,
            "created_at": created.isoformat(),
            "payload": payload,
            "payload_sha256": digest,
        }
        document["mac"] = self._mac(document)
        write_atomically(path, json.dumps(document, sort_keys=True, allow_nan=False) + "\n")
        return version

    def load(self, kind: str, version: str | None = None) -> dict[str, Any]:
        """The payload of `version` (default: the active one), after checking its MAC."""
        version = version or self.active_version(kind)
        path = self._path(kind, version)
        if not path.exists():
            raise ModelNotFoundError(f"no {kind} model {version}")
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ArtifactIntegrityError(f"{kind} {version}: not JSON ({error}); refusing to load") from None
        if document.get("format") != ARTIFACT_FORMAT:
            raise ArtifactIntegrityError(
                f"{kind} {version}: artifact format {document.get('format')!r} is not {ARTIFACT_FORMAT} "
                f"(an unsigned artifact from an older version: train the model again)"
            )
        if not hmac.compare_digest(str(document.get("mac", "")), self._mac(document)):
            raise ArtifactIntegrityError(f"{kind} {version}: MAC does not match; refusing to load")
        if document.get("kind") != kind or document.get("version") != version:
            raise ArtifactIntegrityError(f"{path} holds {document.get('kind')} {document.get('version')}")
        payload: dict[str, Any] = document["payload"]
        return payload

    def activate(self, kind: str, version: str) -> None:
        """Make `version` the one served; it must exist and pass the MAC check. Atomic."""
        self.load(kind, version)
        write_atomically(self.root / kind / "ACTIVE", version + "\n")

    def active_version(self, kind: str) -> str:
        marker = self.root / kind / "ACTIVE"
        if not marker.exists():
            raise ModelNotFoundError(f"no active {kind} model")
        return marker.read_text().strip()

    def list(self, kind: str) -> list[ArtifactInfo]:
        """Every stored version of `kind`, oldest first (listed as written; `load` checks the MAC). A file
        that is not an artifact's JSON is listed by its name, with the problem, instead of failing."""
        folder = self.root / kind
        if not folder.exists():
            return []
        try:
            active = self.active_version(kind)
        except ModelNotFoundError:
            active = ""
        infos: list[ArtifactInfo] = []
        for path in sorted(folder.glob("*.json")):
            problem: str | None = None
            try:
                document = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                document, problem = {}, f"not JSON ({error})"
            if not isinstance(document, dict):
                document, problem = {}, "not a JSON object"
            payload = document.get("payload", {})
            if not isinstance(payload, dict):
                payload, problem = {}, "its payload is not a JSON object"
            if problem:
                document = {"version": path.stem}
            infos.append(
                ArtifactInfo(
                    kind=kind,
                    version=str(document.get("version")),
                    created_at=str(document.get("created_at")),
                    payload_sha256=str(document.get("payload_sha256")),
                    is_active=document.get("version") == active,
                    metrics=dict(payload.get("metrics", {})),
                    training_window=dict(payload.get("training_window", {})),
                    problem=problem,
                )
            )
        return infos

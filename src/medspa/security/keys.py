"""Keys for protected health information: envelope encryption with AES-256-GCM (ADR 17).

Three layers. A key-encryption key (KEK) lives outside the database, with a `KeyProvider`: by default a
local key file created on first use with 0600 permissions (`MEDSPA_KEY_FILE`, beside the SQLite file or
`./var/`), and the interface a KMS or Vault provider implements. Each organization has data keys in
`organization_keys`, stored only wrapped by a KEK: `phi` wraps the record keys, `index` keys the blind
indexes. Each record holding PHI (a client) has a record key of its own, wrapped by its organization's
`phi` key, so destroying it makes that record's fields unreadable (crypto-shredding) and nothing else.

Every ciphertext carries associated data naming where it belongs (table, column and row id for a field;
organization and purpose for a data key; the record for a record key), so a ciphertext copied to another
place fails to decrypt instead of revealing its value there.

Rotation (`medspa keys rotate`) adds a new KEK to the provider and re-wraps every organization's data
keys with it, one short transaction per organization. Readers keep working throughout: the old KEK stays
in the provider until `retire_keks` removes those no data key uses any more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from medspa.config import load_settings
from medspa.kit import clock
from medspa.kit.db import insert_ignoring_conflict, unit_of_work
from medspa.security.models import OrganizationKey

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12
SEALED_PREFIX: Final = "v1."
INDEX_BYTES: Final = 16  # a blind index keeps 128 bits of its HMAC-SHA256
KEY_FILE_FORMAT: Final = "medspa-kek/1"
PURPOSES: Final = ("phi", "index", "integrations")


class KeyMaterialError(Exception):
    """A key is missing, malformed or does not fit: the message says which and where to look."""


class DecryptionError(KeyMaterialError):
    """A ciphertext failed authentication: wrong key, tampered, or copied from another place."""


class KeyProvider(Protocol):
    """Where key-encryption keys live. Wrapping binds the data key to `context` (associated data)."""

    def current_kek_id(self) -> str: ...

    def wrap(self, key: bytes, *, context: str) -> tuple[str, bytes]:
        """The key wrapped under the current KEK: (that KEK's id, the wrapped bytes)."""
        ...

    def unwrap(self, wrapped: bytes, *, kek_id: str, context: str) -> bytes: ...

    def add_kek(self) -> str:
        """Create a KEK and make it current; the others stay for unwrapping. Returns its id."""
        ...

    def retire_keks(self, keep: set[str]) -> list[str]:
        """Remove the KEKs not in `keep` (never the current one). Returns the ids removed."""
        ...


def _seal(key: bytes, plaintext: bytes, context: str) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context.encode())


def _open(key: bytes, sealed: bytes, context: str) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionError(f"ciphertext for {context} is truncated")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
    except InvalidTag as error:
        raise DecryptionError(f"ciphertext for {context} does not authenticate under its key") from error


class LocalKeyFile:
    """KEKs in a JSON file readable by its owner alone: `{"format", "current", "keys": {id: base64}}`.

    Created on first use with mode 0600 in a directory of mode 0700 when it is new. A file that others
    may read is refused, as ssh refuses a private key. The file is read again when a KEK id is asked for
    that it did not hold at the last read (another process rotated)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current = ""
        self._keys: dict[str, bytes] = {}
        self._stamp: tuple[int, int] | None = None

    def _load(self) -> None:
        if not self.path.exists():
            self._create()
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyMaterialError(
                f"key file {self.path} may be read by others (mode {mode:o}): chmod 600 it"
            )
        try:
            document = json.loads(self.path.read_text())
            keys = {
                kek_id: base64.b64decode(value, validate=True) for kek_id, value in document["keys"].items()
            }
            current = document["current"]
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as error:
            raise KeyMaterialError(
                f"key file {self.path} is not a {KEY_FILE_FORMAT} file: {error}"
            ) from error
        if document.get("format") != KEY_FILE_FORMAT or current not in keys:
            raise KeyMaterialError(
                f"key file {self.path} is not a {KEY_FILE_FORMAT} file with its current key"
            )
        if any(len(key) != KEY_BYTES for key in keys.values()):
            raise KeyMaterialError(f"key file {self.path} holds a key that is not {KEY_BYTES} bytes")
        self._keys, self._current, self._stamp = keys, current, self._file_stamp()

    def _create(self) -> None:
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700)
        kek_id = _new_kek_id()
        self._write({kek_id: secrets.token_bytes(KEY_BYTES)}, kek_id, exclusive=True)

    def _write(self, keys: dict[str, bytes], current: str, *, exclusive: bool = False) -> None:
        document = {
            "format": KEY_FILE_FORMAT,
            "current": current,
            "keys": {kek_id: base64.b64encode(key).decode() for kek_id, key in keys.items()},
        }
        target = self.path if exclusive else self.path.with_name(self.path.name + ".new")
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        try:
            descriptor = os.open(target, flags, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(target, self.path)

    def _key(self, kek_id: str) -> bytes:
        with self._lock:
            if kek_id not in self._keys:
                self._load()
            if kek_id not in self._keys:
                raise KeyMaterialError(
                    f"key file {self.path} does not hold the key {kek_id!r} (another key file?)"
                )
            return self._keys[kek_id]

    def current_kek_id(self) -> str:
        """The KEK new data keys are wrapped with: read again when the file changed since the last read,
        so a rotation by another process is followed."""
        with self._lock:
            changed = self._stamp != self._file_stamp()
            if not self._current or changed:
                self._load()
            return self._current

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return status.st_mtime_ns, status.st_ino

    def wrap(self, key: bytes, *, context: str) -> tuple[str, bytes]:
        kek_id = self.current_kek_id()
        return kek_id, _seal(self._key(kek_id), key, context)

    def unwrap(self, wrapped: bytes, *, kek_id: str, context: str) -> bytes:
        try:
            return _open(self._key(kek_id), wrapped, context)
        except DecryptionError as error:
            raise KeyMaterialError(
                f"the data key for {context} does not unwrap with {kek_id!r} of {self.path}"
            ) from error

    def add_kek(self) -> str:
        with self._lock:
            self._load()
            kek_id = _new_kek_id()
            keys = {**self._keys, kek_id: secrets.token_bytes(KEY_BYTES)}
            self._write(keys, kek_id)
            self._keys, self._current, self._stamp = keys, kek_id, self._file_stamp()
            return kek_id

    def retire_keks(self, keep: set[str]) -> list[str]:
        with self._lock:
            self._load()
            removed = sorted(k for k in self._keys if k not in keep and k != self._current)
            if removed:
                keys = {k: v for k, v in self._keys.items() if k not in removed}
                self._write(keys, self._current)
                self._keys, self._stamp = keys, self._file_stamp()
            return removed


def _new_kek_id() -> str:
    return f"kek-{clock.now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


_PROVIDERS: dict[Path, LocalKeyFile] = {}
_PROVIDERS_LOCK = threading.Lock()
_OVERRIDE: ContextVar[KeyProvider | None] = ContextVar("medspa_key_provider", default=None)


def provider() -> KeyProvider:
    """The key provider in force: one installed with `using_provider`, else the local key file of the
    settings (one object per path, so its keys are read once per process)."""
    installed = _OVERRIDE.get()
    if installed is not None:
        return installed
    path = load_settings().key_file.resolve()
    with _PROVIDERS_LOCK:
        return _PROVIDERS.setdefault(path, LocalKeyFile(path))


@contextmanager
def using_provider(key_provider: KeyProvider) -> Iterator[None]:
    """Run with another key provider (a KMS, or a test's)."""
    token = _OVERRIDE.set(key_provider)
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def _data_key_context(organization_id: uuid.UUID, purpose: str) -> str:
    return f"organization_keys.{organization_id}.{purpose}"


def ensure_organization_keys(session: Session, organization_id: uuid.UUID) -> None:
    """Create the organization's data keys that do not exist yet (a concurrent creator wins quietly)."""
    existing = set(
        session.scalars(
            select(OrganizationKey.purpose).where(OrganizationKey.organization_id == organization_id)
        )
    )
    key_provider = provider()
    now = clock.now()
    for purpose in PURPOSES:
        if purpose in existing:
            continue
        kek_id, wrapped = key_provider.wrap(
            secrets.token_bytes(KEY_BYTES), context=_data_key_context(organization_id, purpose)
        )
        insert_ignoring_conflict(
            session,
            OrganizationKey,
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "purpose": purpose,
                "kek_id": kek_id,
                "wrapped": wrapped,
                "created_at": now,
                "wrapped_at": now,
            },
        )


_SESSION_CACHE: Final = "medspa_data_keys"


def data_key(session: Session, organization_id: uuid.UUID, purpose: str) -> bytes:
    """The organization's data key for `purpose`, unwrapped (created on first use). Kept in the session
    for its lifetime, never written anywhere."""
    cache: dict[tuple[uuid.UUID, str], bytes] = session.info.setdefault(_SESSION_CACHE, {})
    cached = cache.get((organization_id, purpose))
    if cached is not None:
        return cached
    query = select(OrganizationKey).where(
        OrganizationKey.organization_id == organization_id, OrganizationKey.purpose == purpose
    )
    row = session.scalar(query)
    if row is None:
        ensure_organization_keys(session, organization_id)
        row = session.scalar(query)
        if row is None:  # pragma: no cover - the insert above or a concurrent one made it
            raise KeyMaterialError(f"no {purpose} key for organization {organization_id}")
    key = provider().unwrap(
        row.wrapped, kek_id=row.kek_id, context=_data_key_context(organization_id, purpose)
    )
    cache[(organization_id, purpose)] = key
    return key


# Data keys kept in this process between units of work, for the paths that need one on every request
# (a webhook's receipt seals each body): {(organization, purpose): (monotonic deadline, key)}. Safe to
# keep because a data key never changes once made: rotation re-wraps it under the new KEK and leaves the
# key itself, and so every ciphertext, as it was (`rotate`); a key kept from before a rotation still
# seals and opens exactly what a freshly unwrapped one does. The time limit bounds how long key material
# stays in memory after its last use, and `rotate` drops the organization's kept keys anyway. A key is
# kept only once the transaction that read it has committed, so a key created in a transaction that
# was then rolled back is never kept (it would seal data under a key the database does not hold).
KEPT_SECONDS: Final = 60.0
_KEPT: dict[tuple[uuid.UUID, str], tuple[float, bytes]] = {}


def kept_data_key(session: Session, organization_id: uuid.UUID, purpose: str) -> bytes:
    """`data_key`, kept in this process for up to `KEPT_SECONDS` after it was last unwrapped (see above),
    so a request that needs it finds it without a query or an unwrap."""
    kept = _KEPT.get((organization_id, purpose))
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    key = data_key(session, organization_id, purpose)

    def keep(_session: Session) -> None:
        _KEPT[(organization_id, purpose)] = (time.monotonic() + KEPT_SECONDS, key)

    event.listen(session, "after_commit", keep, once=True)
    return key


def forget_kept_keys(organization_id: uuid.UUID | None = None) -> None:
    """Drop the data keys kept in this process: the organization's, or all of them."""
    for place in [p for p in list(_KEPT) if organization_id is None or p[0] == organization_id]:
        _KEPT.pop(place, None)


def new_record_key(session: Session, organization_id: uuid.UUID, record: str) -> tuple[bytes, bytes]:
    """A fresh key for one record (`clients.<id>`): (the key, the key wrapped by the organization's
    `phi` key, to store beside the record)."""
    key = secrets.token_bytes(KEY_BYTES)
    return key, _seal(data_key(session, organization_id, "phi"), key, f"record-key.{record}")


def record_key(session: Session, organization_id: uuid.UUID, record: str, wrapped: bytes) -> bytes:
    """A record's key from its wrapped form."""
    try:
        return _open(data_key(session, organization_id, "phi"), wrapped, f"record-key.{record}")
    except DecryptionError as error:
        raise KeyMaterialError(f"the key of {record} does not unwrap with its organization's key") from error


def seal_text(key: bytes, plaintext: str, *, where: str) -> str:
    """`plaintext` encrypted for the place `where` (`clients.email.<id>`), as storable text."""
    sealed = _seal(key, plaintext.encode(), where)
    return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_text(key: bytes, sealed: str, *, where: str) -> str:
    """The plaintext of `seal_text`'s output, which must have been sealed for the same place."""
    if not sealed.startswith(SEALED_PREFIX):
        raise DecryptionError(f"the value of {where} is not sealed")
    body = sealed[len(SEALED_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error) as error:
        raise DecryptionError(f"the value of {where} is not sealed text") from error
    return _open(key, raw, where).decode()


def blind_index(key: bytes, kind: str, value: str) -> str:
    """A keyed digest of a normalized value (`kind` separates e-mails from name tokens...): equal values
    give equal digests, and without the key the digest says nothing of the value."""
    mac = hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
    return mac[:INDEX_BYTES].hex()


def rotate(session: Session, organization_id: uuid.UUID, kek_id: str) -> int:
    """Re-wrap the organization's data keys that are not under `kek_id` with the provider's current KEK
    (which must be `kek_id`). The data keys themselves, and so every ciphertext, stay as they are.
    Returns how many were re-wrapped."""
    key_provider = provider()
    if key_provider.current_kek_id() != kek_id:
        raise KeyMaterialError(f"the current key is {key_provider.current_kek_id()!r}, not {kek_id!r}")
    rows = session.scalars(
        select(OrganizationKey)
        .where(OrganizationKey.organization_id == organization_id, OrganizationKey.kek_id != kek_id)
        .with_for_update()
    ).all()
    for row in rows:
        context = _data_key_context(organization_id, row.purpose)
        plain = key_provider.unwrap(row.wrapped, kek_id=row.kek_id, context=context)
        row.kek_id, row.wrapped = key_provider.wrap(plain, context=context)
        row.wrapped_at = clock.now()
    session.flush()
    forget_kept_keys(organization_id)  # not needed (the keys are unchanged), but nothing lingers
    return len(rows)


def keks_in_use(session: Session) -> set[str]:
    return set(session.scalars(select(OrganizationKey.kek_id).distinct()))


@dataclass(frozen=True)
class Rotation:
    kek_id: str
    organizations: int
    rewrapped: int
    retired: list[str]


def rotate_all(engine: Engine, *, retire: bool = False) -> Rotation:
    """`medspa keys rotate`: a new KEK, then every organization's data keys re-wrapped with it, one short
    transaction per organization, while the application keeps serving (it unwraps with either KEK). With
    `retire`, the KEKs no data key uses any more are then removed from the provider."""
    key_provider = provider()
    kek_id = key_provider.add_kek()
    with unit_of_work(engine, write=False) as session:
        organizations = list(session.scalars(select(OrganizationKey.organization_id).distinct()))
    rewrapped = 0
    for organization_id in organizations:
        with unit_of_work(engine) as session:
            rewrapped += rotate(session, organization_id, kek_id)
    retired: list[str] = []
    if retire:
        with unit_of_work(engine, write=False) as session:
            retired = key_provider.retire_keks(keks_in_use(session) | {kek_id})
    return Rotation(kek_id, len(organizations), rewrapped, retired)

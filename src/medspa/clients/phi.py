"""A client's protected health information: sealing it into its row, opening it, and the keyed indexes
that find a client without the database holding what was searched for (ADR 17).

Each field is sealed under the client's record key, bound to `clients.<field>.<client id>`. The blind
indexes use the organization's `index` key: `email_key` (the e-mail, case ignored), `phone_key` (the
national number: digits, without the North American trunk prefix 1) and the search terms (prefixes of the
words of the name and of the e-mail's local part, prefixes and last digits of the phone number).
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medspa.clients.models import PHI_FIELDS, Client, ClientSearchTerm
from medspa.clients.schemas import ClientRead, Consent
from medspa.kit.db import insert_rows
from medspa.security import keys

# Prefixes of a word are indexed from this many characters (a single letter would match a good part of
# any clinic) up to `PREFIX_MAX`; a longer word typed in full is matched on its first `PREFIX_MAX`.
PREFIX_MIN: Final = 2
PREFIX_MAX: Final = 24
PHONE_PREFIX_MIN: Final = 3
PHONE_SUFFIXES: Final = (4, 7)
QUERY_TERMS_MAX: Final = 8
PHONE_QUERY = re.compile(r"^[\d\s().+\-]+$")


def email_lookup(email: str | None) -> str | None:
    """The lookup form of an e-mail address (case-insensitive)."""
    return email.strip().lower() if email else None


def phone_lookup(phone: str | None) -> str | None:
    """The lookup form of a phone number: its national digits, so `+1 (555) 010-2233`, `555.010.2233`
    and `15550102233` are one number. Only the North American trunk prefix is known."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits or None


def words(text: str) -> list[str]:
    """The words of a name or an e-mail's local part, as searched: accents dropped, case folded."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return [w for w in re.split(r"[\W_]+", plain.casefold()) if w]


def _index_key(session: Session, organization_id: uuid.UUID) -> bytes:
    return keys.data_key(session, organization_id, "index")


def email_index(session: Session, organization_id: uuid.UUID, email: str | None) -> str | None:
    lookup = email_lookup(email)
    return keys.blind_index(_index_key(session, organization_id), "email", lookup) if lookup else None


def phone_index(session: Session, organization_id: uuid.UUID, phone: str | None) -> str | None:
    lookup = phone_lookup(phone)
    return keys.blind_index(_index_key(session, organization_id), "phone", lookup) if lookup else None


def _where(field: str, client_id: uuid.UUID) -> str:
    return f"clients.{field}.{client_id}"


def _encode(field: str, value: Any) -> str:
    if field == "date_of_birth":
        return str(value.isoformat())
    if field == "preferences":
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _decode(field: str, text: str) -> Any:
    if field == "date_of_birth":
        return date.fromisoformat(text)
    if field == "preferences":
        return json.loads(text)
    return text


def _record_key(session: Session, client: Client) -> bytes:
    return keys.record_key(session, client.organization_id, f"clients.{client.id}", client.phi_key)


def new_client(
    session: Session, organization_id: uuid.UUID, values: Mapping[str, Any], **columns: Any
) -> Client:
    """A client row (not yet added to the session) holding `values` (every PHI field) sealed under a
    record key of its own, with its blind indexes; the other columns from `columns`."""
    client_id = uuid.uuid4()
    key, wrapped = keys.new_record_key(session, organization_id, f"clients.{client_id}")
    client = Client(id=client_id, organization_id=organization_id, phi_key=wrapped, **columns)
    _seal_into(client, key, values)
    _index_into(session, client, values)
    return client


def seal(session: Session, client: Client, values: Mapping[str, Any]) -> None:
    """Replace some PHI fields of `client` (the others stay as they are), its blind indexes and its
    search terms."""
    current = open_values(session, client)
    _seal_into(client, _record_key(session, client), values)
    merged = {**current, **values}
    _index_into(session, client, merged)
    session.execute(delete(ClientSearchTerm).where(ClientSearchTerm.client_id == client.id))
    add_search_terms(session, client, merged)


def _seal_into(client: Client, key: bytes, values: Mapping[str, Any]) -> None:
    for column, sealed in sealed_columns(client.id, key, values).items():
        setattr(client, f"{column}_sealed", sealed)


def sealed_columns(client_id: uuid.UUID, key: bytes, values: Mapping[str, Any]) -> dict[str, str | None]:
    """The stored form of some PHI fields of the client `client_id` under its record key `key`, by
    column name."""
    columns: dict[str, str | None] = {}
    for field, value in values.items():
        if field not in PHI_FIELDS:
            raise ValueError(f"{field} is not a PHI field of a client")
        columns[field] = (
            None
            if value is None
            else keys.seal_text(key, _encode(field, value), where=_where(field, client_id))
        )
    return columns


def _index_into(session: Session, client: Client, values: Mapping[str, Any]) -> None:
    client.email_key = email_index(session, client.organization_id, values.get("email"))
    client.phone_key = phone_index(session, client.organization_id, values.get("phone"))


def open_values(session: Session, client: Client) -> dict[str, Any]:
    """Every PHI field of `client`, decrypted (null where none is stored)."""
    key = _record_key(session, client)
    values: dict[str, Any] = {}
    for field in PHI_FIELDS:
        sealed = getattr(client, f"{field}_sealed")
        values[field] = (
            None
            if sealed is None
            else _decode(field, keys.open_text(key, sealed, where=_where(field, client.id)))
        )
    return values


ERASED_VALUES: Final[dict[str, Any]] = {
    "first_name": "",
    "last_name": "",
    "email": None,
    "phone": None,
    "date_of_birth": None,
    "preferences": {},
    "notes": "",
}
ERASED_NAME: Final = "(erased client)"


def read(session: Session, client: Client) -> ClientRead:
    """The client as the API shows it; an erased client as its tombstone (no PHI, `erased_at` set)."""
    values = ERASED_VALUES if client.erased_at is not None else open_values(session, client)
    return ClientRead(
        id=client.id,
        **values,
        is_active=client.is_active,
        consent=Consent(
            email=client.consent_email,
            sms=client.consent_sms,
            marketing=client.consent_marketing,
            updated_at=client.consent_updated_at,
        ),
        created_at=client.created_at,
        updated_at=client.updated_at,
        erased_at=client.erased_at,
        merged_into_id=client.merged_into_id,
    )


def shred(session: Session, client: Client) -> None:
    """Erase the client: destroy its record key (the only key its sealed fields ever opened with),
    empty every PHI column, drop its blind indexes and search terms. What is left is a tombstone: the
    id, the organization and the dates. A copy of the row made before (a backup) still holds the
    ciphertext and the wrapped key: `medspa restore` erases it again from the erasure ledger."""
    client.phi_key = b""
    for field in PHI_FIELDS:  # the columns that may not be null keep an empty text
        setattr(client, f"{field}_sealed", None if ERASED_VALUES[field] is None else "")
    client.email_key = client.phone_key = None
    client.is_active = False
    client.consent_email = client.consent_sms = client.consent_marketing = False
    session.execute(delete(ClientSearchTerm).where(ClientSearchTerm.client_id == client.id))


def display_name(session: Session, client: Client) -> str:
    """ "First Last", opening only the two name fields."""
    if client.erased_at is not None:
        return ERASED_NAME
    key = _record_key(session, client)
    first = keys.open_text(key, client.first_name_sealed, where=_where("first_name", client.id))
    last = keys.open_text(key, client.last_name_sealed, where=_where("last_name", client.id))
    return f"{first} {last}"


def _prefixes(word: str, shortest: int) -> Iterable[str]:
    for end in range(shortest, min(len(word), PREFIX_MAX) + 1):
        yield word[:end]


def search_strings(values: Mapping[str, Any]) -> set[tuple[str, str]]:
    """What a client can be found by, as (kind, text): `w` prefixes of name and e-mail words, `p` prefixes
    and last digits of the phone number."""
    found: set[tuple[str, str]] = set()
    email = email_lookup(values.get("email"))
    local = email.split("@", 1)[0] if email else ""
    for word in words(f"{values.get('first_name') or ''} {values.get('last_name') or ''} {local}"):
        found.update(("w", prefix) for prefix in _prefixes(word, PREFIX_MIN))
        if len(word) < PREFIX_MIN:
            found.add(("w", word))
    phone = phone_lookup(values.get("phone"))
    if phone:
        found.update(("p", prefix) for prefix in _prefixes(phone, PHONE_PREFIX_MIN))
        found.update(("p", phone[-n:]) for n in PHONE_SUFFIXES if len(phone) > n)
    return found


def add_search_terms(session: Session, client: Client, values: Mapping[str, Any]) -> None:
    add_search_terms_of(session, [(client, values)])


def add_search_terms_of(session: Session, clients: Sequence[tuple[Client, Mapping[str, Any]]]) -> None:
    """The search terms of each client with its PHI values, in one statement for them all."""
    rows = [
        row
        for client, values in clients
        for row in search_term_rows(session, client.organization_id, client.id, values)
    ]
    insert_rows(session, ClientSearchTerm, rows)


def search_term_rows(
    session: Session, organization_id: uuid.UUID, client_id: uuid.UUID, values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The `client_search_terms` rows of a client with these PHI values."""
    key = _index_key(session, organization_id)
    terms = {keys.blind_index(key, kind, text) for kind, text in search_strings(values)}
    return [{"client_id": client_id, "term": t, "organization_id": organization_id} for t in sorted(terms)]


def query_strings(query: str) -> list[tuple[str, str]]:
    """What to look for when the front desk types `query`: a phone number (in any format) as one `p`
    term; otherwise each word (of names and e-mails alike) as a `w` term. Every term must match."""
    query = query.strip()
    digits = re.sub(r"\D", "", query)
    if PHONE_QUERY.match(query) and len(digits) >= PHONE_PREFIX_MIN:
        national = phone_lookup(digits) or digits
        return [("p", national[:PREFIX_MAX])]
    terms: list[tuple[str, str]] = []
    typed = " ".join(token.split("@", 1)[0] for token in query.split())  # of an e-mail, its local part
    for word in words(typed):
        term = ("w", word[:PREFIX_MAX])
        if term not in terms:
            terms.append(term)
    return terms[:QUERY_TERMS_MAX]


def matching_ids(session: Session, organization_id: uuid.UUID, query: str) -> set[uuid.UUID]:
    """The clients of the organization every term of `query` finds (none for a query without terms)."""
    strings = query_strings(query)
    if not strings:
        return set()
    key = _index_key(session, organization_id)
    terms = {keys.blind_index(key, kind, text) for kind, text in strings}
    statement = (
        select(ClientSearchTerm.client_id)
        .where(ClientSearchTerm.organization_id == organization_id, ClientSearchTerm.term.in_(terms))
        .group_by(ClientSearchTerm.client_id)
        .having(func.count() == len(terms))
    )
    return set(session.scalars(statement))


def rank(query: str, found: Iterable[ClientRead]) -> list[ClientRead]:
    """Best match first: a word typed in full before a prefix, the last name before the first, then by
    name."""
    typed = [text for kind, text in query_strings(query) if kind == "w"]
    email = email_lookup(query) if "@" in query else None

    def score(client: ClientRead) -> tuple[int, str, str, str]:
        last, first = words(client.last_name), words(client.first_name)
        points = 0
        if email is not None and email_lookup(client.email) == email:
            points += 10
        for word in typed:
            points += 3 if word in last else 2 if word in first else 0
            points += 1 if any(w.startswith(word) for w in last) else 0
        return (-points, client.last_name.casefold(), client.first_name.casefold(), str(client.id))

    return sorted(found, key=score)

"""Client profiles, with their protected health information sealed (ADR 17).

Every PHI field (`PHI_FIELDS`) is stored encrypted with AES-256-GCM under the client's own record key
(`phi_key`, wrapped by the organization's data key), bound to its table, column and row id, so the
database holds none of it in plain text. Only `clients.phi` reads and writes these columns. Lookups go
through keyed blind indexes: `email_key` and `phone_key` for exact matches, and `client_search_terms`
for the front desk's search by name, e-mail or phone prefix.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.crud import owned_kind
from medspa.kit.db import Base, TenantMixin

# The protected health information of a client, in the order the API shows it.
PHI_FIELDS = ("first_name", "last_name", "email", "phone", "date_of_birth", "preferences", "notes")


@owned_kind("client")
class Client(TenantMixin, Base):
    __tablename__ = "clients"

    # Sealed text (`security.keys.seal_text`) in the columns named as the fields; null stays null for
    # the optional ones (email, phone, date of birth).
    first_name_sealed: Mapped[str] = mapped_column("first_name", Text)
    last_name_sealed: Mapped[str] = mapped_column("last_name", Text)
    email_sealed: Mapped[str | None] = mapped_column("email", Text)
    phone_sealed: Mapped[str | None] = mapped_column("phone", Text)
    date_of_birth_sealed: Mapped[str | None] = mapped_column("date_of_birth", Text)
    preferences_sealed: Mapped[str] = mapped_column("preferences", Text)
    notes_sealed: Mapped[str] = mapped_column("notes", Text)
    # The client's record key, wrapped by the organization's `phi` data key.
    phi_key: Mapped[bytes] = mapped_column(LargeBinary)

    email_key: Mapped[str | None] = mapped_column(String(320), index=True)
    phone_key: Mapped[str | None] = mapped_column(String(32), index=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Contact permissions (not PHI): appointment messages by e-mail and by SMS, and marketing (follow-up
    # cadences, lapse outreach) on top of the channel's own permission. Changed when the client asks,
    # by a reply (STOP) or a link (unsubscribe), or at the desk; `consent_updated_at` says when.
    consent_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    consent_sms: Mapped[bool] = mapped_column(default=False, server_default=false())
    consent_marketing: Mapped[bool] = mapped_column(default=False, server_default=false())
    consent_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Set when the client was erased: the record key destroyed, every PHI column emptied (a tombstone).
    erased_at: Mapped[datetime | None]
    # Set when this record was a second record of a client, merged into `merged_into_id` (inactive since,
    # everything it held moved to the kept record; its own fields stay as the history of what it held).
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"))
    merged_at: Mapped[datetime | None]


class ClientSearchTerm(Base):
    """A keyed digest of something the front desk may type to find a client: a prefix of a word of the
    name or of the e-mail's local part, the e-mail, the phone number or its last digits."""

    __tablename__ = "client_search_terms"
    __table_args__ = (Index("ix_client_search_terms_organization_id_term", "organization_id", "term"),)

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    term: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization_id: Mapped[uuid.UUID]


class ClientErasure(TenantMixin, Base):
    """A request to erase a client (right to delete), and its outcome: `requested`, then `erased` once
    a manager approved it, or `refused`. Kept after the erasure as its record (names of the staff and
    times, never the client's PHI)."""

    __tablename__ = "client_erasures"

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(320))
    requested_by_id: Mapped[uuid.UUID | None]
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[datetime | None]

"""Client profiles.

Every field that is protected health information is declared in `ClientPHI` and nowhere else, with the
`PHIText` column type, so encrypting them later changes this module and not its callers. Lookups by email
and phone go through `email_key` and `phone_key` (normalized now; a keyed hash once the fields are
encrypted), never through the PHI columns themselves.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from medspa.kit.crud import owned_kind
from medspa.kit.db import Base, TenantMixin


class PHIText(TypeDecorator[str]):
    """A text column holding protected health information: the one place its storage form is decided."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return value

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return value


PHI_FIELDS = ("first_name", "last_name", "email", "phone", "date_of_birth", "preferences", "notes")


class ClientPHI:
    """The protected health information of a client, kept together."""

    first_name: Mapped[str] = mapped_column(PHIText())
    last_name: Mapped[str] = mapped_column(PHIText())
    email: Mapped[str | None] = mapped_column(PHIText())
    phone: Mapped[str | None] = mapped_column(PHIText())
    date_of_birth: Mapped[date | None] = mapped_column(Date())
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str] = mapped_column(PHIText(), default="")


@owned_kind("client")
class Client(TenantMixin, ClientPHI, Base):
    __tablename__ = "clients"

    email_key: Mapped[str | None] = mapped_column(String(320), index=True)
    phone_key: Mapped[str | None] = mapped_column(String(32), index=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

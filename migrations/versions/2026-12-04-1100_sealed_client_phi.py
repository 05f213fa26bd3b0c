"""Clients' PHI sealed with AES-256-GCM under per-client keys, organizations' data keys, blind indexes and
search terms (ADR 17). Existing clients are sealed here, with the key provider of the settings (the key
file is created when there is none); downgrading opens them again.

Revision ID: 9c4f6a8b0d32
Revises: 287b207a4130
Create Date: 2026-12-04 11:00:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

revision = "9c4f6a8b0d32"
down_revision = "287b207a4130"
branch_labels = None
depends_on = None

FIELDS = ("first_name", "last_name", "email", "phone", "date_of_birth", "preferences", "notes")


def upgrade() -> None:
    op.create_table(
        "organization_keys",
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wrapped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_keys")),
        sa.UniqueConstraint(
            "organization_id", "purpose", name=op.f("uq_organization_keys_organization_id_purpose")
        ),
    )
    op.create_index(op.f("ix_organization_keys_organization_id"), "organization_keys", ["organization_id"])
    op.create_table(
        "client_search_terms",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("term", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_search_terms_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "term", name=op.f("pk_client_search_terms")),
    )
    op.create_index(
        "ix_client_search_terms_organization_id_term", "client_search_terms", ["organization_id", "term"]
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phi_key", sa.LargeBinary(), nullable=True))
        batch_op.alter_column(
            "date_of_birth", existing_type=sa.Date(), type_=sa.Text(), postgresql_using="date_of_birth::text"
        )
        batch_op.alter_column(
            "preferences",
            existing_type=sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            type_=sa.Text(),
            postgresql_using="preferences::text",
        )
    _seal_existing_clients()
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.alter_column("phi_key", existing_type=sa.LargeBinary(), nullable=False)


def _seal_existing_clients() -> None:
    from medspa.clients import phi
    from medspa.security import keys

    connection = op.get_bind()
    session = Session(bind=connection)
    rows = connection.execute(
        sa.text(f"SELECT id, organization_id, {', '.join(FIELDS)} FROM clients")  # noqa: S608 - constants
    ).mappings()
    for row in list(rows):
        values: dict[str, Any] = {field: row[field] for field in FIELDS}
        values["date_of_birth"] = _date(values["date_of_birth"])
        values["preferences"] = json.loads(values["preferences"]) if values["preferences"] else {}
        client_id, organization_id = _uuid(row["id"]), _uuid(row["organization_id"])
        key, wrapped = keys.new_record_key(session, organization_id, f"clients.{client_id}")
        columns: dict[str, Any] = dict(phi.sealed_columns(client_id, key, values))
        columns["phi_key"] = wrapped
        columns["email_key"] = phi.email_index(session, organization_id, values["email"])
        columns["phone_key"] = phi.phone_index(session, organization_id, values["phone"])
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        connection.execute(
            sa.text(f"UPDATE clients SET {assignments} WHERE id = :id").bindparams(  # noqa: S608 - constants
                sa.bindparam("phi_key", type_=sa.LargeBinary())
            ),
            {**columns, "id": row["id"]},
        )
        terms = phi.search_term_rows(session, organization_id, client_id, values)
        if terms:
            connection.execute(
                sa.text(
                    "INSERT INTO client_search_terms (client_id, term, organization_id)"
                    " VALUES (:client_id, :term, :organization_id)"
                ),
                [{**t, "client_id": row["id"], "organization_id": row["organization_id"]} for t in terms],
            )
    session.flush()


def _uuid(value: Any) -> Any:
    import uuid

    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _date(value: Any) -> Any:
    from datetime import date

    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def downgrade() -> None:
    from medspa.clients import phi
    from medspa.security import keys

    connection = op.get_bind()
    session = Session(bind=connection)
    rows = connection.execute(sa.text("SELECT * FROM clients")).mappings()
    for row in list(rows):
        client_id, organization_id = _uuid(row["id"]), _uuid(row["organization_id"])
        if not row["phi_key"]:  # an erased client: its key is gone, and so are its fields
            connection.execute(
                sa.text(
                    "UPDATE clients SET first_name = '', last_name = '', preferences = '{}' WHERE id = :id"
                ),
                {"id": row["id"]},
            )
            continue
        key = keys.record_key(session, organization_id, f"clients.{client_id}", bytes(row["phi_key"]))
        values = {
            field: None
            if row[field] is None
            else keys.open_text(key, row[field], where=f"clients.{field}.{client_id}")
            for field in FIELDS
        }
        email, phone = values["email"], values["phone"]
        values["email_key"] = email.strip().lower() if email else None
        values["phone_key"] = phi.phone_lookup(phone)
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        connection.execute(
            sa.text(f"UPDATE clients SET {assignments} WHERE id = :id"),  # noqa: S608 - constants
            {**values, "id": row["id"]},
        )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        if connection.dialect.name != "sqlite":
            batch_op.alter_column(
                "preferences",
                existing_type=sa.Text(),
                type_=sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                postgresql_using="preferences::jsonb",
            )
            batch_op.alter_column(
                "date_of_birth",
                existing_type=sa.Text(),
                type_=sa.Date(),
                postgresql_using="date_of_birth::date",
            )
        batch_op.drop_column("phi_key")
    op.drop_index("ix_client_search_terms_organization_id_term", table_name="client_search_terms")
    op.drop_table("client_search_terms")
    op.drop_index(op.f("ix_organization_keys_organization_id"), table_name="organization_keys")
    op.drop_table("organization_keys")

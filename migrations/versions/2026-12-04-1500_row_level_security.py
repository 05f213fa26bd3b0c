"""Row-level security on every tenant table (PostgreSQL; ADR 21).

Each table with an `organization_id` gets FORCE ROW LEVEL SECURITY and one policy: a transaction sees
and writes only the rows of the organization in `app.organization_id`, or every row when `app.scope` is
`system` (the server's own code: the worker, the CLI, sign-in). Both are set per transaction by
`kit.db`. Nothing on SQLite, where the application's scoping is the only wall.

Revision ID: 7d3a5c9e2f18
Revises: 6b2f9d4e1a73
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7d3a5c9e2f18"
down_revision = "6b2f9d4e1a73"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)


def tenant_tables() -> list[str]:
    """Every table of the schema with an `organization_id` column, as the database says now."""
    return list(
        op.get_bind().scalars(
            sa.text(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND column_name = 'organization_id' ORDER BY table_name"
            )
        )
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tenant_tables():
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(f'CREATE POLICY {POLICY} ON "{table}" USING ({RULE}) WITH CHECK ({RULE})')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tenant_tables():
        op.execute(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')

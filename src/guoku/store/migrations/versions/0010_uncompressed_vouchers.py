"""store sealed voucher XML and outgoing payloads uncompressed on PostgreSQL

A sealed voucher is mostly the base64 of its stamps, which pglz cannot shrink by the 25 % it
asks for: PostgreSQL tried to compress every 43 KB voucher on insert, gave up, and stored it as
is — 0.63 ms per INSERT against 0.14 ms with ``STORAGE EXTERNAL`` (out of line, uncompressed),
about a tenth of a received voucher's cost (decision 0016). SQLite has no such setting.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = (("vouchers", "xml"), ("outbox", "payload"), ("dead_letters", "body"))


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {storage}")


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")

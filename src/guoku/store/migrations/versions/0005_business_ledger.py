"""business ledger: one posting per voucher and account

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("admdiv", sa.String(length=6), nullable=False),
        sa.Column("party", sa.String(length=42), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("agency_code", sa.String(length=42), nullable=False),
        sa.Column("fund_type", sa.String(length=42), nullable=False),
        sa.Column("exp_func", sa.String(length=42), nullable=False),
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("voucher_ref", sa.String(length=80), nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("voucher_ref", "account", name="uq_ledger_entries_posting"),
    )
    op.create_index("ix_ledger_entries_day", "ledger_entries", ["admdiv", "day", "account"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_day", table_name="ledger_entries")
    op.drop_table("ledger_entries")

"""quota ledger: quota_balances (one row per key) and quota_entries (append-only)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY = ("admdiv", "st_year", "agency_code", "fund_type", "exp_func", "month")


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("admdiv", sa.String(length=6), nullable=False),
        sa.Column("st_year", sa.Integer(), nullable=False),
        sa.Column("agency_code", sa.String(length=42), nullable=False),
        sa.Column("fund_type", sa.String(length=42), nullable=False),
        sa.Column("exp_func", sa.String(length=42), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "quota_balances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_key_columns(),
        sa.Column("issued_fen", sa.BigInteger(), nullable=False),
        sa.Column("held_fen", sa.BigInteger(), nullable=False),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "held_fen >= 0 AND spent_fen >= 0 AND held_fen + spent_fen <= issued_fen",
            name="ck_quota_balances_never_overdrawn",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_balances")),
        sa.UniqueConstraint(*KEY, name="uq_quota_balances_key"),
    )
    op.create_table(
        "quota_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_key_columns(),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("voucher_ref", sa.String(length=80), nullable=False),
        sa.Column("payment_ref", sa.String(length=80), nullable=True),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("issued_after", sa.BigInteger(), nullable=False),
        sa.Column("held_after", sa.BigInteger(), nullable=False),
        sa.Column("spent_after", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name="ck_quota_entries_amount_positive"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_entries")),
        sa.UniqueConstraint("voucher_ref", "op", name="uq_quota_entries_voucher_op"),
    )
    op.create_index("ix_quota_entries_key", "quota_entries", [*KEY, "id"])
    op.create_index("ix_quota_entries_payment_ref", "quota_entries", ["payment_ref"])


def downgrade() -> None:
    op.drop_index("ix_quota_entries_payment_ref", table_name="quota_entries")
    op.drop_index("ix_quota_entries_key", table_name="quota_entries")
    op.drop_table("quota_entries")
    op.drop_table("quota_balances")

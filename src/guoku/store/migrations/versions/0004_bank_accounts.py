"""bank side: the account directory (accounts, versioned, reviewed) and payee checks

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LIVE = sa.text("status IN ('pending', 'active')")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("admdiv", sa.String(length=6), nullable=False),
        sa.Column("account_no", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("bank_name", sa.String(length=60), nullable=False),
        sa.Column("bank_no", sa.String(length=12), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("entered_by", sa.String(length=64), nullable=False),
        sa.Column("entered_at", sa.String(length=32), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", sa.String(length=32), nullable=True),
        sa.Column("review_note", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'rejected', 'closed', 'superseded')",
            name="ck_accounts_status",
        ),
        sa.CheckConstraint("kind IN ('payee', 'unit')", name="ck_accounts_kind"),
        sa.CheckConstraint(
            "reviewed_by IS NULL OR reviewed_by <> entered_by", name="ck_accounts_four_eyes"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("admdiv", "account_no", "version", name="uq_accounts_version"),
    )
    op.create_index(
        "uq_accounts_live",
        "accounts",
        ["admdiv", "account_no", "status"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "account_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("voucher_id", sa.Integer(), nullable=False),
        sa.Column("admdiv", sa.String(length=6), nullable=False),
        sa.Column("account_no", sa.String(length=42), nullable=False),
        sa.Column("account_found", sa.Boolean(), nullable=False),
        sa.Column("name_match", sa.String(length=8), nullable=False),
        sa.Column("bank_match", sa.String(length=8), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["voucher_id"], ["vouchers.id"], name=op.f("fk_account_checks_voucher_id_vouchers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_checks")),
    )
    op.create_index("ix_account_checks_voucher_id", "account_checks", ["voucher_id"])


def downgrade() -> None:
    op.drop_index("ix_account_checks_voucher_id", table_name="account_checks")
    op.drop_table("account_checks")
    op.drop_index("uq_accounts_live", table_name="accounts")
    op.drop_table("accounts")

"""the paper fallback's registrations and the archives a node wrote

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.String(length=32)


def upgrade() -> None:
    op.create_table(
        "paper_vouchers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("admdiv", sa.String(length=6), nullable=False),
        sa.Column("st_year", sa.Integer(), nullable=False),
        sa.Column("vt_code", sa.String(length=4), nullable=False),
        sa.Column("voucher_no", sa.String(length=42), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sender_party", sa.String(length=42), nullable=False),
        sa.Column("receiver_party", sa.String(length=42), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("vou_date", sa.String(length=8), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("voucher_id", sa.Integer(), nullable=True),
        sa.Column("matched_at", TS, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('registered', 'matched', 'mismatch')",
                           name="ck_paper_vouchers_status"),
        sa.ForeignKeyConstraint(["voucher_id"], ["vouchers.id"],
                                name=op.f("fk_paper_vouchers_voucher_id_vouchers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_vouchers")),
        sa.UniqueConstraint("admdiv", "st_year", "vt_code", "voucher_no", "version",
                            "sender_party", name="uq_paper_vouchers_key"),
    )
    op.create_table(
        "archives",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("archive_id", sa.String(length=64), nullable=False),
        sa.Column("cutoff", sa.String(length=8), nullable=False),
        sa.Column("manifest_sm3", sa.String(length=64), nullable=False),
        sa.Column("vouchers", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("made_at", TS, nullable=False),
        sa.Column("made_by", sa.String(length=64), nullable=False),
        sa.Column("purged_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archives")),
        sa.UniqueConstraint("archive_id", name=op.f("uq_archives_archive_id")),
    )


def downgrade() -> None:
    op.drop_table("archives")
    op.drop_table("paper_vouchers")

"""reconciliation runs and discrepancies

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("layers", sa.String(length=8), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.String(length=32), nullable=False),
        sa.Column("finished_at", sa.String(length=32), nullable=True),
        sa.Column("breaks", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_table(
        "discrepancies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("admdiv", sa.String(length=6), nullable=False),
        sa.Column("counterparty", sa.String(length=42), nullable=True),
        sa.Column("vt_code", sa.String(length=4), nullable=True),
        sa.Column("voucher_no", sa.String(length=42), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("left_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("right_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("left_state", sa.String(length=32), nullable=True),
        sa.Column("right_state", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("found_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"],
                                name=op.f("fk_discrepancies_run_id_reconciliation_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancies")),
    )
    op.create_index("ix_discrepancies_run_id", "discrepancies", ["run_id"])
    op.create_index("ix_discrepancies_status", "discrepancies", ["status", "layer"])


def downgrade() -> None:
    op.drop_index("ix_discrepancies_status", table_name="discrepancies")
    op.drop_index("ix_discrepancies_run_id", table_name="discrepancies")
    op.drop_table("discrepancies")
    op.drop_table("reconciliation_runs")

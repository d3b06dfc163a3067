"""middleware: envelope ids on the outbox, inbox outcomes, dead letters, rejected envelopes

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("envelope_id", sa.String(length=64), nullable=True))
        batch.create_index("ix_outbox_envelope_id", ["envelope_id"])
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=False,
                                   server_default="stored"))
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("envelope_id", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dead_at", sa.String(length=32), nullable=False),
        sa.Column("replayed_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_table(
        "rejected_envelopes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("envelope_id", sa.String(length=64), nullable=True),
        sa.Column("claimed_sender", sa.String(length=42), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("rejected_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_envelopes")),
    )


def downgrade() -> None:
    op.drop_table("rejected_envelopes")
    op.drop_table("dead_letters")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("detail")
        batch.drop_column("outcome")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_envelope_id")
        batch.drop_column("envelope_id")

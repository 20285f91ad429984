"""Inspection: signed seals over all chain heads, their leaves, and the access log.

Revision ID: 0003i
Revises: 0002k
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0003i"
down_revision: str | None = "0002k"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_seals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed_at", UTCDateTime(), nullable=False),
        sa.Column("chains", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_seals")),
    )
    op.create_index(op.f("ix_ledger_seals_sealed_at"), "ledger_seals", ["sealed_at"])
    op.create_table(
        "ledger_seal_leaves",
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["seal_id"],
            ["ledger_seals.id"],
            name=op.f("fk_ledger_seal_leaves_seal_id_ledger_seals"),
        ),
        sa.PrimaryKeyConstraint("seal_id", "chain_id", name=op.f("pk_ledger_seal_leaves")),
    )
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"])
    op.create_index(op.f("ix_access_log_learner_id"), "access_log", ["learner_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_access_log_learner_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_at"), table_name="access_log")
    op.drop_table("access_log")
    op.drop_table("ledger_seal_leaves")
    op.drop_index(op.f("ix_ledger_seals_sealed_at"), table_name="ledger_seals")
    op.drop_table("ledger_seals")

"""Learners' appeals against a flag, a failed check or a missed roll call.

`appeals` holds each appeal as filed (also `appeal_filed`, the first event of its
ledger chain `appeal:<id>`); `appeal_decisions` the one decision on it (its primary
key is the appeal), with the ledger reference of its `appeal_decided` event. Both
are only inserted into.

Revision ID: 0011a
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0011a"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXED = ("learner_id", "institution_id", "subject_key", "filed_at")


def upgrade() -> None:
    op.create_table(
        "appeals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("subject_key", sa.String(length=96), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=True),
        sa.Column("chain_id", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(length=200), nullable=False),
        sa.Column("filed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_appeals_learner_id_learners")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_appeals_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
    )
    for column in _INDEXED:
        op.create_index(op.f(f"ix_appeals_{column}"), "appeals", [column], unique=False)
    op.create_table(
        "appeal_decisions",
        sa.Column("appeal_id", sa.Integer(), nullable=False),
        sa.Column("upheld", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["appeal_id"], ["appeals.id"], name=op.f("fk_appeal_decisions_appeal_id_appeals")
        ),
        sa.PrimaryKeyConstraint("appeal_id", name=op.f("pk_appeal_decisions")),
    )


def downgrade() -> None:
    op.drop_table("appeal_decisions")
    for column in _INDEXED:
        op.drop_index(op.f(f"ix_appeals_{column}"), table_name="appeals")
    op.drop_table("appeals")

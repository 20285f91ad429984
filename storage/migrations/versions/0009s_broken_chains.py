"""Seals vouch only for what they verified: broken leaves and the register of broken chains.

- `ledger_seal_leaves.broken`: a seal of format 2 records a chain it found broken
  (the first bad seq) with its last verified head; NULL for an intact chain (and for
  every leaf of a format 1 seal).
- `ix_ledger_seal_leaves_chain_id`: every seal that covered a chain, for
  `supervisor ledger verify-seal`, which checks a chain against all of them.
- `ledger_broken_chains`: the chains found broken by a seal, a scan or an append.
  Appends to them are refused; eligibility and claims pay nothing from them.

Revision ID: 0009s
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0009s"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_seal_leaves") as batch:
        batch.add_column(sa.Column("broken", sa.BigInteger(), nullable=True))
    op.create_index(
        op.f("ix_ledger_seal_leaves_chain_id"), "ledger_seal_leaves", ["chain_id"], unique=False
    )
    op.create_table(
        "ledger_broken_chains",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("found_at", UTCDateTime(), nullable=False),
        sa.Column("found_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_ledger_broken_chains")),
    )


def downgrade() -> None:
    op.drop_table("ledger_broken_chains")
    op.drop_index(op.f("ix_ledger_seal_leaves_chain_id"), table_name="ledger_seal_leaves")
    with op.batch_alter_table("ledger_seal_leaves") as batch:
        batch.drop_column("broken")

"""Idempotency keys of ledger appends.

A caller that may deliver the same append twice (a verification job reclaimed
from a crashed worker) gives it a key; `ledger_keys` maps (chain_id, key) to the
seq of the append's first event, so the second delivery finds the first instead
of recording the check again. The keys are an index beside the chain, not part
of it: the hash chain is unchanged.

Revision ID: 0002k
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002k"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_keys",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "key", name=op.f("pk_ledger_keys")),
    )


def downgrade() -> None:
    op.drop_table("ledger_keys")

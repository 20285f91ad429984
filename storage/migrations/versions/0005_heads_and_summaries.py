"""The head of every chain, kept by the database; summaries of chains beside the ledger.

- `ledger_heads`: one row per chain with its last event (seq, hash, recorded_at).
  A trigger on `ledger_events` keeps it in the same transaction as every insert,
  whoever writes (the store's append, a bulk load, a restore), so it cannot fall
  behind the ledger. Appends read a chain's head from it, and seals read all heads
  from it instead of grouping every event.
- `chain_summaries`: a derived value per chain (what eligibility and reports fold
  from it: `body`, and `state`, what folding needs to go on from there when the
  chain grows), stored with the seq and hash of the last event it covers and the
  version of the code and settings that folded it. It is a cache: anything in it
  can be recomputed from the ledger, and a summary whose chain has grown since is
  brought up to date before it is used.

Both are projections of the ledger, not part of it: backups leave them out and a
restore rebuilds the heads through the trigger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite (a trigger per row): keeps the head when a batch inserts several events of a
# chain, in any order.
_UPSERT = (
    "INSERT INTO ledger_heads (chain_id, seq, hash, recorded_at) "
    "VALUES (NEW.chain_id, NEW.seq, NEW.hash, NEW.recorded_at) "
    "ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
    "recorded_at = excluded.recorded_at WHERE excluded.seq > ledger_heads.seq"
)


def upgrade() -> None:
    op.create_table(
        "ledger_heads",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_ledger_heads")),
        sqlite_with_rowid=False,  # clustered by chain_id: scans in chain order read it once
    )
    op.create_table(
        "chain_summaries",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_chain_summaries")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # No append may commit between the backfill below and the trigger: its chain's
        # head would be missing from the index, and appends read heads from it. The
        # lock lets readers on and holds writers until this migration commits. (SQLite
        # runs the whole migration as one write transaction: writers wait already.)
        op.execute("LOCK TABLE ledger_events IN SHARE ROW EXCLUSIVE MODE")
    # The heads of the events already there: the last event of each chain.
    op.execute(
        "INSERT INTO ledger_heads (chain_id, seq, hash, recorded_at) "
        "SELECT e.chain_id, e.seq, e.hash, e.recorded_at FROM ledger_events e "
        "JOIN (SELECT chain_id, max(seq) AS seq FROM ledger_events GROUP BY chain_id) m "
        "ON e.chain_id = m.chain_id AND e.seq = m.seq"
    )
    if op.get_bind().dialect.name == "postgresql":
        # Once per statement, over the rows it inserted (a bulk COPY: one upsert per
        # chain, not per event). For the appends' one-row INSERTs, measured slightly
        # cheaper than a row trigger (26,400 against 23,100 rows/s; none: 35,400).
        op.execute(
            "CREATE FUNCTION ledger_heads_keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO ledger_heads (chain_id, seq, hash, recorded_at) "
            "SELECT DISTINCT ON (chain_id) chain_id, seq, hash, recorded_at FROM new_rows "
            "ORDER BY chain_id, seq DESC "
            "ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
            "recorded_at = excluded.recorded_at WHERE excluded.seq > ledger_heads.seq; "
            "RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_heads_keep AFTER INSERT ON ledger_events "
            "REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_heads_keep()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER ledger_heads_keep AFTER INSERT ON ledger_events BEGIN {_UPSERT}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_heads_keep ON ledger_events")
        op.execute("DROP FUNCTION IF EXISTS ledger_heads_keep()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_heads_keep")
    op.drop_table("chain_summaries")
    op.drop_table("ledger_heads")

"""Where each session was studied from: client address and device hash, with retention.

A proxy-study shop (one person or one room studying for many learners) shows as
several learners' sessions from one device, or as more learners than a room would
hold studying at once from one address. `session_clients` keeps, per session, the
client's network address and an HMAC of its device fingerprint (never the
fingerprint itself), until `retain_until`, when retention deletes the row: it is
personal data, not part of the ledger.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "session_clients",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("device_hash", sa.String(length=64), nullable=True),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("retain_until", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["study_sessions.id"],
            name=op.f("fk_session_clients_session_id_study_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_session_clients_learner_id_learners")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_session_clients_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_clients")),
    )
    for column in ("learner_id", "address", "device_hash", "retain_until"):
        op.create_index(
            op.f(f"ix_session_clients_{column}"), "session_clients", [column], unique=False
        )


def downgrade() -> None:
    for column in ("learner_id", "address", "device_hash", "retain_until"):
        op.drop_index(op.f(f"ix_session_clients_{column}"), table_name="session_clients")
    op.drop_table("session_clients")

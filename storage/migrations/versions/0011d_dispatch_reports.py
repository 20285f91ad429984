"""The monthly dispatch report: closed versions kept as reported.

`dispatch_reports` holds each closed version of a report (region, period, version)
with its canonical JSON, its SHA-256 and the ledger event that carries the same hash
(`dispatch_report_closed` in `dispatch:<region>:<period>`). Never updated.

Revision ID: 0011d
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0011d"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispatch_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("closed_by", sa.String(length=200), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_dispatch_reports_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_reports")),
        sa.UniqueConstraint(
            "region", "period", "version", name=op.f("uq_dispatch_reports_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("dispatch_reports")

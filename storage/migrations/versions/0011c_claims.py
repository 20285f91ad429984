"""Claim review: claims with their frozen lines, objections, sampling draws and payment
exports (issue 19). Every row is written once; a claim's decisions are ledger events in
its chain `claim:<id>`. `claim_payments` is keyed by claim: a claim is paid once; a
claim is in one draw's population at most (`claim_draw_members`); `claim_notices` holds
the notice windows the public page reads.

Revision ID: 0011c
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0011c"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("learners", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("lines_sha256", sa.String(length=64), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_claims_period_order")),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_claims_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    op.create_index(op.f("ix_claims_institution_id"), "claims", ["institution_id"])
    op.create_table(
        "claim_lines",
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("credited_hours", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("chains", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_lines_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("claim_id", "line_no", name=op.f("pk_claim_lines")),
    )
    op.create_index(op.f("ix_claim_lines_learner_id"), "claim_lines", ["learner_id"])
    op.create_table(
        "claim_objections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("statement_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("received_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_objections_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_objections")),
    )
    op.create_index(op.f("ix_claim_objections_claim_id"), "claim_objections", ["claim_id"])
    op.create_table(
        "claim_draws",
        sa.Column("draw_id", sa.String(length=32), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("seed", sa.String(length=128), nullable=False),
        sa.Column("base_rate", sa.Float(), nullable=False),
        sa.Column("drawn_by", sa.String(length=200), nullable=False),
        sa.Column("drawn_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("draw_id", name=op.f("pk_claim_draws")),
    )
    op.create_table(
        "claim_draw_members",
        sa.Column("draw_id", sa.String(length=32), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_draw_members_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["draw_id"],
            ["claim_draws.draw_id"],
            name=op.f("fk_claim_draw_members_draw_id_claim_draws"),
        ),
        sa.PrimaryKeyConstraint("draw_id", "claim_id", name=op.f("pk_claim_draw_members")),
        sa.UniqueConstraint("claim_id", name=op.f("uq_claim_draw_members_claim_id")),
    )
    op.create_table(
        "claim_notices",
        sa.Column("claim_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("notice_from", UTCDateTime(), nullable=False),
        sa.Column("notice_until", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_notices_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("claim_id", name=op.f("pk_claim_notices")),
    )
    op.create_index(op.f("ix_claim_notices_notice_until"), "claim_notices", ["notice_until"])
    op.create_table(
        "claim_payment_exports",
        sa.Column("export_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("export_id", name=op.f("pk_claim_payment_exports")),
    )
    op.create_table(
        "claim_payments",
        sa.Column("claim_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("export_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_payments_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["claim_payment_exports.export_id"],
            name=op.f("fk_claim_payments_export_id_claim_payment_exports"),
        ),
        sa.PrimaryKeyConstraint("claim_id", name=op.f("pk_claim_payments")),
    )
    op.create_index(op.f("ix_claim_payments_export_id"), "claim_payments", ["export_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_claim_payments_export_id"), table_name="claim_payments")
    op.drop_table("claim_payments")
    op.drop_table("claim_payment_exports")
    op.drop_index(op.f("ix_claim_notices_notice_until"), table_name="claim_notices")
    op.drop_table("claim_notices")
    op.drop_table("claim_draw_members")
    op.drop_table("claim_draws")
    op.drop_index(op.f("ix_claim_objections_claim_id"), table_name="claim_objections")
    op.drop_table("claim_objections")
    op.drop_index(op.f("ix_claim_lines_learner_id"), table_name="claim_lines")
    op.drop_table("claim_lines")
    op.drop_index(op.f("ix_claims_institution_id"), table_name="claims")
    op.drop_table("claims")

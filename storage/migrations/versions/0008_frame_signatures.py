"""Signatures of kept frames, to refuse a frame posted again (a replay).

`frame_signatures` holds, per kept enrolment photo or check evidence frame, a coarse
signature of the face (`verification.replay`, 296 bytes), encrypted like templates
(AES-256-GCM, the template key), with the learner and institution it belongs to and
the retention of its frame. A new check or sign-in frame that matches one of the
institution's signatures is refused as `replayed_frame`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "frame_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retain_until", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_frame_signatures_learner_id_learners")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_frame_signatures_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frame_signatures")),
    )
    for column in ("learner_id", "institution_id", "retain_until"):
        op.create_index(
            op.f(f"ix_frame_signatures_{column}"), "frame_signatures", [column], unique=False
        )


def downgrade() -> None:
    for column in ("learner_id", "institution_id", "retain_until"):
        op.drop_index(op.f(f"ix_frame_signatures_{column}"), table_name="frame_signatures")
    op.drop_table("frame_signatures")

"""Records the bureau's statistics need: institutions' profiles (GB/T 2260 division,
licence, legal representative, address), courses' classification (occupation code and
skill level), learners' key groups and skill-level certificates. Every table is
insert-only; each row is also a ledger event.

Revision ID: 0011r
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0011r"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "institution_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("division_code", sa.String(length=6), nullable=False),
        sa.Column("licence_number", sa.String(length=100), nullable=False),
        sa.Column("legal_representative", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_institution_profiles_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institution_profiles")),
    )
    op.create_index(
        op.f("ix_institution_profiles_institution_id"), "institution_profiles", ["institution_id"]
    )
    op.create_index(
        op.f("ix_institution_profiles_division_code"), "institution_profiles", ["division_code"]
    )
    op.create_table(
        "course_classifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("occupation_code", sa.String(length=10), nullable=False),
        sa.Column("skill_level", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "skill_level BETWEEN 1 AND 5",
            name=op.f("ck_course_classifications_skill_level_range"),
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_course_classifications_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_classifications")),
    )
    op.create_index(
        op.f("ix_course_classifications_course_id"), "course_classifications", ["course_id"]
    )
    op.create_table(
        "learner_group_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("group_name", sa.String(length=32), nullable=False),
        sa.Column("added", sa.Boolean(), nullable=False),
        sa.Column("since", sa.String(length=10), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["learner_id"],
            ["learners.id"],
            name=op.f("fk_learner_group_changes_learner_id_learners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learner_group_changes")),
    )
    op.create_index(
        op.f("ix_learner_group_changes_learner_id"), "learner_group_changes", ["learner_id"]
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("skill_level", sa.Integer(), nullable=False),
        sa.Column("occupation_code", sa.String(length=10), nullable=False),
        sa.Column("issued_on", sa.String(length=10), nullable=False),
        sa.Column("issuing_body", sa.String(length=200), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "skill_level BETWEEN 1 AND 5", name=op.f("ck_certificates_skill_level_range")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_certificates_course_id_courses")
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_certificates_learner_id_learners")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["assessment_results.id"],
            name=op.f("fk_certificates_result_id_assessment_results"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("number", name=op.f("uq_certificates_number")),
        sa.UniqueConstraint("result_id", name=op.f("uq_certificates_result_id")),
    )
    op.create_index(op.f("ix_certificates_learner_id"), "certificates", ["learner_id"])
    op.create_index(op.f("ix_certificates_course_id"), "certificates", ["course_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_certificates_course_id"), table_name="certificates")
    op.drop_index(op.f("ix_certificates_learner_id"), table_name="certificates")
    op.drop_table("certificates")
    op.drop_index(op.f("ix_learner_group_changes_learner_id"), table_name="learner_group_changes")
    op.drop_table("learner_group_changes")
    op.drop_index(op.f("ix_course_classifications_course_id"), table_name="course_classifications")
    op.drop_table("course_classifications")
    op.drop_index(op.f("ix_institution_profiles_division_code"), table_name="institution_profiles")
    op.drop_index(op.f("ix_institution_profiles_institution_id"), table_name="institution_profiles")
    op.drop_table("institution_profiles")

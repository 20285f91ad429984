"""Catalogue, subsidy eligibility and fraud flags: institutions' credit codes and
status history, course rules, course enrolments, assessment results and the
decisions on flags (each also a ledger event).

Revision ID: 0003c
Revises: 0002k
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0003c"
down_revision: str | None = "0002k"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "institution_codes",
        sa.Column("institution_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_institution_codes_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("institution_id", name=op.f("pk_institution_codes")),
        sa.UniqueConstraint("credit_code", name=op.f("uq_institution_codes_credit_code")),
    )
    op.create_table(
        "institution_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_institution_status_changes_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institution_status_changes")),
    )
    op.create_index(
        op.f("ix_institution_status_changes_institution_id"),
        "institution_status_changes",
        ["institution_id"],
    )
    op.create_table(
        "course_rules",
        sa.Column("course_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("occupation", sa.String(length=200), nullable=False),
        sa.Column("skill_level", sa.Integer(), nullable=False),
        sa.Column("subsidy_kind", sa.String(length=16), nullable=False),
        sa.Column("subsidy_amount", sa.Float(), nullable=False),
        sa.Column("subsidy_cap", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "subsidy_amount >= 0", name=op.f("ck_course_rules_subsidy_amount_nonnegative")
        ),
        sa.CheckConstraint(
            "skill_level BETWEEN 1 AND 5", name=op.f("ck_course_rules_skill_level_range")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_course_rules_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_course_rules")),
    )
    op.create_table(
        "course_enrolments",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("enrolled_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_course_enrolments_course_id_courses")
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_course_enrolments_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("course_id", "learner_id", name=op.f("pk_course_enrolments")),
    )
    op.create_index(op.f("ix_course_enrolments_learner_id"), "course_enrolments", ["learner_id"])
    op.create_table(
        "assessment_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("assessed_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_assessment_results_course_id_courses")
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"],
            ["learners.id"],
            name=op.f("fk_assessment_results_learner_id_learners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_results")),
    )
    op.create_index(op.f("ix_assessment_results_course_id"), "assessment_results", ["course_id"])
    op.create_index(op.f("ix_assessment_results_learner_id"), "assessment_results", ["learner_id"])
    op.create_table(
        "flag_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_decisions")),
    )
    op.create_index(op.f("ix_flag_decisions_flag_id"), "flag_decisions", ["flag_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_flag_decisions_flag_id"), table_name="flag_decisions")
    op.drop_table("flag_decisions")
    op.drop_index(op.f("ix_assessment_results_learner_id"), table_name="assessment_results")
    op.drop_index(op.f("ix_assessment_results_course_id"), table_name="assessment_results")
    op.drop_table("assessment_results")
    op.drop_index(op.f("ix_course_enrolments_learner_id"), table_name="course_enrolments")
    op.drop_table("course_enrolments")
    op.drop_table("course_rules")
    op.drop_index(
        op.f("ix_institution_status_changes_institution_id"),
        table_name="institution_status_changes",
    )
    op.drop_table("institution_status_changes")
    op.drop_table("institution_codes")

"""Classroom training and assessments: classes, rosters, cameras, filings, supervision runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_classes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "ends_at > starts_at", name=op.f("ck_training_classes_schedule_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_training_classes_course_id_courses")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_training_classes_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_classes")),
    )
    op.create_index(op.f("ix_training_classes_course_id"), "training_classes", ["course_id"])
    op.create_index(
        op.f("ix_training_classes_institution_id"), "training_classes", ["institution_id"]
    )
    op.create_table(
        "class_roster",
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["training_classes.id"],
            name=op.f("fk_class_roster_class_id_training_classes"),
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_class_roster_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("class_id", "learner_id", name=op.f("pk_class_roster")),
    )
    op.create_index(op.f("ix_class_roster_learner_id"), "class_roster", ["learner_id"])
    op.create_table(
        "class_cameras",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["training_classes.id"],
            name=op.f("fk_class_cameras_class_id_training_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_cameras")),
        sa.UniqueConstraint("class_id", "url", name="uq_class_cameras_class_url"),
    )
    op.create_index(op.f("ix_class_cameras_class_id"), "class_cameras", ["class_id"])
    op.create_table(
        "class_filings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("teacher", sa.String(length=200), nullable=False),
        sa.Column("teaching_plan", sa.Text(), nullable=False),
        sa.Column("assessment_plan", sa.Text(), nullable=False),
        sa.Column("roster", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(length=200), nullable=False),
        sa.Column("filed_at", UTCDateTime(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["training_classes.id"],
            name=op.f("fk_class_filings_class_id_training_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_filings")),
    )
    op.create_index(op.f("ix_class_filings_class_id"), "class_filings", ["class_id"])
    op.create_table(
        "class_supervision_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.Column("stopped_by", sa.String(length=200), nullable=True),
        sa.Column("stop_reason", sa.String(length=64), nullable=True),
        sa.Column("stop_requested_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["training_classes.id"],
            name=op.f("fk_class_supervision_runs_class_id_training_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_supervision_runs")),
    )
    op.create_index(
        op.f("ix_class_supervision_runs_class_id"), "class_supervision_runs", ["class_id"]
    )
    op.create_index(
        "uq_class_supervision_runs_open_class",
        "class_supervision_runs",
        ["class_id"],
        unique=True,
        sqlite_where=sa.text("stopped_at IS NULL"),
        postgresql_where=sa.text("stopped_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_class_supervision_runs_open_class", table_name="class_supervision_runs")
    op.drop_index(op.f("ix_class_supervision_runs_class_id"), table_name="class_supervision_runs")
    op.drop_table("class_supervision_runs")
    op.drop_index(op.f("ix_class_filings_class_id"), table_name="class_filings")
    op.drop_table("class_filings")
    op.drop_index(op.f("ix_class_cameras_class_id"), table_name="class_cameras")
    op.drop_table("class_cameras")
    op.drop_index(op.f("ix_class_roster_learner_id"), table_name="class_roster")
    op.drop_table("class_roster")
    op.drop_index(op.f("ix_training_classes_institution_id"), table_name="training_classes")
    op.drop_index(op.f("ix_training_classes_course_id"), table_name="training_classes")
    op.drop_table("training_classes")

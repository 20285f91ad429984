"""Initial schema: registry, encrypted face templates, evidence, append-only ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY = "ledger_events is append-only: rows are never updated or deleted"


def upgrade() -> None:
    op.create_table(
        "institutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institutions")),
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("required_hours", sa.Float(), nullable=False),
        sa.Column("delivery_mode", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("required_hours > 0", name=op.f("ck_courses_required_hours_positive")),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_courses_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
    )
    op.create_index(op.f("ix_courses_institution_id"), "courses", ["institution_id"])
    op.create_table(
        "learners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("full_name", sa.String(length=100), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_learners_institution_id_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learners")),
        sa.UniqueConstraint("id_number", name=op.f("uq_learners_id_number")),
    )
    op.create_index(op.f("ix_learners_institution_id"), "learners", ["institution_id"])
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("text_version", sa.String(length=64), nullable=False),
        sa.Column("given_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_consents_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(op.f("ix_consents_learner_id"), "consents", ["learner_id"])
    op.create_index(
        "uq_consents_active_learner",
        "consents",
        ["learner_id"],
        unique=True,
        sqlite_where=sa.text("withdrawn_at IS NULL"),
        postgresql_where=sa.text("withdrawn_at IS NULL"),
    )
    op.create_table(
        "face_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_face_templates_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_templates")),
    )
    op.create_index(op.f("ix_face_templates_learner_id"), "face_templates", ["learner_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_api_tokens_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_api_tokens_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_api_tokens_secret_sha256")),
    )
    op.create_table(
        "study_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_study_sessions_course_id_courses")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_study_sessions_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_study_sessions_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_sessions")),
        sa.UniqueConstraint("chain_id", name=op.f("uq_study_sessions_chain_id")),
    )
    op.create_index(op.f("ix_study_sessions_institution_id"), "study_sessions", ["institution_id"])
    op.create_index(op.f("ix_study_sessions_learner_id"), "study_sessions", ["learner_id"])
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("other_learner_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_flags_institution_id_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learners.id"], name=op.f("fk_flags_learner_id_learners")
        ),
        sa.ForeignKeyConstraint(
            ["other_learner_id"], ["learners.id"], name=op.f("fk_flags_other_learner_id_learners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
    )
    op.create_index(op.f("ix_flags_institution_id"), "flags", ["institution_id"])
    op.create_index(op.f("ix_flags_status"), "flags", ["status"])
    op.create_table(
        "evidence",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("stored_at", UTCDateTime(), nullable=False),
        sa.Column("retain_until", UTCDateTime(), nullable=False),
        sa.Column("purged_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_evidence")),
    )
    op.create_index(op.f("ix_evidence_retain_until"), "evidence", ["retain_until"])
    op.create_table(
        "ledger_events",
        sa.Column("chain_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_ledger_events_seq_positive")),
        sa.PrimaryKeyConstraint("chain_id", "seq", name=op.f("pk_ledger_events")),
        sqlite_with_rowid=False,  # clustered by (chain_id, seq); see models.py
    )
    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_table("ledger_events")
    op.drop_index(op.f("ix_evidence_retain_until"), table_name="evidence")
    op.drop_table("evidence")
    op.drop_index(op.f("ix_flags_status"), table_name="flags")
    op.drop_index(op.f("ix_flags_institution_id"), table_name="flags")
    op.drop_table("flags")
    op.drop_index(op.f("ix_study_sessions_learner_id"), table_name="study_sessions")
    op.drop_index(op.f("ix_study_sessions_institution_id"), table_name="study_sessions")
    op.drop_table("study_sessions")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_face_templates_learner_id"), table_name="face_templates")
    op.drop_table("face_templates")
    op.drop_index("uq_consents_active_learner", table_name="consents")
    op.drop_index(op.f("ix_consents_learner_id"), table_name="consents")
    op.drop_table("consents")
    op.drop_index(op.f("ix_learners_institution_id"), table_name="learners")
    op.drop_table("learners")
    op.drop_index(op.f("ix_courses_institution_id"), table_name="courses")
    op.drop_table("courses")
    op.drop_table("institutions")


# The code never updates or deletes ledger rows; these triggers make the database
# refuse it too, so a bug cannot do it. (Someone with owner rights can drop them;
# the hash chain is what detects that.)
def _create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_events_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation'; "
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE ON ledger_events "
            "FOR EACH ROW EXECUTE FUNCTION ledger_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON ledger_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_events_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_events_no_{operation.lower()} BEFORE {operation} "
                f"ON ledger_events BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
            )


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_events_no_truncate ON ledger_events")
        op.execute("DROP TRIGGER IF EXISTS ledger_events_append_only ON ledger_events")
        op.execute("DROP FUNCTION IF EXISTS ledger_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_events_no_delete")

"""Tables of the service. The schema is created by Alembic (storage/migrations), not here.

The ORM classes define the schema and serve the tests that compare it with the
migrations; the stores use their `__table__` through SQLAlchemy Core.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.coltypes import UTCDateTime

# Stable constraint names, so later migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH_LEN = 64  # lowercase hex SHA-256
ID_LEN = 64  # session and chain identifiers
KIND_LEN = 64  # ledger event kinds, flag kinds
ENGINE_LEN = 16  # face engine names ("sface", "dlib")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InstitutionRow(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CourseRow(Base):
    __tablename__ = "courses"
    __table_args__ = (CheckConstraint("required_hours > 0", name="required_hours_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    required_hours: Mapped[float] = mapped_column(Float)
    delivery_mode: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LearnerRow(Base):
    __tablename__ = "learners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    full_name: Mapped[str] = mapped_column(String(100))
    # GB 11643 resident ID: 17 digits and a check character (digit or X).
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRow(Base):
    __tablename__ = "consents"
    __table_args__ = (
        # At most one active (not withdrawn) consent per learner.
        Index(
            "uq_consents_active_learner",
            "learner_id",
            unique=True,
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    text_version: Mapped[str] = mapped_column(String(64))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FaceTemplateRow(Base):
    """Biometric data, kept apart from identity: AES-256-GCM ciphertext only."""

    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    # First 16 hex chars of SHA-256(key): says which key encrypted the row.
    key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    evidence_sha256: Mapped[str | None] = mapped_column(String(HASH_LEN))
    # The face model that made the template (revision 0006): engine name and the
    # SHA-256 of its recognition weights. Never compared across models.
    engine: Mapped[str] = mapped_column(String(ENGINE_LEN))
    model_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    # Associated data of the ciphertext: 1 binds it to (template id, learner id);
    # 2 to those and the model, so a row relabelled with another model fails
    # authentication. Rows from before revision 0006 keep 1.
    aad_version: Mapped[int] = mapped_column(SmallInteger)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 hex of the secret; the secret itself is never stored.
    secret_sha256: Mapped[str] = mapped_column(String(HASH_LEN), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id"))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StudySessionRow(Base):
    """Projection of a session for listing; its ledger chain is the truth."""

    __tablename__ = "study_sessions"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FrameSignatureRow(Base):
    """A coarse signature of the face in a kept frame (enrolment photo or check evidence),
    to find the same frame posted again (`verification.replay`). Derived from the face,
    so biometric: AES-256-GCM ciphertext only, deleted with the templates on withdrawal
    and kept no longer than its frame's retention."""

    __tablename__ = "frame_signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    evidence_sha256: Mapped[str] = mapped_column(String(HASH_LEN))
    kind: Mapped[str] = mapped_column(String(16))  # enrolment | check
    key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class WorkspaceSessionRow(Base):
    """A signed-in inspector's workspace (a browser's cookie session). The cookie holds
    a random secret; only its SHA-256 is kept. Never backed up or restored (marked like
    the derived tables): a restore signs every workspace out."""

    __tablename__ = "workspace_sessions"
    __table_args__ = {"info": {"derived": True}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(HASH_LEN), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SessionClientRow(Base):
    """Where a session was studied from: the client's network address and a keyed hash
    of its device fingerprint. Personal data, kept until `retain_until`."""

    __tablename__ = "session_clients"

    session_id: Mapped[str] = mapped_column(ForeignKey("study_sessions.id"), primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    address: Mapped[str] = mapped_column(String(64), index=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class FlagRow(Base):
    __tablename__ = "flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(KIND_LEN))
    status: Mapped[str] = mapped_column(String(16), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"), index=True)
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id"))
    other_learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id"))
    details: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decision_note: Mapped[str | None] = mapped_column(Text)


class EvidenceRow(Base):
    __tablename__ = "evidence"

    sha256: Mapped[str] = mapped_column(String(HASH_LEN), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LedgerEventRow(Base):
    """Append-only. The code never updates or deletes a row; triggers refuse it too."""

    __tablename__ = "ledger_events"
    __table_args__ = (
        CheckConstraint("seq >= 1", name="seq_positive"),
        # SQLite: rows stored in (chain_id, seq) order, so a timeline is one range
        # scan and verification one sequential pass (about 2x faster than a rowid
        # table plus index, for somewhat slower inserts).
        {"sqlite_with_rowid": False},
    )

    chain_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(KIND_LEN))
    payload: Mapped[str] = mapped_column(Text)  # exactly the text that was hashed
    prev_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    hash: Mapped[str] = mapped_column(String(HASH_LEN))


class LedgerKeyRow(Base):
    """(chain_id, key) of an idempotent append -> seq of its first event. Never updated."""

    __tablename__ = "ledger_keys"

    chain_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    key: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)


# Projections of the ledger (revision 0005): derived, rebuilt from it, never backed up.
DERIVED = {"derived": True}


class LedgerHeadRow(Base):
    """The last event of each chain, kept by a trigger on ledger_events inserts."""

    __tablename__ = "ledger_heads"
    # SQLite: clustered by chain_id, so that a scan of every head in chain order (what
    # seals and summaries read) is one sequential pass.
    __table_args__ = {"info": DERIVED, "sqlite_with_rowid": False}

    chain_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChainSummaryRow(Base):
    """A value folded from a chain's events up to (seq, hash), by code `version`."""

    __tablename__ = "chain_summaries"
    __table_args__ = {"info": DERIVED}

    chain_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())  # of the event at seq
    body: Mapped[str] = mapped_column(Text)  # what readers need
    state: Mapped[str] = mapped_column(Text)  # what folding needs to go on ('' if none)


class BrokenChainRow(Base):
    """The register of chains found broken (revision 0009s): appends to them are
    refused and no money is paid from them. Written by whatever verification found
    the break (a seal, a scan, an append); the integrity chain records each one."""

    __tablename__ = "ledger_broken_chains"

    chain_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, autoincrement=False)  # first bad event
    reason: Mapped[str] = mapped_column(String(500))
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
    found_by: Mapped[str] = mapped_column(String(KIND_LEN))


# Core tables for the stores (declarative types `__table__` as FromClause).
institutions = cast(Table, InstitutionRow.__table__)
courses = cast(Table, CourseRow.__table__)
learners = cast(Table, LearnerRow.__table__)
consents = cast(Table, ConsentRow.__table__)
face_templates = cast(Table, FaceTemplateRow.__table__)
api_tokens = cast(Table, ApiTokenRow.__table__)
study_sessions = cast(Table, StudySessionRow.__table__)
session_clients = cast(Table, SessionClientRow.__table__)
frame_signatures = cast(Table, FrameSignatureRow.__table__)
workspace_sessions = cast(Table, WorkspaceSessionRow.__table__)
flags = cast(Table, FlagRow.__table__)
evidence = cast(Table, EvidenceRow.__table__)
ledger_events = cast(Table, LedgerEventRow.__table__)
ledger_keys = cast(Table, LedgerKeyRow.__table__)
ledger_heads = cast(Table, LedgerHeadRow.__table__)
chain_summaries = cast(Table, ChainSummaryRow.__table__)
broken_chains = cast(Table, BrokenChainRow.__table__)


# -- classroom training and assessments ----------------------------------------

URL_LEN = 2000  # camera URLs (may hold credentials; never echoed unredacted)


class TrainingClassRow(Base):
    __tablename__ = "training_classes"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="schedule_ordered"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClassRosterRow(Base):
    __tablename__ = "class_roster"

    class_id: Mapped[int] = mapped_column(ForeignKey("training_classes.id"), primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClassCameraRow(Base):
    __tablename__ = "class_cameras"
    __table_args__ = (UniqueConstraint("class_id", "url", name="uq_class_cameras_class_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("training_classes.id"), index=True)
    url: Mapped[str] = mapped_column(String(URL_LEN))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClassFilingRow(Base):
    """A filing before training. Several may exist before the first run; the latest counts."""

    __tablename__ = "class_filings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("training_classes.id"), index=True)
    teacher: Mapped[str] = mapped_column(String(200))
    teaching_plan: Mapped[str] = mapped_column(Text)
    assessment_plan: Mapped[str] = mapped_column(Text)
    roster: Mapped[str] = mapped_column(Text)  # canonical JSON list of sorted learner ids
    filed_by: Mapped[str] = mapped_column(String(200))
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sha256: Mapped[str] = mapped_column(String(HASH_LEN))


class ClassRunRow(Base):
    __tablename__ = "class_supervision_runs"
    __table_args__ = (
        # At most one open (not stopped) run per class.
        Index(
            "uq_class_supervision_runs_open_class",
            "class_id",
            unique=True,
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("training_classes.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_by: Mapped[str] = mapped_column(String(200))
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_by: Mapped[str | None] = mapped_column(String(200))
    stop_reason: Mapped[str | None] = mapped_column(String(KIND_LEN))
    stop_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(ID_LEN))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


training_classes = cast(Table, TrainingClassRow.__table__)
class_roster = cast(Table, ClassRosterRow.__table__)
class_cameras = cast(Table, ClassCameraRow.__table__)
class_filings = cast(Table, ClassFilingRow.__table__)
class_runs = cast(Table, ClassRunRow.__table__)


# -- inspection: seals over all chain heads and the log of inspectors' reads -----

SIG_LEN = 128  # lowercase hex of a 64-byte Ed25519 signature


class LedgerSealRow(Base):
    """A signed Merkle root over the heads of all chains at one moment. Never updated."""

    __tablename__ = "ledger_seals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    chains: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(HASH_LEN))
    statement: Mapped[str] = mapped_column(Text)  # the canonical JSON that was signed
    signature: Mapped[str] = mapped_column(String(SIG_LEN))
    public_key: Mapped[str] = mapped_column(String(HASH_LEN))  # hex of the raw 32-byte key


class SealLeafRow(Base):
    """The chain heads a seal covers, in Merkle leaf order (chain_id)."""

    __tablename__ = "ledger_seal_leaves"

    seal_id: Mapped[int] = mapped_column(ForeignKey("ledger_seals.id"), primary_key=True)
    # Indexed alone too (0009s): every seal that covered a chain, for `verify-seal`.
    chain_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))
    # Seals of format 2 (revision 0009s): the chain was found broken, at this first bad
    # seq; seq and hash are then its last verified head.
    broken: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AccessLogRow(Base):
    """Who read which learner's, session's or class's data, and when. Append-only."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(KIND_LEN))
    institution_id: Mapped[int | None] = mapped_column(Integer)
    learner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    session_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    class_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(500))


ledger_seals = cast(Table, LedgerSealRow.__table__)
seal_leaves = cast(Table, SealLeafRow.__table__)
access_log = cast(Table, AccessLogRow.__table__)


# -- catalogue, subsidy and fraud flags (revision 0003c) ---------------------------


class InstitutionCodeRow(Base):
    """An institution's unified social credit code (GB 32100), unique."""

    __tablename__ = "institution_codes"

    institution_id: Mapped[int] = mapped_column(
        ForeignKey("institutions.id"), primary_key=True, autoincrement=False
    )
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)


class InstitutionStatusRow(Base):
    """Every change of an institution's status, never updated; the latest counts.
    (`institutions.status` is kept equal to the latest as a projection.)"""

    __tablename__ = "institution_status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CourseRulesRow(Base):
    __tablename__ = "course_rules"
    __table_args__ = (
        CheckConstraint("subsidy_amount >= 0", name="subsidy_amount_nonnegative"),
        CheckConstraint("skill_level BETWEEN 1 AND 5", name="skill_level_range"),
    )

    course_id: Mapped[int] = mapped_column(
        ForeignKey("courses.id"), primary_key=True, autoincrement=False
    )
    occupation: Mapped[str] = mapped_column(String(200))
    skill_level: Mapped[int] = mapped_column(Integer)
    subsidy_kind: Mapped[str] = mapped_column(String(16))
    subsidy_amount: Mapped[float] = mapped_column(Float)
    subsidy_cap: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CourseEnrolmentRow(Base):
    __tablename__ = "course_enrolments"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), primary_key=True, index=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    enrolled_by: Mapped[str] = mapped_column(String(200))


class AssessmentResultRow(Base):
    """Assessment results as entered by operators; never updated (a correction is a new row)."""

    __tablename__ = "assessment_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float)
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(200))


class FlagDecisionRow(Base):
    """Decisions on flags, never updated; the latest decides. Each is also a ledger
    event in the flag's chain (`chain_id`, `seq`, `hash`)."""

    __tablename__ = "flag_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: `record_decision` checks the flag in the same transaction, and
    # `flags` stays droppable on its own (the schema-outdated test drops it).
    flag_id: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    chain_id: Mapped[str] = mapped_column(String(ID_LEN))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))


institution_codes = cast(Table, InstitutionCodeRow.__table__)
institution_status_changes = cast(Table, InstitutionStatusRow.__table__)
course_rules = cast(Table, CourseRulesRow.__table__)
course_enrolments = cast(Table, CourseEnrolmentRow.__table__)
assessment_results = cast(Table, AssessmentResultRow.__table__)
flag_decisions = cast(Table, FlagDecisionRow.__table__)


# -- records the bureau's statistics need (revision 0011r) -------------------------


class InstitutionProfileRow(Base):
    """An institution's division (GB/T 2260), licence, legal representative and address:
    every record and correction is a new row, never updated; the latest counts. Each is
    also an `institution_profile_recorded` event in the institution's chain."""

    __tablename__ = "institution_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    division_code: Mapped[str] = mapped_column(String(6), index=True)
    licence_number: Mapped[str] = mapped_column(String(100))
    legal_representative: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CourseClassificationRow(Base):
    """A course's occupation code and skill level: a new row per classification, never
    updated; the latest counts (`course_classified` in the course's chain)."""

    __tablename__ = "course_classifications"
    __table_args__ = (CheckConstraint("skill_level BETWEEN 1 AND 5", name="skill_level_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    occupation_code: Mapped[str] = mapped_column(String(10))
    skill_level: Mapped[int] = mapped_column(Integer)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LearnerGroupChangeRow(Base):
    """Every addition to or removal from a key group, never updated; a learner is in a
    group while the latest change for it is an addition (`learner_group_added` /
    `learner_group_removed` in the learner's chain)."""

    __tablename__ = "learner_group_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    group_name: Mapped[str] = mapped_column(String(32))
    added: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[str | None] = mapped_column(String(10))  # local date, on an addition
    source: Mapped[str | None] = mapped_column(String(200))  # on an addition
    reason: Mapped[str | None] = mapped_column(Text)  # on a removal
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CertificateRow(Base):
    """Skill-level certificates, never updated; one per passed assessment result
    (`certificate_issued` in the learner's chain)."""

    __tablename__ = "certificates"
    __table_args__ = (CheckConstraint("skill_level BETWEEN 1 AND 5", name="skill_level_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("assessment_results.id"), unique=True)
    skill_level: Mapped[int] = mapped_column(Integer)
    occupation_code: Mapped[str] = mapped_column(String(10))
    issued_on: Mapped[str] = mapped_column(String(10))
    issuing_body: Mapped[str] = mapped_column(String(200))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


institution_profiles = cast(Table, InstitutionProfileRow.__table__)
course_classifications = cast(Table, CourseClassificationRow.__table__)
learner_group_changes = cast(Table, LearnerGroupChangeRow.__table__)
certificates = cast(Table, CertificateRow.__table__)
# -- claim review (issue 19, revision 0011c) ------------------------------------------
# What a claim's ledger chain (`claim:<id>`) points to; never updated. A claim's
# decisions are events only.


class ClaimRow(Base):
    __tablename__ = "claims"
    __table_args__ = (CheckConstraint("period_end > period_start", name="period_order"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    learners: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float] = mapped_column(Float)
    lines_sha256: Mapped[str] = mapped_column(String(HASH_LEN))
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClaimLineRow(Base):
    """A learner's line of a claim, frozen at submission with the chain heads (JSON
    `[[chain_id, seq, hash], ...]`) it rests on."""

    __tablename__ = "claim_lines"

    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    learner_id: Mapped[int] = mapped_column(Integer, index=True)
    course_id: Mapped[int] = mapped_column(Integer)
    credited_hours: Mapped[float] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    chains: Mapped[str] = mapped_column(Text)


class ClaimObjectionRow(Base):
    __tablename__ = "claim_objections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    learner_id: Mapped[int | None] = mapped_column(Integer)
    statement: Mapped[str] = mapped_column(Text)
    statement_sha256: Mapped[str] = mapped_column(String(HASH_LEN))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_by: Mapped[str] = mapped_column(String(200))


class ClaimDrawRow(Base):
    __tablename__ = "claim_draws"

    draw_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    seed: Mapped[str] = mapped_column(String(128))
    base_rate: Mapped[float] = mapped_column(Float)
    drawn_by: Mapped[str] = mapped_column(String(200))
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClaimDrawMemberRow(Base):
    """A claim of a draw's population, and whether the draw sampled it. A claim is in
    one draw's population at most (the unique index)."""

    __tablename__ = "claim_draw_members"

    draw_id: Mapped[str] = mapped_column(ForeignKey("claim_draws.draw_id"), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), primary_key=True, unique=True)
    sampled: Mapped[bool] = mapped_column(Boolean)


class ClaimNoticeRow(Base):
    """An approved claim's public notice window (the `claim_notice_published` event's),
    so that the public page reads the notices in force without scanning the ledger."""

    __tablename__ = "claim_notices"

    claim_id: Mapped[int] = mapped_column(
        ForeignKey("claims.id"), primary_key=True, autoincrement=False
    )
    notice_from: Mapped[datetime] = mapped_column(UTCDateTime())
    notice_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ClaimPaymentExportRow(Base):
    __tablename__ = "claim_payment_exports"

    export_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    claims: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float] = mapped_column(Float)


class ClaimPaymentRow(Base):
    """One per claim ever: the primary key is what makes a second payment impossible."""

    __tablename__ = "claim_payments"

    claim_id: Mapped[int] = mapped_column(
        ForeignKey("claims.id"), primary_key=True, autoincrement=False
    )
    export_id: Mapped[str] = mapped_column(
        ForeignKey("claim_payment_exports.export_id"), index=True
    )
    amount: Mapped[float] = mapped_column(Float)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())


claims_table = cast(Table, ClaimRow.__table__)
claim_lines = cast(Table, ClaimLineRow.__table__)
claim_objections = cast(Table, ClaimObjectionRow.__table__)
claim_draws = cast(Table, ClaimDrawRow.__table__)
claim_draw_members = cast(Table, ClaimDrawMemberRow.__table__)
claim_notices = cast(Table, ClaimNoticeRow.__table__)
claim_payment_exports = cast(Table, ClaimPaymentExportRow.__table__)
claim_payments = cast(Table, ClaimPaymentRow.__table__)
# -- appeals (issue "The bureau's month": a learner disputes a flag, a failed check or a
# missed roll call; the bureau or an inspector decides). Both tables are only inserted
# into: an appeal is open while it has no decision row, and it has at most one.


class AppealRow(Base):
    """An appeal as filed; also `appeal_filed`, the first event of chain `appeal:<id>`."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"), index=True)
    subject: Mapped[str] = mapped_column(String(16))
    # `flag:<id>` or `<chain_id>#<seq>`: one open (or upheld) appeal per subject.
    subject_key: Mapped[str] = mapped_column(String(96), index=True)
    flag_id: Mapped[int | None] = mapped_column(Integer)
    chain_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    statement: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[str] = mapped_column(String(200))
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AppealDecisionRow(Base):
    """The decision on an appeal (its primary key: one per appeal); also the
    `appeal_decided` event at (`chain_id`, `seq`, `hash`)."""

    __tablename__ = "appeal_decisions"

    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"), primary_key=True)
    upheld: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    chain_id: Mapped[str] = mapped_column(String(ID_LEN))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))


# -- the monthly dispatch report (revision 0011d) ------------------------------------


class DispatchReportRow(Base):
    """A closed version of a dispatch report, kept as reported; never updated (a
    correction is a new version). Its SHA-256 is in the ledger (`dispatch:<region>:
    <period>`), so the seal covers it."""

    __tablename__ = "dispatch_reports"
    __table_args__ = (
        UniqueConstraint("region", "period", "version", name="uq_dispatch_reports_version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly what sha256 is of
    sha256: Mapped[str] = mapped_column(String(HASH_LEN))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    changes: Mapped[str] = mapped_column(Text)
    closed_by: Mapped[str] = mapped_column(String(200))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    chain_id: Mapped[str] = mapped_column(String(ID_LEN))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))


appeals = cast(Table, AppealRow.__table__)
appeal_decisions = cast(Table, AppealDecisionRow.__table__)
dispatch_reports = cast(Table, DispatchReportRow.__table__)

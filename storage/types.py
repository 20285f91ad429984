"""Values that cross the storage boundary. Frozen; no ORM, driver or web imports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]


class DeliveryMode(StrEnum):
    online = "online"
    classroom = "classroom"
    blended = "blended"


class InstitutionStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    expelled = "expelled"


class Role(StrEnum):
    admin = "admin"
    bureau = "bureau"  # the human-resources bureau: standards, status, decisions
    operator = "operator"  # an institution's staff
    inspector = "inspector"
    learner = "learner"


class FlagStatus(StrEnum):
    open = "open"
    confirmed = "confirmed"
    dismissed = "dismissed"


@dataclass(frozen=True, slots=True)
class Institution:
    id: int
    name: str
    status: InstitutionStatus
    created_at: datetime
    credit_code: str | None = None  # unified social credit code (GB 32100), once recorded


@dataclass(frozen=True, slots=True)
class Course:
    id: int
    institution_id: int
    name: str
    required_hours: float
    delivery_mode: DeliveryMode
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Learner:
    """A real-name learner. `id_number` is the full resident ID; mask it on output."""

    id: int
    institution_id: int
    full_name: str
    id_number: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Consent:
    id: int
    learner_id: int
    text_version: str
    given_at: datetime
    withdrawn_at: datetime | None

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


@dataclass(frozen=True, slots=True)
class TemplateModel:
    """The face model that made a template: the engine's name (e.g. "sface", "dlib")
    and the SHA-256 (hex) of its recognition weights. Encodings of two models are
    never compared, so every template records its model."""

    engine: str
    model_hash: str

    @property
    def key(self) -> str:
        """Short form for messages: engine and the first 12 hex of the hash."""
        return f"{self.engine}:{self.model_hash[:12]}"


# Every template stored before models were recorded (schema revision 0006) was made
# by the dlib engine with face_recognition_models 0.3.0's ResNet: this is its model.
LEGACY_DLIB_MODEL = TemplateModel(
    "dlib", "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
)


@dataclass(frozen=True, slots=True)
class Template:
    """A decrypted face template and the model that made it. Kept apart from
    identity data at rest."""

    id: int
    learner_id: int
    vector: Vector
    created_at: datetime
    evidence_sha256: str | None
    model: TemplateModel


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    role: Role
    institution_id: int | None
    learner_id: int | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkspaceSession:
    """A signed-in browser of the inspector's workspace (its secret is not kept)."""

    id: int
    token_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StudySession:
    """Projection of a session; the ledger chain `chain_id` is the truth."""

    id: str
    chain_id: str
    learner_id: int
    course_id: int
    institution_id: int
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredSignature:
    """The signature of a kept frame (`verification.replay`), decrypted."""

    id: int
    learner_id: int
    institution_id: int
    evidence_sha256: str
    kind: str  # enrolment | check
    signature: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionClient:
    """Where a session was studied from (personal data, kept until `retain_until`)."""

    session_id: str
    learner_id: int
    institution_id: int
    address: str
    device_hash: str | None  # HMAC-SHA-256 of the page's device fingerprint, hex
    seen_at: datetime
    retain_until: datetime
    ended_at: datetime | None = None  # the session's end, when it has ended


@dataclass(frozen=True, slots=True)
class Flag:
    id: int
    kind: str
    status: FlagStatus
    institution_id: int | None
    learner_id: int | None
    other_learner_id: int | None
    details: str  # canonical JSON of the evidence (scores, event refs, frame hashes)
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """What a caller asks to append. `payload` is canonical JSON (see storage.canonical)."""

    kind: str
    payload: str


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One stored event. hash = SHA-256(prev_hash_bytes || canonical_event_bytes)."""

    chain_id: str
    seq: int
    recorded_at: datetime
    kind: str
    payload: str
    prev_hash: str
    hash: str


# A stored event as the bulk read returns it (`LedgerStore.stream_rows`): a DBAPI
# tuple (chain_id, seq, kind, payload, hash), without the times or prev_hash.
LedgerRow = tuple[str, int, str, str, str]
# The same with what verifying it needs: (chain_id, seq, kind, payload, hash,
# prev_hash, recorded_at as the hashed text), `stream_rows(..., links=True)`.
LinkedRow = tuple[str, int, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class ChainHead:
    chain_id: str
    seq: int
    hash: str
    # In a seal's leaves only: the chain was found broken (its first bad seq); seq and
    # hash are then its last verified head (seq 0 and 64 zeros: none).
    broken: int | None = None


@dataclass(frozen=True, slots=True)
class BrokenRecord:
    """A chain found broken, as the register of broken chains keeps it."""

    chain_id: str
    seq: int  # its first bad event
    reason: str
    found_at: datetime
    found_by: str  # what found it: seal | scan | eligibility | append | verify


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first event of a chain whose stored fields disagree with the recomputation."""

    chain_id: str
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chains: int
    events: int
    breaks: tuple[ChainBreak, ...]

    @property
    def ok(self) -> bool:
        return not self.breaks


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    sha256: str
    size: int
    content_type: str
    stored_at: datetime
    retain_until: datetime
    purged_at: datetime | None


# -- classroom training and assessments (storage/classroom_sql.py) --------------


class ClassMode(StrEnum):
    training = "training"
    assessment = "assessment"


@dataclass(frozen=True, slots=True)
class TrainingClass:
    """A class (training cohort) of a course, or an assessment (`mode`)."""

    id: int
    course_id: int
    institution_id: int  # the course's; kept here so scope checks need one read
    name: str
    mode: ClassMode
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RosterEntry:
    class_id: int
    learner_id: int
    added_at: datetime


@dataclass(frozen=True, slots=True)
class CameraSource:
    """A camera of a class. `url` may carry credentials: redact it on output."""

    id: int
    class_id: int
    url: str
    label: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClassFiling:
    """The filing before training. `roster` is the roster as filed (sorted learner ids);
    `sha256` covers the canonical JSON of the filed content (see classroom_sql)."""

    id: int
    class_id: int
    teacher: str
    teaching_plan: str
    assessment_plan: str
    roster: tuple[int, ...]
    filed_by: str
    filed_at: datetime
    sha256: str


@dataclass(frozen=True, slots=True)
class SupervisionRun:
    """One supervised stretch of a class, from start to stop.

    `lease_owner`/`lease_until` name the process that runs it; a lapsed lease means
    nobody does (a crashed process) and another process may resume it.
    """

    id: int
    class_id: int
    started_at: datetime
    started_by: str
    stopped_at: datetime | None
    stopped_by: str | None
    stop_reason: str | None
    stop_requested_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None

    @property
    def open(self) -> bool:
        return self.stopped_at is None


# -- inspection (storage/inspection_sql.py) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Seal:
    """A signed Merkle root over chain heads. `statement` is the canonical JSON that
    `signature` (hex Ed25519) signs with the key whose raw bytes are `public_key` (hex)."""

    id: int
    sealed_at: datetime
    chains: int
    root: str
    statement: str
    signature: str
    public_key: str


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One read of personal data by a staff member (who, what, when)."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    institution_id: int | None
    learner_id: int | None
    session_id: str | None
    class_id: int | None
    detail: str


# -- catalogue, subsidy and fraud flags (storage/subsidy_sql.py) -----------------


class SubsidyKind(StrEnum):
    per_learner = "per_learner"  # a fixed amount per eligible learner
    per_hour = "per_hour"  # an amount per credited hour, up to a cap


class PublicationStatus(StrEnum):
    draft = "draft"
    published = "published"
    withdrawn = "withdrawn"


@dataclass(frozen=True, slots=True)
class CourseRules:
    """The catalogue entry of a course: what it teaches and what it pays.

    Amounts are in yuan. Rules are frozen once published (a changed course is a
    new course)."""

    course_id: int
    occupation: str
    skill_level: int  # 1 (senior technician) .. 5 (beginner), per the national scheme
    subsidy_kind: SubsidyKind
    subsidy_amount: float
    subsidy_cap: float | None
    status: PublicationStatus
    valid_from: datetime | None
    valid_until: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class InstitutionRecord:
    """What the subsidy scheme knows of an institution beyond its name."""

    institution_id: int
    credit_code: str | None  # unified social credit code, GB 32100 (18 characters)
    status: InstitutionStatus
    reason: str | None
    effective_at: datetime | None
    decided_by: str | None


@dataclass(frozen=True, slots=True)
class CourseEnrolment:
    course_id: int
    learner_id: int
    enrolled_at: datetime
    enrolled_by: str


@dataclass(frozen=True, slots=True)
class AssessmentResult:
    id: int
    course_id: int
    learner_id: int
    passed: bool
    score: float | None
    assessed_at: datetime
    recorded_by: str


@dataclass(frozen=True, slots=True)
class FlagDecision:
    """One decision on a flag; a later decision supersedes an earlier one."""

    id: int
    flag_id: int
    status: FlagStatus
    note: str
    decided_by: str
    decided_at: datetime
    chain_id: str
    seq: int
    hash: str


# -- records the bureau's statistics need (storage/records_sql.py) ---------------


@dataclass(frozen=True, slots=True)
class InstitutionProfile:
    """An institution's place and papers as last recorded (each record or correction
    is a new row; the latest counts). `division_code`: GB/T 2260, six digits."""

    id: int
    institution_id: int
    division_code: str
    licence_number: str
    legal_representative: str
    address: str
    reason: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CourseClassification:
    """A course's occupation code (`X-XX-XX-XX`, 2022 classification) and skill level
    (1..5) as last recorded; the latest row counts."""

    id: int
    course_id: int
    occupation_code: str
    skill_level: int
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class LearnerGroup:
    """A key group a learner belongs to (`since`: local date YYYY-MM-DD)."""

    learner_id: int
    group: str
    since: str
    source: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Certificate:
    """A skill-level certificate issued after a passed assessment (`result_id`).
    `issued_on`: the local date printed on it (YYYY-MM-DD)."""

    id: int
    number: str
    learner_id: int
    course_id: int
    result_id: int
    skill_level: int
    occupation_code: str
    issued_on: str
    issuing_body: str
    recorded_by: str
    recorded_at: datetime


# -- claim review (issue 19): submitted claims, their frozen lines, objections, draws,
# payment exports. The decisions on a claim live in its ledger chain (`claim:<id>`);
# these rows are what the events point to, never updated.


@dataclass(frozen=True, slots=True)
class LineChain:
    """A chain a claim line rests on, frozen at submission: its verified head."""

    chain_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class NewClaimLine:
    learner_id: int
    course_id: int
    credited_hours: float
    amount: float  # yuan
    chains: tuple[LineChain, ...]


@dataclass(frozen=True, slots=True)
class ClaimLine:
    claim_id: int
    line_no: int  # 1.. in (course, learner) order
    learner_id: int
    course_id: int
    credited_hours: float
    amount: float
    chains: tuple[LineChain, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    institution_id: int
    period_start: datetime
    period_end: datetime  # exclusive
    learners: int
    amount: float
    lines_sha256: str
    submitted_by: str
    submitted_at: datetime
    courses: tuple[int, ...] = ()  # the courses of its lines, ascending


@dataclass(frozen=True, slots=True)
class ClaimObjection:
    id: int
    claim_id: int
    learner_id: int | None  # the line objected to; None: the whole claim
    statement: str
    statement_sha256: str
    received_at: datetime
    received_by: str  # "public" or a principal's actor


@dataclass(frozen=True, slots=True)
class ClaimDraw:
    draw_id: str
    period_start: datetime
    period_end: datetime
    seed: str
    base_rate: float
    sampled: tuple[int, ...]  # claim ids
    drawn_by: str
    drawn_at: datetime
    population: tuple[int, ...] = ()  # every claim drawn from (the sampled ones too)


@dataclass(frozen=True, slots=True)
class ClaimPayment:
    claim_id: int
    export_id: str
    amount: float
    paid_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentExport:
    export_id: str
    created_at: datetime
    created_by: str
    claims: int
    amount: float


@dataclass(frozen=True, slots=True)
class ClaimNotice:
    claim_id: int
    notice_from: datetime
    notice_until: datetime


# -- appeals (a learner disputes a flag, a failed check or a missed roll call) ----------


class AppealSubject(StrEnum):
    flag = "flag"
    check = "check"
    roll_call = "roll_call"


class AppealStatus(StrEnum):
    open = "open"
    upheld = "upheld"
    dismissed = "dismissed"


@dataclass(frozen=True, slots=True)
class AppealDecision:
    """The one decision on an appeal, also the `appeal_decided` event at (chain, seq, hash)."""

    appeal_id: int
    upheld: bool
    note: str
    decided_by: str
    decided_at: datetime
    chain_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Appeal:
    """A learner's appeal as filed (`appeal_filed` in `appeal:<id>`). A flag is named by
    `flag_id`; a check or a roll call by the chain and seq of its ledger event."""

    id: int
    learner_id: int
    institution_id: int | None
    subject: AppealSubject
    flag_id: int | None
    chain_id: str | None
    seq: int | None
    statement: str
    filed_by: str
    filed_at: datetime
    decision: AppealDecision | None = None

    @property
    def status(self) -> AppealStatus:
        if self.decision is None:
            return AppealStatus.open
        return AppealStatus.upheld if self.decision.upheld else AppealStatus.dismissed

    @property
    def subject_key(self) -> str:
        return subject_key(self.subject, self.flag_id, self.chain_id, self.seq)


def subject_key(
    subject: AppealSubject, flag_id: int | None, chain_id: str | None, seq: int | None
) -> str:
    """What an appeal is about, as one string: `flag:<id>` or `<chain_id>#<seq>`."""
    if subject is AppealSubject.flag:
        return f"flag:{flag_id}"
    return f"{chain_id}#{seq}"


# -- the monthly dispatch report (revision 0011d) -------------------------------------


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    """One closed version of a dispatch report, as kept: `body` is its canonical JSON
    (exactly the text `sha256` is of), `changes` the canonical JSON list of the figures
    a correction changed ("[]" for version 1). `chain_id`, `seq` and `hash` name the
    `dispatch_report_closed` ledger event that carries the same SHA-256."""

    id: int
    region: str  # a GB/T 2260 code, or "all"
    period: str
    version: int
    body: str
    sha256: str
    as_of: datetime
    reason: str
    changes: str
    closed_by: str
    closed_at: datetime
    chain_id: str
    seq: int
    hash: str

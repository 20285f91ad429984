"""Small protocols, one per replaceable part of storage.

All methods are synchronous and thread-safe; callers on an event loop run them in
a thread. Implementations raise only `storage.exceptions` errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from storage.types import (
    AccessEntry,
    Appeal,
    AppealStatus,
    AppealSubject,
    AssessmentResult,
    BrokenRecord,
    CameraSource,
    Certificate,
    ChainBreak,
    ChainHead,
    Claim,
    ClaimDraw,
    ClaimLine,
    ClaimNotice,
    ClaimObjection,
    ClaimPayment,
    ClassFiling,
    ClassMode,
    Consent,
    Course,
    CourseClassification,
    CourseEnrolment,
    CourseRules,
    DeliveryMode,
    DispatchRecord,
    EvidenceRecord,
    Flag,
    FlagDecision,
    FlagStatus,
    Institution,
    InstitutionProfile,
    InstitutionRecord,
    InstitutionStatus,
    Learner,
    LearnerGroup,
    LedgerEvent,
    LedgerRow,
    NewClaimLine,
    NewEvent,
    PaymentExport,
    PublicationStatus,
    Role,
    RosterEntry,
    Seal,
    SessionClient,
    StoredSignature,
    StudySession,
    SubsidyKind,
    SupervisionRun,
    Template,
    TemplateModel,
    Token,
    TrainingClass,
    Vector,
    VerifyReport,
    WorkspaceSession,
)


class LedgerStore(Protocol):
    """Append-only, per-chain hash-chained events."""

    def append(self, chain_id: str, events: Sequence[NewEvent]) -> list[LedgerEvent]:
        """Append events to one chain atomically, after its current head.

        Concurrent appends to the same chain never fork it: a lost race for the
        next `seq` is retried (up to `append_retries`), then raises `AppendConflict`.
        Returns only after the events are durably committed.
        """
        ...

    def append_once(
        self, chain_id: str, key: str, events: Sequence[NewEvent]
    ) -> tuple[list[LedgerEvent], bool]:
        """Append unless an append with `key` was made to the chain before.

        Returns (the new events, True), or ([the first event of the earlier
        append], False): a job delivered twice is recorded once.
        """
        ...

    def find_once(self, chain_id: str, key: str) -> LedgerEvent | None:
        """The first event of the append made to the chain with `key`, if there was one."""
        ...

    def read_chain(
        self, chain_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[LedgerEvent]: ...

    def head(self, chain_id: str) -> ChainHead | None: ...

    def heads(self) -> Iterator[ChainHead]:
        """The last event of every chain, ordered by chain_id."""
        ...

    def verify(self, chain_ids: Sequence[str] | None = None) -> VerifyReport:
        """Recompute chains (all when None) and name the first bad event of each broken one."""
        ...

    def iter_events(
        self,
        kinds: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[LedgerEvent]:
        """Events across all chains, ordered by (chain_id, seq), optionally filtered."""
        ...

    def stream_rows(
        self, until: datetime | None = None, *, links: bool = False
    ) -> Iterator[list[LedgerRow]]:
        """Every event recorded before `until` as `LedgerRow` tuples, in (chain_id, seq)
        order, in batches: the bulk read of eligibility, reports and fraud scans. With
        `links`, `LinkedRow`s: what verifying each event needs besides."""
        ...

    def mark_broken(self, found: Sequence[BrokenRecord]) -> list[BrokenRecord]:
        """Register chains found broken (appends to them are then refused); returns
        those not registered before. A registered chain keeps its first record."""
        ...

    def broken(self, chain_ids: Sequence[str] | None = None) -> dict[str, BrokenRecord]:
        """The registered broken chains (all, or those of `chain_ids`)."""
        ...

    def verify_from(
        self, starts: Sequence[tuple[str, int, str]], upto: dict[str, int] | None = None
    ) -> tuple[list[ChainBreak], dict[str, tuple[int, str]]]:
        """Incremental verification of chains from verified points (chain_id, seq,
        hash; seq 0 with the genesis hash: from the start), up to `upto[chain]`.
        Returns the first break of each broken chain and the last verified head of
        every other one."""
        ...

    def close(self) -> None:
        """Finish pending appends and stop any writer thread. Idempotent."""
        ...


class RegistryStore(Protocol):
    """Institutions, courses, real-name learners, consent, tokens, sessions, flags."""

    def create_institution(self, name: str, credit_code: str | None = None) -> Institution: ...
    def get_institution(self, institution_id: int) -> Institution: ...
    def list_institutions(self) -> list[Institution]: ...

    def create_course(
        self, institution_id: int, name: str, required_hours: float, delivery_mode: DeliveryMode
    ) -> Course: ...
    def get_course(self, course_id: int) -> Course: ...
    def list_courses(self, institution_id: int | None = None) -> list[Course]: ...

    def create_learner(self, institution_id: int, full_name: str, id_number: str) -> Learner:
        """Raises `Duplicate` when the ID number is already registered."""
        ...

    def get_learner(self, learner_id: int) -> Learner: ...
    def list_learners(self, institution_id: int | None = None) -> list[Learner]: ...
    def learner_institutions(self) -> dict[int, int]:
        """Every registered learner's id -> institution id (one light query for scans
        over all learners; no names or ID numbers are read)."""
        ...

    def record_consent(self, learner_id: int, text_version: str, at: datetime) -> Consent: ...
    def withdraw_consent(self, learner_id: int, at: datetime) -> tuple[Consent, int]:
        """Withdraw the active consent and delete the learner's templates in one
        transaction; returns the consent and the number of templates deleted.
        Raises `NotFound` when there is no active consent."""
        ...

    def active_consent(self, learner_id: int) -> Consent | None: ...

    def create_token(
        self,
        role: Role,
        label: str,
        institution_id: int | None = None,
        learner_id: int | None = None,
    ) -> tuple[Token, str]:
        """Store a new token hashed; return it and its secret (shown once)."""
        ...

    def resolve_token(self, secret: str) -> Token | None:
        """The live (not revoked) token with this secret, or None."""
        ...

    def revoke_token(self, token_id: int, at: datetime) -> None: ...

    def create_session(
        self,
        session_id: str,
        chain_id: str,
        learner_id: int,
        course_id: int,
        institution_id: int,
        started_at: datetime,
        requires_consent: bool = True,
    ) -> StudySession: ...
    def end_session(self, session_id: str, ended_at: datetime) -> StudySession: ...
    def get_session(self, session_id: str) -> StudySession: ...
    def list_sessions(
        self,
        institution_id: int | None = None,
        learner_id: int | None = None,
        open_only: bool = False,
    ) -> list[StudySession]: ...

    def record_session_client(
        self,
        session_id: str,
        address: str,
        device_hash: str | None,
        seen_at: datetime,
        retain_until: datetime,
    ) -> SessionClient: ...
    def session_clients(
        self,
        *,
        institution_id: int | None = None,
        learner_id: int | None = None,
        device_hash: str | None = None,
        address: str | None = None,
        open_only: bool = False,
    ) -> list[SessionClient]: ...
    def purge_session_clients(self, now: datetime) -> int: ...

    def raise_flag(
        self,
        kind: str,
        details: str,
        institution_id: int | None,
        learner_id: int | None,
        other_learner_id: int | None = None,
    ) -> Flag: ...
    def list_flags(
        self, status: FlagStatus | None = None, institution_id: int | None = None
    ) -> list[Flag]: ...
    def decide_flag(self, flag_id: int, status: FlagStatus, by: str, note: str) -> Flag: ...


class SignatureStore(Protocol):
    """Signatures of kept frames (enrolment photos, check evidence), encrypted at rest,
    to find the same frame posted again."""

    def add(
        self,
        learner_id: int,
        evidence_sha256: str,
        kind: str,
        signature: bytes,
        retain_until: datetime,
    ) -> StoredSignature: ...
    def for_institution(self, institution_id: int, after_id: int = 0) -> list[StoredSignature]: ...
    def delete_for_learner(self, learner_id: int) -> int: ...
    def purge_expired(self, now: datetime) -> int: ...


class TemplateStore(Protocol):
    """Face templates, encrypted at rest, in their own table, each with its model."""

    def add(
        self,
        learner_id: int,
        vector: Vector,
        evidence_sha256: str | None,
        model: TemplateModel = ...,
    ) -> Template: ...
    def for_learner(
        self, learner_id: int, model: TemplateModel | None = None
    ) -> list[Template]: ...
    def for_check(self, learner_id: int, model: TemplateModel) -> list[Template]:
        """The templates of `model`; raises `TemplateModelMismatch` when the learner
        has templates of other models only."""
        ...

    def all(self, model: TemplateModel | None = None) -> list[Template]:
        """Every template (for 1:N search), of `model` only when given."""
        ...

    def learner_ids(self, model: TemplateModel | None = None) -> list[int]:
        """The learners who have at least one template (nothing is decrypted)."""
        ...

    def models(self) -> dict[TemplateModel, int]:
        """Templates per model."""
        ...

    def learners_without(self, model: TemplateModel) -> list[int]:
        """Learners with templates, none of `model`."""
        ...

    def delete_for_learner(self, learner_id: int) -> int: ...


class EvidenceStore(Protocol):
    """Content-addressed evidence frames with a retention date."""

    def put(self, data: bytes, content_type: str, retain_until: datetime) -> EvidenceRecord:
        """Store by SHA-256 (idempotent); returns the record."""
        ...

    def get(self, sha256: str) -> bytes:
        """Raises `NotFound` for an unknown hash and `EvidencePurged` for a purged one."""
        ...

    def record(self, sha256: str) -> EvidenceRecord: ...
    def records(self, hashes: Iterable[str]) -> dict[str, EvidenceRecord]:
        """The records of those hashes that are known, in one round trip per chunk."""
        ...

    def purge_expired(self, now: datetime) -> list[str]:
        """Delete images whose retention has passed; keep their records and hashes."""
        ...

    def erase(self, hashes: Iterable[str], at: datetime) -> list[str]:
        """Delete these images now, before their retention; keep their records and
        hashes (`purged_at` = `at`). Returns the hashes deleted."""
        ...


class ClassroomStore(Protocol):
    """Classes (training cohorts and assessments) of a course: schedule, roster,
    cameras, the filing before training, and supervision runs."""

    def create_class(
        self,
        course_id: int,
        name: str,
        mode: ClassMode,
        starts_at: datetime,
        ends_at: datetime,
    ) -> TrainingClass: ...
    def get_class(self, class_id: int) -> TrainingClass: ...
    def list_classes(
        self, institution_id: int | None = None, course_id: int | None = None
    ) -> list[TrainingClass]: ...

    def add_to_roster(
        self, class_id: int, learner_ids: Sequence[int], at: datetime
    ) -> list[RosterEntry]:
        """All or none; learners of the course's institution only; frozen once
        supervision has started (`InvalidState`)."""
        ...

    def remove_from_roster(self, class_id: int, learner_id: int) -> list[RosterEntry]: ...
    def roster(self, class_id: int) -> list[RosterEntry]: ...

    def add_camera(self, class_id: int, url: str, label: str, at: datetime) -> CameraSource: ...
    def remove_camera(self, class_id: int, camera_id: int) -> None: ...
    def cameras(self, class_id: int) -> list[CameraSource]: ...

    def file_class(
        self,
        class_id: int,
        teacher: str,
        teaching_plan: str,
        assessment_plan: str,
        filed_by: str,
        at: datetime,
    ) -> ClassFiling:
        """Snapshot the roster with the plans; closed once supervision has started."""
        ...

    def latest_filing(self, class_id: int) -> ClassFiling | None: ...

    def start_run(
        self, class_id: int, at: datetime, by: str, owner: str, lease_until: datetime
    ) -> SupervisionRun:
        """Only for a filed class whose roster is as filed, with a camera, and no open run."""
        ...

    def get_run(self, run_id: int) -> SupervisionRun: ...
    def open_run(self, class_id: int) -> SupervisionRun | None: ...
    def list_runs(self, class_id: int) -> list[SupervisionRun]: ...
    def renew_lease(self, run_id: int, owner: str, until: datetime) -> SupervisionRun | None: ...
    def release_lease(self, run_id: int, owner: str, at: datetime) -> None: ...
    def claim_lapsed_runs(
        self, owner: str, now: datetime, until: datetime
    ) -> list[SupervisionRun]: ...
    def request_stop(self, run_id: int, at: datetime, by: str) -> SupervisionRun: ...
    def stop_run(self, run_id: int, at: datetime, by: str, reason: str) -> SupervisionRun: ...


class SealStore(Protocol):
    """Signed seals over all chain heads, with the heads (leaves) each one covers."""

    def add(
        self,
        sealed_at: datetime,
        root: str,
        statement: str,
        signature: str,
        public_key: str,
        leaves: Iterable[ChainHead],
        chains: int,
    ) -> Seal: ...
    def get(self, seal_id: int) -> Seal: ...
    def latest(self) -> Seal | None: ...
    def recent(self, limit: int = 50) -> Sequence[Seal]: ...
    def leaves(self, seal_id: int) -> list[ChainHead]: ...
    def covering(self, chain_id: str) -> list[tuple[Seal, ChainHead]]:
        """Every seal that covers a chain, oldest first, with the chain's leaf in it."""
        ...


class WorkspaceSessionStore(Protocol):
    """Cookie sessions of the inspector's workspace, kept by the SHA-256 of their secret."""

    def open(
        self, secret: str, token_id: int, at: datetime, expires_at: datetime
    ) -> WorkspaceSession:
        """Record a new session for a live token; raises `NotFound` for an unknown token."""
        ...

    def resolve(
        self, secret: str, at: datetime, idle_s: float
    ) -> tuple[WorkspaceSession, Token] | None:
        """The session and its token if the session is live at `at`: not revoked, before
        its absolute expiry, used within `idle_s` seconds, and its token not revoked.
        A live session is marked as used at `at` (implementations may skip marking a
        session used within the last tenth of `idle_s`, at most a minute). None
        otherwise; a session found lapsed is ended for good."""
        ...

    def revoke(self, secret: str, at: datetime) -> bool:
        """Revoke the session (sign-out); False if there was no live one."""
        ...

    def purge(self, before: datetime) -> int:
        """Delete sessions that expired or were revoked before `before`; returns how many."""
        ...


class AccessLogStore(Protocol):
    """Who read which learner's, session's or class's data, and when."""

    def record(
        self,
        at: datetime,
        actor: str,
        role: str,
        action: str,
        *,
        institution_id: int | None = None,
        learner_id: int | None = None,
        session_id: str | None = None,
        class_id: int | None = None,
        detail: str = "",
    ) -> None: ...
    def purge_before(self, cutoff: datetime) -> int:
        """Delete entries older than `cutoff` (retention); returns how many."""
        ...

    def entries(
        self,
        *,
        learner_id: int | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = 500,
    ) -> Sequence[AccessEntry]: ...


class SummaryStore(Protocol):
    """Summaries folded from chains, kept beside the ledger; the store never reads them.

    Rows are DBAPI tuples (see `storage.summaries_sql` for their columns): the scan
    that uses them reads one per chain of the whole ledger."""

    def chains(self, version: str, until: datetime | None = None) -> Iterator[list[Any]]:
        """Every chain's head beside its summary of `version` (if any), by chain_id."""
        ...

    def read_chains(
        self,
        after: Sequence[tuple[str, int]],
        until: datetime | None = None,
        *,
        links: bool = False,
    ) -> Iterator[list[Any]]:
        """Events of the given chains after the given seq, recorded before `until`
        (with `links`: `LinkedRow`s, from the given seq itself)."""
        ...

    def put(self, version: str, rows: Sequence[Any]) -> None:
        """Store summaries; never replaces one of this version that covers more events."""
        ...

    def clear(self) -> int:
        """Forget every summary; returns how many there were."""
        ...


class SubsidyStore(Protocol):
    """Institutions' credit codes and status history, the course catalogue's rules,
    course enrolments, assessment results, and the decisions on fraud flags."""

    def set_credit_code(self, institution_id: int, credit_code: str) -> InstitutionRecord:
        """Record the institution's code once; raises `Duplicate` when the code is
        another institution's and `InvalidState` when this one already has a code."""
        ...

    def correct_credit_code(self, institution_id: int, credit_code: str) -> InstitutionRecord:
        """Replace the code (a recorded correction); `Duplicate` if another's."""
        ...

    def institution_record(self, institution_id: int) -> InstitutionRecord: ...
    def change_status(
        self,
        institution_id: int,
        status: InstitutionStatus,
        reason: str,
        effective_at: datetime,
        decided_by: str,
    ) -> InstitutionRecord: ...
    def institutions_with_status(
        self, status: InstitutionStatus
    ) -> list[tuple[Institution, InstitutionRecord]]: ...

    def set_course_rules(
        self,
        course_id: int,
        occupation: str,
        skill_level: int,
        subsidy_kind: SubsidyKind,
        subsidy_amount: float,
        subsidy_cap: float | None,
        valid_from: datetime | None,
        valid_until: datetime | None,
    ) -> CourseRules:
        """Create or replace a draft's rules; published or withdrawn rules are frozen."""
        ...

    def set_course_status(self, course_id: int, status: PublicationStatus) -> CourseRules:
        """draft -> published -> withdrawn, never back."""
        ...

    def course_rules(self, course_id: int) -> CourseRules | None: ...
    def all_course_rules(self) -> dict[int, CourseRules]: ...

    def enrol(self, course_id: int, learner_id: int, by: str, at: datetime) -> CourseEnrolment:
        """Raises `Duplicate` when enrolled already, `InvalidInput` for a learner of
        another institution."""
        ...

    def enrolments(
        self,
        course_id: int | None = None,
        institution_id: int | None = None,
        learner_id: int | None = None,
    ) -> list[CourseEnrolment]: ...

    def record_assessment(
        self,
        course_id: int,
        learner_id: int,
        passed: bool,
        score: float | None,
        assessed_at: datetime,
        by: str,
    ) -> AssessmentResult:
        """Only for an enrolled learner (`InvalidState` otherwise)."""
        ...

    def assessments(
        self, course_id: int | None = None, learner_id: int | None = None
    ) -> list[AssessmentResult]: ...

    def get_flag(self, flag_id: int) -> Flag: ...
    def find_flags(
        self,
        status: FlagStatus | None = None,
        kind: str | None = None,
        institution_id: int | None = None,
        learner_id: int | None = None,
    ) -> list[Flag]:
        """Flags by status, kind, institution and learner (as the flagged learner or
        the other one)."""
        ...

    def record_decision(
        self,
        flag_id: int,
        status: FlagStatus,
        note: str,
        decided_by: str,
        decided_at: datetime,
        ledger_ref: tuple[str, int, str],
    ) -> FlagDecision:
        """Record a decision already appended to the ledger at `ledger_ref` (chain,
        seq, hash); it supersedes any earlier one."""
        ...

    def decisions(self, flag_ids: Sequence[int]) -> dict[int, list[FlagDecision]]: ...
    def flag_counts(self) -> int: ...


class RecordsStore(Protocol):
    """Institutions' profiles, courses' classification, learners' key groups and
    skill-level certificates: insert-only, the latest row counts."""

    def record_profile(
        self,
        institution_id: int,
        division_code: str,
        licence_number: str,
        legal_representative: str,
        address: str,
        reason: str,
        recorded_by: str,
        at: datetime,
    ) -> InstitutionProfile: ...
    def profile(self, institution_id: int) -> InstitutionProfile | None: ...
    def profiles(self) -> dict[int, InstitutionProfile]: ...
    def profile_history(self, institution_id: int) -> list[InstitutionProfile]: ...

    def classify_course(
        self, course_id: int, occupation_code: str, skill_level: int, by: str, at: datetime
    ) -> CourseClassification: ...
    def classification(self, course_id: int) -> CourseClassification | None: ...
    def classifications(self) -> dict[int, CourseClassification]: ...

    def change_group(
        self,
        learner_id: int,
        group: str,
        added: bool,
        since: str | None,
        source: str | None,
        reason: str | None,
        by: str,
        at: datetime,
    ) -> None:
        """Record an addition (`since`, `source`) or a removal (`reason`)."""
        ...

    def groups(self, learner_ids: Sequence[int] | None = None) -> dict[int, list[LearnerGroup]]:
        """The key groups each learner is in now, by learner."""
        ...

    def add_certificate(
        self,
        number: str,
        result_id: int,
        skill_level: int,
        occupation_code: str,
        issued_on: str,
        issuing_body: str,
        by: str,
        at: datetime,
    ) -> Certificate:
        """Raises `Duplicate` when the number is taken or the result has one already."""
        ...

    def certificates(
        self, learner_id: int | None = None, course_id: int | None = None
    ) -> list[Certificate]: ...


class ClaimStore(Protocol):
    """Claim review (issue 19): claims with their frozen lines, objections and their
    statements, sampling draws and payment exports. Rows are never updated: what
    happened to a claim is in its ledger chain; a claim is paid at most once (a
    second payment raises `Duplicate`)."""

    def add_claim(
        self,
        institution_id: int,
        period_start: datetime,
        period_end: datetime,
        lines: Sequence[NewClaimLine],
        lines_sha256: str,
        submitted_by: str,
        submitted_at: datetime,
    ) -> Claim:
        """The claim and its lines in one transaction; `amount` and `learners` are
        summed from the lines."""
        ...

    def get_claim(self, claim_id: int) -> Claim:
        """Raises `NotFound`."""
        ...

    def list_claims(
        self,
        institution_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Claim]:
        """Claims whose period overlaps [start, end) (either bound optional), by id."""
        ...

    def lines(self, claim_id: int) -> list[ClaimLine]: ...

    def add_objection(
        self,
        claim_id: int,
        learner_id: int | None,
        statement: str,
        statement_sha256: str,
        received_at: datetime,
        received_by: str,
    ) -> ClaimObjection: ...

    def objections(self, claim_id: int) -> list[ClaimObjection]: ...
    def get_objection(self, objection_id: int) -> ClaimObjection: ...

    def add_draw(self, draw: ClaimDraw) -> ClaimDraw: ...
    def get_draw(self, draw_id: str) -> ClaimDraw: ...
    def draws(self) -> list[ClaimDraw]:
        """Newest first."""
        ...

    def sampled(self, claim_ids: Sequence[int] | None = None) -> dict[int, str]:
        """claim id -> the draw that sampled it."""
        ...

    def drawn(self, claim_ids: Sequence[int] | None = None) -> dict[int, str]:
        """claim id -> the draw whose population it was in (sampled or not); a claim
        is in one draw at most (`Duplicate` otherwise, nothing written)."""
        ...

    def add_notice(self, notice: ClaimNotice) -> ClaimNotice:
        """Once per claim (`Duplicate` otherwise)."""
        ...

    def notices_open(self, at: datetime) -> list[ClaimNotice]:
        """Notices in force at `at` (from <= at < until), by claim id."""
        ...

    def add_payment_export(
        self,
        export_id: str,
        created_at: datetime,
        created_by: str,
        payments: Sequence[tuple[int, float]],
    ) -> PaymentExport:
        """The export and one payment per (claim id, amount), atomically; raises
        `Duplicate` (nothing written) when a claim was paid before."""
        ...

    def payment_export(self, export_id: str) -> tuple[PaymentExport, list[ClaimPayment]]: ...
    def payment_exports(self) -> list[PaymentExport]: ...
    def paid(self, claim_ids: Sequence[int] | None = None) -> dict[int, ClaimPayment]: ...


class AppealStore(Protocol):
    """Learners' appeals (against a flag, a failed check or a missed roll call) and the
    one decision on each; both only inserted, each also a ledger event."""

    def file(
        self,
        learner_id: int,
        institution_id: int | None,
        subject: AppealSubject,
        flag_id: int | None,
        chain_id: str | None,
        seq: int | None,
        statement: str,
        filed_by: str,
        at: datetime,
    ) -> Appeal:
        """Record a new appeal. Raises `Duplicate` while the learner has an open or an
        upheld appeal on the subject, `NotFound` for an unknown learner, `InvalidInput`
        for a subject named wrongly or a statement empty or over 2,000 characters."""
        ...

    def decide(
        self,
        appeal_id: int,
        upheld: bool,
        note: str,
        decided_by: str,
        at: datetime,
        ledger_ref: tuple[str, int, str],
    ) -> Appeal:
        """Record the decision already appended to the ledger at `ledger_ref` (chain,
        seq, hash). Raises `Duplicate` when the appeal is decided already."""
        ...

    def get(self, appeal_id: int) -> Appeal: ...

    def find(
        self,
        learner_id: int | None = None,
        status: AppealStatus | None = None,
        institution_id: int | None = None,
        limit: int = 500,
    ) -> list[Appeal]:
        """Appeals in id order."""
        ...


class DispatchStore(Protocol):
    """Closed versions of the dispatch report, kept as reported; never updated."""

    def add(
        self,
        region: str,
        period: str,
        version: int,
        body: str,
        sha256: str,
        as_of: datetime,
        reason: str,
        changes: str,
        closed_by: str,
        closed_at: datetime,
        ref: tuple[str, int, str],
    ) -> DispatchRecord:
        """Keep a version; `Duplicate` if (region, period, version) is kept already."""
        ...

    def versions(self, region: str, period: str) -> list[DispatchRecord]:
        """Every kept version of a report, oldest first."""
        ...

    def latest(self, region: str, period: str) -> DispatchRecord | None: ...

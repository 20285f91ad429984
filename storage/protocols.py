"""Small protocols, one per replaceable part of storage.

All methods are synchronous and thread-safe; callers on an event loop run them in
a thread. Implementations raise only `storage.exceptions` errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from storage.types import (
    ChainHead,
    Consent,
    Course,
    DeliveryMode,
    EvidenceRecord,
    Flag,
    FlagStatus,
    Institution,
    Learner,
    LedgerEvent,
    NewEvent,
    Role,
    StudySession,
    Template,
    Token,
    Vector,
    VerifyReport,
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


class RegistryStore(Protocol):
    """Institutions, courses, real-name learners, consent, tokens, sessions, flags."""

    def create_institution(self, name: str) -> Institution: ...
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
    ) -> StudySession: ...
    def end_session(self, session_id: str, ended_at: datetime) -> StudySession: ...
    def get_session(self, session_id: str) -> StudySession: ...
    def list_sessions(
        self,
        institution_id: int | None = None,
        learner_id: int | None = None,
        open_only: bool = False,
    ) -> list[StudySession]: ...

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


class TemplateStore(Protocol):
    """Face templates, encrypted at rest, in their own table."""

    def add(self, learner_id: int, vector: Vector, evidence_sha256: str | None) -> Template: ...
    def for_learner(self, learner_id: int) -> list[Template]: ...
    def all(self) -> list[Template]:
        """Every template (for 1:N duplicate search)."""
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
    def purge_expired(self, now: datetime) -> list[str]:
        """Delete images whose retention has passed; keep their records and hashes."""
        ...

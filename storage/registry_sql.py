"""`RegistryStore` on SQLAlchemy Core: institutions, courses, learners, consent,
API tokens, session projections and flags."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Row, Table, delete, insert, select, update
from sqlalchemy.engine import Connection

from storage.engine import Database
from storage.exceptions import (
    ConsentRequired,
    Duplicate,
    InvalidInput,
    InvalidState,
    NotFound,
)
from storage.models import (
    api_tokens,
    consents,
    courses,
    face_templates,
    flags,
    frame_signatures,
    institution_codes,
    institutions,
    learners,
    session_clients,
    study_sessions,
)
from storage.types import (
    Consent,
    Course,
    DeliveryMode,
    Flag,
    FlagStatus,
    Institution,
    InstitutionStatus,
    Learner,
    Role,
    SessionClient,
    StudySession,
    Token,
)
from storage.validate import aware, enum_value, ident, text

# GB 11643 shape: 17 digits and a check character. The check digit itself is
# validated by the caller's domain rules; storage refuses anything malformed.
_ID_NUMBER: Final = re.compile(r"\d{17}[\dX]")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
TOKEN_SECRET_BYTES: Final = 32


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a token secret: what `api_tokens` stores instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class SqlRegistryStore:
    """Registry rows. Thread-safe; each method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- institutions and courses ---------------------------------------------------

    def create_institution(self, name: str, credit_code: str | None = None) -> Institution:
        """A new institution, with its credit code when given (both unique: `Duplicate`
        for a name, compared without case or extra spaces, or a code already taken)."""
        name = text(name, "institution name", 200)
        code = text(credit_code, "credit code", 18) if credit_code is not None else None
        folded = " ".join(name.split()).casefold()
        with self._db.write() as conn:
            for other in conn.execute(select(institutions.c.name)):
                if " ".join(other.name.split()).casefold() == folded:
                    raise Duplicate(f"an institution named {name!r} already exists")
            if (
                code is not None
                and conn.execute(
                    select(institution_codes.c.institution_id).where(
                        institution_codes.c.credit_code == code
                    )
                ).first()
            ):
                raise Duplicate("this credit code belongs to another institution")
            row = conn.execute(
                insert(institutions)
                .values(name=name, status=InstitutionStatus.active.value, created_at=_now())
                .returning(*institutions.c)
            ).one()
            if code is not None:
                conn.execute(
                    insert(institution_codes).values(institution_id=row.id, credit_code=code)
                )
        return _institution(row, code)

    def get_institution(self, institution_id: int) -> Institution:
        with self._db.read() as conn:
            row = _get(conn, institutions, institution_id, "institution")
            return _institution(row, _codes(conn, institution_id).get(institution_id))

    def list_institutions(self) -> list[Institution]:
        with self._db.read() as conn:
            codes = _codes(conn)
            rows = conn.execute(select(institutions).order_by(institutions.c.id))
            return [_institution(r, codes.get(r.id)) for r in rows]

    def create_course(
        self, institution_id: int, name: str, required_hours: float, delivery_mode: DeliveryMode
    ) -> Course:
        name = text(name, "course name", 200)
        if not isinstance(required_hours, int | float) or not (
            math.isfinite(required_hours) and required_hours > 0
        ):
            raise InvalidInput(f"required_hours must be a positive number (got {required_hours!r})")
        mode = enum_value(DeliveryMode, delivery_mode, "delivery mode")
        with self._db.write() as conn:
            _get(conn, institutions, institution_id, "institution")
            row = conn.execute(
                insert(courses)
                .values(
                    institution_id=institution_id,
                    name=name,
                    required_hours=float(required_hours),
                    delivery_mode=mode.value,
                    created_at=_now(),
                )
                .returning(*courses.c)
            ).one()
        return _course(row)

    def get_course(self, course_id: int) -> Course:
        with self._db.read() as conn:
            return _course(_get(conn, courses, course_id, "course"))

    def list_courses(self, institution_id: int | None = None) -> list[Course]:
        stmt = select(courses).order_by(courses.c.id)
        if institution_id is not None:
            stmt = stmt.where(courses.c.institution_id == institution_id)
        with self._db.read() as conn:
            return [_course(r) for r in conn.execute(stmt)]

    # -- learners and consent -------------------------------------------------------

    def create_learner(self, institution_id: int, full_name: str, id_number: str) -> Learner:
        """Register a real-name learner. `id_number` is stored upper-cased.

        Raises `Duplicate` when the ID number is already registered, `InvalidInput`
        when it is not 17 digits and a digit or X, `NotFound` for an unknown institution.
        """
        full_name = text(full_name, "full name", 100)
        if not isinstance(id_number, str) or not _ID_NUMBER.fullmatch(id_number.upper()):
            raise InvalidInput("ID number must be 17 digits followed by a digit or X")
        id_number = id_number.upper()
        try:
            with self._db.write() as conn:
                _get(conn, institutions, institution_id, "institution")
                row = conn.execute(
                    insert(learners)
                    .values(
                        institution_id=institution_id,
                        full_name=full_name,
                        id_number=id_number,
                        created_at=_now(),
                    )
                    .returning(*learners.c)
                ).one()
        except Duplicate:
            # Never echo the ID number: error texts end up in logs.
            raise Duplicate("a learner with this ID number is already registered") from None
        return _learner(row)

    def get_learner(self, learner_id: int) -> Learner:
        with self._db.read() as conn:
            return _learner(_get(conn, learners, learner_id, "learner"))

    def list_learners(self, institution_id: int | None = None) -> list[Learner]:
        stmt = select(learners).order_by(learners.c.id)
        if institution_id is not None:
            stmt = stmt.where(learners.c.institution_id == institution_id)
        with self._db.read() as conn:
            return [_learner(r) for r in conn.execute(stmt)]

    def learner_institutions(self) -> dict[int, int]:
        stmt = select(learners.c.id, learners.c.institution_id)
        with self._db.read() as conn:
            return {lid: iid for lid, iid in conn.execute(stmt)}

    def find_learner_by_id_number(self, id_number: str) -> Learner | None:
        """The learner registered under this ID number, if any."""
        if not isinstance(id_number, str):
            raise InvalidInput("ID number must be a string")
        stmt = select(learners).where(learners.c.id_number == id_number.upper())
        with self._db.read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _learner(row)

    def record_consent(self, learner_id: int, text_version: str, at: datetime) -> Consent:
        """Record biometric consent. Raises `Duplicate` while another consent is active."""
        text_version = text(text_version, "consent text version", 64)
        aware(at, "at")
        try:
            with self._db.write() as conn:
                _get(conn, learners, learner_id, "learner")
                row = conn.execute(
                    insert(consents)
                    .values(learner_id=learner_id, text_version=text_version, given_at=at)
                    .returning(*consents.c)
                ).one()
        except Duplicate:
            raise Duplicate(f"learner {learner_id} already has an active consent") from None
        return _consent(row)

    def withdraw_consent(self, learner_id: int, at: datetime) -> tuple[Consent, int]:
        """Withdraw the active consent and delete the learner's templates and frame
        signatures (both biometric) in one transaction; returns the consent and the
        number of templates deleted. Raises `NotFound` when there is no active consent."""
        aware(at, "at")
        with self._db.write() as conn:
            active = _active_consent(conn, learner_id, for_update=True)
            if active is None:
                raise NotFound(f"learner {learner_id} has no active consent")
            row = conn.execute(
                update(consents)
                .where(consents.c.id == active.id)
                .values(withdrawn_at=at)
                .returning(*consents.c)
            ).one()
            deleted = conn.execute(
                delete(face_templates).where(face_templates.c.learner_id == learner_id)
            ).rowcount
            conn.execute(
                delete(frame_signatures).where(frame_signatures.c.learner_id == learner_id)
            )
        return _consent(row), int(deleted)

    def active_consent(self, learner_id: int) -> Consent | None:
        with self._db.read() as conn:
            row = _active_consent(conn, learner_id, for_update=False)
        return None if row is None else _consent(row)

    # -- tokens ---------------------------------------------------------------------

    def create_token(
        self,
        role: Role,
        label: str,
        institution_id: int | None = None,
        learner_id: int | None = None,
    ) -> tuple[Token, str]:
        """Store a new token hashed; return it and its secret (shown once).

        An operator token needs `institution_id`; a learner token needs `learner_id`
        (its institution is taken from the learner when not given).
        """
        role = enum_value(Role, role, "role")
        label = text(label, "token label", 200)
        if role is Role.operator and institution_id is None:
            raise InvalidInput("an operator token needs an institution_id")
        if role is Role.learner and learner_id is None:
            raise InvalidInput("a learner token needs a learner_id")
        secret = secrets.token_urlsafe(TOKEN_SECRET_BYTES)
        with self._db.write() as conn:
            if learner_id is not None:
                learner = _get(conn, learners, learner_id, "learner")
                if institution_id is None:
                    institution_id = learner.institution_id
                elif learner.institution_id != institution_id:
                    raise InvalidInput(
                        f"learner {learner_id} does not belong to institution {institution_id}"
                    )
            if institution_id is not None:
                _get(conn, institutions, institution_id, "institution")
            row = conn.execute(
                insert(api_tokens)
                .values(
                    secret_sha256=hash_secret(secret),
                    role=role.value,
                    institution_id=institution_id,
                    learner_id=learner_id,
                    label=label,
                    created_at=_now(),
                )
                .returning(*api_tokens.c)
            ).one()
        return _token(row), secret

    def resolve_token(self, secret: str) -> Token | None:
        """The live (not revoked) token with this secret, or None."""
        if not isinstance(secret, str) or not secret or len(secret) > 512:
            return None
        stmt = select(api_tokens).where(
            api_tokens.c.secret_sha256 == hash_secret(secret), api_tokens.c.revoked_at.is_(None)
        )
        with self._db.read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _token(row)

    def get_token(self, token_id: int) -> Token:
        with self._db.read() as conn:
            return _token(_get(conn, api_tokens, token_id, "token"))

    def revoke_token(self, token_id: int, at: datetime) -> None:
        """Revoke a token; revoking a revoked token keeps the first revocation time."""
        aware(at, "at")
        with self._db.write() as conn:
            _get(conn, api_tokens, token_id, "token")
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    # -- sessions -------------------------------------------------------------------

    def create_session(
        self,
        session_id: str,
        chain_id: str,
        learner_id: int,
        course_id: int,
        institution_id: int,
        started_at: datetime,
        requires_consent: bool = True,
    ) -> StudySession:
        """Record a session's projection.

        Raises `Duplicate` for a used id or chain id, `ConsentRequired` when the
        learner has no active biometric consent (withdrawal stops new sessions),
        unless `requires_consent` is False (a session on the non-face path).
        """
        ident(session_id, "session id")
        ident(chain_id, "chain id")
        aware(started_at, "started_at")
        with self._db.write() as conn:
            learner = _get(conn, learners, learner_id, "learner")
            course = _get(conn, courses, course_id, "course")
            _get(conn, institutions, institution_id, "institution")
            if learner.institution_id != institution_id or course.institution_id != institution_id:
                raise InvalidInput(
                    "the learner and the course must belong to the session's institution"
                )
            # Locked, so a concurrent withdrawal cannot slip in before this commits.
            if requires_consent and _active_consent(conn, learner_id, for_update=True) is None:
                raise ConsentRequired(f"learner {learner_id} has no active biometric consent")
            row = conn.execute(
                insert(study_sessions)
                .values(
                    id=session_id,
                    chain_id=chain_id,
                    learner_id=learner_id,
                    course_id=course_id,
                    institution_id=institution_id,
                    started_at=started_at,
                )
                .returning(*study_sessions.c)
            ).one()
        return _session(row)

    def end_session(self, session_id: str, ended_at: datetime) -> StudySession:
        """Set the end time. Raises `InvalidState` when the session already ended."""
        aware(ended_at, "ended_at")
        with self._db.write() as conn:
            current = _get(conn, study_sessions, session_id, "session", for_update=True)
            if current.ended_at is not None:
                raise InvalidState(f"session {session_id} already ended")
            if ended_at < current.started_at:
                raise InvalidInput("a session cannot end before it started")
            row = conn.execute(
                update(study_sessions)
                .where(study_sessions.c.id == session_id)
                .values(ended_at=ended_at)
                .returning(*study_sessions.c)
            ).one()
        return _session(row)

    def get_session(self, session_id: str) -> StudySession:
        with self._db.read() as conn:
            return _session(_get(conn, study_sessions, session_id, "session"))

    def list_sessions(
        self,
        institution_id: int | None = None,
        learner_id: int | None = None,
        open_only: bool = False,
    ) -> list[StudySession]:
        stmt = select(study_sessions).order_by(study_sessions.c.started_at, study_sessions.c.id)
        if institution_id is not None:
            stmt = stmt.where(study_sessions.c.institution_id == institution_id)
        if learner_id is not None:
            stmt = stmt.where(study_sessions.c.learner_id == learner_id)
        if open_only:
            stmt = stmt.where(study_sessions.c.ended_at.is_(None))
        with self._db.read() as conn:
            return [_session(r) for r in conn.execute(stmt)]

    # -- where sessions were studied from ----------------------------------------------

    def record_session_client(
        self,
        session_id: str,
        address: str,
        device_hash: str | None,
        seen_at: datetime,
        retain_until: datetime,
    ) -> SessionClient:
        """Keep where a session was studied from (once per session; `Duplicate` again)."""
        aware(seen_at, "seen_at")
        aware(retain_until, "retain_until")
        if not address or len(address) > 64:
            raise InvalidInput("a client address has 1 to 64 characters")
        if device_hash is not None and not _HEX64.fullmatch(device_hash):
            raise InvalidInput("a device hash is 64 lowercase hex characters")
        with self._db.write() as conn:
            session = _get(conn, study_sessions, session_id, "session")
            row = conn.execute(
                insert(session_clients)
                .values(
                    session_id=session_id,
                    learner_id=session.learner_id,
                    institution_id=session.institution_id,
                    address=address,
                    device_hash=device_hash,
                    seen_at=seen_at,
                    retain_until=retain_until,
                )
                .returning(*session_clients.c)
            ).one()
        return _client(row, session.ended_at)

    def session_clients(
        self,
        *,
        institution_id: int | None = None,
        learner_id: int | None = None,
        device_hash: str | None = None,
        address: str | None = None,
        open_only: bool = False,
    ) -> list[SessionClient]:
        """Where sessions were studied from, oldest first, by any of these filters."""
        stmt = (
            select(session_clients, study_sessions.c.ended_at)
            .join(study_sessions, study_sessions.c.id == session_clients.c.session_id)
            .order_by(session_clients.c.seen_at, session_clients.c.session_id)
        )
        if institution_id is not None:
            stmt = stmt.where(session_clients.c.institution_id == institution_id)
        if learner_id is not None:
            stmt = stmt.where(session_clients.c.learner_id == learner_id)
        if device_hash is not None:
            stmt = stmt.where(session_clients.c.device_hash == device_hash)
        if address is not None:
            stmt = stmt.where(session_clients.c.address == address)
        if open_only:
            stmt = stmt.where(study_sessions.c.ended_at.is_(None))
        with self._db.read() as conn:
            return [_client(r, r.ended_at) for r in conn.execute(stmt)]

    def purge_session_clients(self, now: datetime) -> int:
        """Delete the client records past their retention; how many."""
        aware(now, "now")
        with self._db.write() as conn:
            result = conn.execute(
                delete(session_clients).where(session_clients.c.retain_until < now)
            )
        return int(result.rowcount or 0)

    # -- flags ----------------------------------------------------------------------

    def raise_flag(
        self,
        kind: str,
        details: str,
        institution_id: int | None,
        learner_id: int | None,
        other_learner_id: int | None = None,
    ) -> Flag:
        ident(kind, "flag kind")
        if not isinstance(details, str):
            raise InvalidInput("flag details must be a string (canonical JSON)")
        with self._db.write() as conn:
            if institution_id is not None:
                _get(conn, institutions, institution_id, "institution")
            for lid in (learner_id, other_learner_id):
                if lid is not None:
                    _get(conn, learners, lid, "learner")
            row = conn.execute(
                insert(flags)
                .values(
                    kind=kind,
                    status=FlagStatus.open.value,
                    institution_id=institution_id,
                    learner_id=learner_id,
                    other_learner_id=other_learner_id,
                    details=details,
                    created_at=_now(),
                )
                .returning(*flags.c)
            ).one()
        return _flag(row)

    def list_flags(
        self, status: FlagStatus | None = None, institution_id: int | None = None
    ) -> list[Flag]:
        stmt = select(flags).order_by(flags.c.id)
        if status is not None:
            stmt = stmt.where(flags.c.status == enum_value(FlagStatus, status, "flag status").value)
        if institution_id is not None:
            stmt = stmt.where(flags.c.institution_id == institution_id)
        with self._db.read() as conn:
            return [_flag(r) for r in conn.execute(stmt)]

    def decide_flag(self, flag_id: int, status: FlagStatus, by: str, note: str) -> Flag:
        """Confirm or dismiss an open flag. Raises `InvalidState` if already decided."""
        status = enum_value(FlagStatus, status, "flag status")
        if status is FlagStatus.open:
            raise InvalidInput("a decision must confirm or dismiss the flag")
        by = text(by, "decided_by", 200)
        if not isinstance(note, str):
            raise InvalidInput("decision note must be a string")
        with self._db.write() as conn:
            current = _get(conn, flags, flag_id, "flag", for_update=True)
            if current.status != FlagStatus.open.value:
                raise InvalidState(f"flag {flag_id} was already {current.status}")
            row = conn.execute(
                update(flags)
                .where(flags.c.id == flag_id)
                .values(status=status.value, decided_at=_now(), decided_by=by, decision_note=note)
                .returning(*flags.c)
            ).one()
        return _flag(row)


# -- helpers -------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _get(
    conn: Connection, table: Table, key: Any, what: str, *, for_update: bool = False
) -> Row[Any]:
    if not isinstance(key, int | str) or isinstance(key, bool):
        raise InvalidInput(f"{what} id has the wrong type: {type(key).__name__}")
    pk = next(iter(table.primary_key.columns))
    stmt = select(table).where(pk == key)
    if for_update:
        stmt = stmt.with_for_update()  # PostgreSQL row lock; SQLite holds the write lock
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"{what} {key} not found")
    return row


def _active_consent(conn: Connection, learner_id: int, *, for_update: bool) -> Row[Any] | None:
    stmt = select(consents).where(
        consents.c.learner_id == learner_id, consents.c.withdrawn_at.is_(None)
    )
    if for_update:
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def _institution(r: Row[Any], credit_code: str | None = None) -> Institution:
    return Institution(r.id, r.name, InstitutionStatus(r.status), r.created_at, credit_code)


def _codes(conn: Connection, institution_id: int | None = None) -> dict[int, str]:
    stmt = select(institution_codes)
    if institution_id is not None:
        stmt = stmt.where(institution_codes.c.institution_id == institution_id)
    return {r.institution_id: r.credit_code for r in conn.execute(stmt)}


def _course(r: Row[Any]) -> Course:
    return Course(
        r.id,
        r.institution_id,
        r.name,
        r.required_hours,
        DeliveryMode(r.delivery_mode),
        r.created_at,
    )


def _learner(r: Row[Any]) -> Learner:
    return Learner(r.id, r.institution_id, r.full_name, r.id_number, r.created_at)


def _consent(r: Row[Any]) -> Consent:
    return Consent(r.id, r.learner_id, r.text_version, r.given_at, r.withdrawn_at)


def _token(r: Row[Any]) -> Token:
    return Token(
        r.id, Role(r.role), r.institution_id, r.learner_id, r.label, r.created_at, r.revoked_at
    )


def _session(r: Row[Any]) -> StudySession:
    return StudySession(
        r.id, r.chain_id, r.learner_id, r.course_id, r.institution_id, r.started_at, r.ended_at
    )


def _client(r: Row[Any], ended_at: datetime | None) -> SessionClient:
    return SessionClient(
        r.session_id,
        r.learner_id,
        r.institution_id,
        r.address,
        r.device_hash,
        r.seen_at,
        r.retain_until,
        ended_at,
    )


def _flag(r: Row[Any]) -> Flag:
    return Flag(
        r.id,
        r.kind,
        FlagStatus(r.status),
        r.institution_id,
        r.learner_id,
        r.other_learner_id,
        r.details,
        r.created_at,
        r.decided_at,
        r.decided_by,
        r.decision_note,
    )

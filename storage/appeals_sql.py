"""`AppealStore` on SQLAlchemy Core (SQLite and PostgreSQL): learners' appeals and
the decisions on them.

Both tables are only inserted into. An appeal is open while it has no row in
`appeal_decisions`; that table's primary key is the appeal, so an appeal is decided
once. A learner's subject (`subject_key`) takes a new appeal only while none of their
earlier appeals on it is open or upheld: the check and the insert run in one write
transaction, under the learner's row lock. (Two learners may appeal one flag: the
flagged learner, and another learner a confirmation of it holds against.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, exists, insert, or_, select
from sqlalchemy.exc import IntegrityError

from storage.engine import Database
from storage.exceptions import Duplicate, InvalidInput, NotFound
from storage.models import appeal_decisions as D
from storage.models import appeals as A
from storage.models import learners
from storage.types import (
    Appeal,
    AppealDecision,
    AppealStatus,
    AppealSubject,
    subject_key,
)
from storage.validate import aware, enum_value, ident, row_id, sha256_hex, text

MAX_STATEMENT = 2000
MAX_NOTE = 2000


def _appeal(r: Row[Any]) -> Appeal:
    decision = None
    if r.d_appeal_id is not None:
        decision = AppealDecision(
            r.d_appeal_id,
            bool(r.d_upheld),
            r.d_note,
            r.d_decided_by,
            r.d_decided_at,
            r.d_chain_id,
            r.d_seq,
            r.d_hash,
        )
    return Appeal(
        r.id,
        r.learner_id,
        r.institution_id,
        AppealSubject(r.subject),
        r.flag_id,
        r.chain_id,
        r.seq,
        r.statement,
        r.filed_by,
        r.filed_at,
        decision,
    )


def _query() -> Any:
    return select(A, *[c.label(f"d_{c.name}") for c in D.c]).outerjoin(D, D.c.appeal_id == A.c.id)


class SqlAppealStore:
    """Thread-safe."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        row_id(learner_id, "learner")
        subject = enum_value(AppealSubject, subject, "appeal subject")
        if subject is AppealSubject.flag:
            if flag_id is None or chain_id is not None or seq is not None:
                raise InvalidInput("an appeal on a flag names the flag only")
            row_id(flag_id, "flag")
        else:
            if flag_id is not None or chain_id is None or seq is None:
                raise InvalidInput("an appeal on a check names its chain and seq only")
            ident(chain_id, "chain_id")
            if type(seq) is not int or seq < 1:
                raise InvalidInput("seq must be a positive int")
        said = text(statement, "statement", MAX_STATEMENT)
        by = text(filed_by, "filed_by", 200)
        aware(at, "at")
        key = subject_key(subject, flag_id, chain_id, seq)
        with self._db.write() as conn:
            if (
                conn.execute(select(learners.c.id).where(learners.c.id == learner_id)).first()
                is None
            ):
                raise NotFound(f"no learner {learner_id}")
            standing = (
                select(A.c.id)
                .outerjoin(D, D.c.appeal_id == A.c.id)
                .where(
                    A.c.subject_key == key,
                    A.c.learner_id == learner_id,
                    or_(D.c.appeal_id.is_(None), D.c.upheld.is_(True)),
                )
            )
            if conn.execute(select(exists(standing))).scalar():
                raise Duplicate(f"{key} already has an open or upheld appeal")
            new_id = conn.execute(
                insert(A)
                .values(
                    learner_id=learner_id,
                    institution_id=institution_id,
                    subject=subject.value,
                    subject_key=key,
                    flag_id=flag_id,
                    chain_id=chain_id,
                    seq=seq,
                    statement=said,
                    filed_by=by,
                    filed_at=at,
                )
                .returning(A.c.id)
            ).scalar_one()
            row = conn.execute(_query().where(A.c.id == new_id)).one()
        return _appeal(row)

    def decide(
        self,
        appeal_id: int,
        upheld: bool,
        note: str,
        decided_by: str,
        at: datetime,
        ledger_ref: tuple[str, int, str],
    ) -> Appeal:
        row_id(appeal_id, "appeal")
        if not isinstance(upheld, bool):
            raise InvalidInput("upheld must be a bool")
        said = text(note, "note", MAX_NOTE)
        by = text(decided_by, "decided_by", 200)
        aware(at, "at")
        chain_id, seq, hash_ = ledger_ref
        ident(chain_id, "chain_id")
        sha256_hex(hash_, "hash")
        with self._db.write() as conn:
            found = conn.execute(_query().where(A.c.id == appeal_id)).first()
            if found is None:
                raise NotFound(f"no appeal {appeal_id}")
            if found.d_appeal_id is not None:
                raise Duplicate(f"appeal {appeal_id} is decided already")
            try:
                conn.execute(
                    insert(D).values(
                        appeal_id=appeal_id,
                        upheld=upheld,
                        note=said,
                        decided_by=by,
                        decided_at=at,
                        chain_id=chain_id,
                        seq=seq,
                        hash=hash_,
                    )
                )
            except IntegrityError:
                raise Duplicate(f"appeal {appeal_id} is decided already") from None
            row = conn.execute(_query().where(A.c.id == appeal_id)).one()
        return _appeal(row)

    def get(self, appeal_id: int) -> Appeal:
        row_id(appeal_id, "appeal")
        with self._db.read() as conn:
            row = conn.execute(_query().where(A.c.id == appeal_id)).first()
        if row is None:
            raise NotFound(f"no appeal {appeal_id}")
        return _appeal(row)

    def find(
        self,
        learner_id: int | None = None,
        status: AppealStatus | None = None,
        institution_id: int | None = None,
        limit: int = 500,
    ) -> list[Appeal]:
        q = _query()
        if learner_id is not None:
            q = q.where(A.c.learner_id == learner_id)
        if institution_id is not None:
            q = q.where(A.c.institution_id == institution_id)
        if status is not None:
            status = enum_value(AppealStatus, status, "appeal status")
            if status is AppealStatus.open:
                q = q.where(D.c.appeal_id.is_(None))
            else:
                q = q.where(D.c.upheld.is_(status is AppealStatus.upheld))
        q = q.order_by(A.c.id).limit(max(1, min(int(limit), 5000)))
        with self._db.read() as conn:
            rows = conn.execute(q).all()
        return [_appeal(r) for r in rows]

"""Seals over chain heads and the access log, on SQLAlchemy Core (SQLite and PostgreSQL).

A seal is written with its leaves (the chain heads it covers) in one transaction;
leaves go in chunks of one executemany each, so 100,000 chains are a few round
trips. Neither table is ever updated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import islice
from typing import Any, Final

from sqlalchemy import Row, delete, insert, select

from storage.engine import Database
from storage.exceptions import InvalidInput, NotFound
from storage.models import access_log as A
from storage.models import ledger_seals as S
from storage.models import seal_leaves as L
from storage.types import AccessEntry, ChainHead, Seal
from storage.validate import aware, ident, sha256_hex

_CHUNK: Final = 5_000
_HEX128_LEN: Final = 128


class SqlSealStore:
    """Signed seals and the heads they cover. Thread-safe."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        sealed_at: datetime,
        root: str,
        statement: str,
        signature: str,
        public_key: str,
        leaves: Iterable[ChainHead],
        chains: int,
    ) -> Seal:
        """Store a seal and its leaves (in Merkle leaf order) atomically."""
        aware(sealed_at, "sealed_at")
        sha256_hex(root, "root")
        sha256_hex(public_key, "public key")
        if len(signature) != _HEX128_LEN or any(c not in "0123456789abcdef" for c in signature):
            raise InvalidInput("signature must be 128 lowercase hex characters")
        with self._db.write() as conn:
            seal_id = conn.execute(
                insert(S)
                .values(
                    sealed_at=sealed_at,
                    chains=chains,
                    root=root,
                    statement=statement,
                    signature=signature,
                    public_key=public_key,
                )
                .returning(S.c.id)
            ).scalar_one()
            it = iter(leaves)
            written = 0
            if self._db.dialect == "postgresql":
                # COPY: 100,000 leaves in about a second, where executemany takes several.
                raw = conn.connection.driver_connection
                assert raw is not None  # an open connection of psycopg
                with (
                    raw.cursor() as cur,
                    cur.copy(
                        "COPY ledger_seal_leaves (seal_id, chain_id, seq, hash, broken) FROM STDIN"
                    ) as copy,
                ):
                    for h in it:
                        copy.write_row(
                            (seal_id, ident(h.chain_id, "chain id"), h.seq, h.hash, h.broken)
                        )
                        written += 1
            while chunk := list(islice(it, _CHUNK)):
                conn.execute(
                    insert(L),
                    [
                        {
                            "seal_id": seal_id,
                            "chain_id": h.chain_id,
                            "seq": h.seq,
                            "hash": h.hash,
                            "broken": h.broken,
                        }
                        for h in chunk
                    ],
                )
                written += len(chunk)
            if written != chains:
                raise InvalidInput(f"seal declares {chains} chains but {written} leaves were given")
            row = conn.execute(select(S).where(S.c.id == seal_id)).one()
        return _seal(row)

    def get(self, seal_id: int) -> Seal:
        with self._db.read() as conn:
            row = conn.execute(select(S).where(S.c.id == seal_id)).first()
        if row is None:
            raise NotFound(f"seal {seal_id} not found")
        return _seal(row)

    def latest(self) -> Seal | None:
        with self._db.read() as conn:
            row = conn.execute(select(S).order_by(S.c.id.desc()).limit(1)).first()
        return None if row is None else _seal(row)

    def recent(self, limit: int = 50) -> Sequence[Seal]:
        with self._db.read() as conn:
            rows = conn.execute(select(S).order_by(S.c.id.desc()).limit(limit)).all()
        return [_seal(r) for r in rows]

    def leaves(self, seal_id: int) -> list[ChainHead]:
        """Every head the seal covers, ordered by chain_id (the Merkle leaf order)."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(L.c.chain_id, L.c.seq, L.c.hash, L.c.broken)
                .where(L.c.seal_id == seal_id)
                .order_by(L.c.chain_id)
            ).all()
        return [ChainHead(r[0], r[1], r[2], r[3]) for r in rows]

    def covering(self, chain_id: str) -> list[tuple[Seal, ChainHead]]:
        """Every seal that covers a chain, oldest first, with the chain's leaf in it."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(S, L.c.seq, L.c.hash, L.c.broken)
                .join(L, L.c.seal_id == S.c.id)
                .where(L.c.chain_id == chain_id)
                .order_by(S.c.id)
            ).all()
        return [(_seal(r), ChainHead(chain_id, r.seq, r.hash, r.broken)) for r in rows]


class SqlAccessLog:
    """Append-only log of staff reads of personal data. Thread-safe."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
    ) -> None:
        aware(at, "at")
        ident(action, "action")
        if session_id is not None:
            ident(session_id, "session id")
        with self._db.write() as conn:
            conn.execute(
                insert(A).values(
                    at=at,
                    actor=actor[:200],
                    role=role[:16],
                    action=action,
                    institution_id=institution_id,
                    learner_id=learner_id,
                    session_id=session_id,
                    class_id=class_id,
                    detail=detail[:500],
                )
            )

    def purge_before(self, cutoff: datetime) -> int:
        """Delete entries older than `cutoff` (retention); returns how many."""
        with self._db.write() as conn:
            result = conn.execute(delete(A).where(A.c.at < aware(cutoff, "cutoff")))
            return int(result.rowcount or 0)

    def entries(
        self,
        *,
        learner_id: int | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = 500,
    ) -> Sequence[AccessEntry]:
        """Newest first."""
        stmt = select(A).order_by(A.c.id.desc()).limit(limit)
        if learner_id is not None:
            stmt = stmt.where(A.c.learner_id == learner_id)
        if actor is not None:
            stmt = stmt.where(A.c.actor == actor)
        if since is not None:
            stmt = stmt.where(A.c.at >= aware(since, "since"))
        with self._db.read() as conn:
            return [_entry(r) for r in conn.execute(stmt)]


def _seal(r: Row[Any]) -> Seal:
    return Seal(r.id, r.sealed_at, r.chains, r.root, r.statement, r.signature, r.public_key)


def _entry(r: Row[Any]) -> AccessEntry:
    return AccessEntry(
        r.id,
        r.at,
        r.actor,
        r.role,
        r.action,
        r.institution_id,
        r.learner_id,
        r.session_id,
        r.class_id,
        r.detail,
    )

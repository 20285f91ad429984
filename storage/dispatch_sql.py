"""`DispatchStore` on SQLAlchemy Core (SQLite and PostgreSQL): closed versions of the
dispatch report, kept as reported (revision 0011d). Rows are only inserted; the
unique (region, period, version) makes two writers of one version collide
(`Duplicate`) instead of both winning."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select

from storage.engine import Database
from storage.exceptions import InvalidInput
from storage.models import dispatch_reports as D
from storage.types import DispatchRecord
from storage.validate import aware, sha256_hex


def _record(r: Row[Any]) -> DispatchRecord:
    return DispatchRecord(
        r.id,
        r.region,
        r.period,
        r.version,
        r.body,
        r.sha256,
        r.as_of,
        r.reason,
        r.changes,
        r.closed_by,
        r.closed_at,
        r.chain_id,
        r.seq,
        r.hash,
    )


class SqlDispatchStore:
    """Thread-safe; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        aware(as_of, "as_of")
        aware(closed_at, "closed_at")
        sha256_hex(sha256, "sha256")
        if version < 1:
            raise InvalidInput("a version is 1 or more")
        with self._db.write() as conn:
            row = conn.execute(
                insert(D)
                .values(
                    region=region,
                    period=period,
                    version=version,
                    body=body,
                    sha256=sha256,
                    as_of=as_of,
                    reason=reason,
                    changes=changes,
                    closed_by=closed_by,
                    closed_at=closed_at,
                    chain_id=ref[0],
                    seq=ref[1],
                    hash=ref[2],
                )
                .returning(*D.c)
            ).one()
        return _record(row)

    def versions(self, region: str, period: str) -> list[DispatchRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(D).where(D.c.region == region, D.c.period == period).order_by(D.c.version)
            ).all()
        return [_record(r) for r in rows]

    def latest(self, region: str, period: str) -> DispatchRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(D)
                .where(D.c.region == region, D.c.period == period)
                .order_by(D.c.version.desc())
                .limit(1)
            ).first()
        return _record(row) if row is not None else None

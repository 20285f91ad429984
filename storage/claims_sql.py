"""`ClaimStore` on SQLAlchemy Core: claims and their frozen lines, objections, sampling
draws and payment exports (revision 0011c).

Every row is inserted once and never updated: what happened to a claim (verified,
decided, published, objected to, paid) is in its ledger chain. The one rule kept by
the schema itself is that a claim is paid once: `claim_payments` is keyed by claim,
so a second export of it fails as a whole (`Duplicate`) whatever the callers race.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, insert, select

from storage.engine import Database
from storage.exceptions import InvalidInput, NotFound
from storage.models import (
    claim_draw_members,
    claim_draws,
    claim_lines,
    claim_notices,
    claim_objections,
    claim_payment_exports,
    claim_payments,
    claims_table,
)
from storage.types import (
    Claim,
    ClaimDraw,
    ClaimLine,
    ClaimNotice,
    ClaimObjection,
    ClaimPayment,
    LineChain,
    NewClaimLine,
    PaymentExport,
)
from storage.validate import aware, ident, sha256_hex, text

_CHUNK = 5_000


def _chains_json(chains: Sequence[LineChain]) -> str:
    return json.dumps([[c.chain_id, c.seq, c.hash] for c in chains], separators=(",", ":"))


def _chains_of(body: str) -> tuple[LineChain, ...]:
    return tuple(LineChain(str(c), int(s), str(h)) for c, s, h in json.loads(body))


class SqlClaimStore:
    """Thread-safe; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- claims ------------------------------------------------------------------------

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
        aware(period_start, "period_start")
        aware(period_end, "period_end")
        aware(submitted_at, "submitted_at")
        sha256_hex(lines_sha256, "lines_sha256")
        if period_end <= period_start:
            raise InvalidInput("the period must end after it starts")
        amount = round(sum(x.amount for x in lines), 2)
        with self._db.write() as conn:
            claim_id = conn.execute(
                insert(claims_table)
                .values(
                    institution_id=institution_id,
                    period_start=period_start,
                    period_end=period_end,
                    learners=len(lines),
                    amount=amount,
                    lines_sha256=lines_sha256,
                    submitted_by=text(submitted_by, "submitted_by", 200),
                    submitted_at=submitted_at,
                )
                .returning(claims_table.c.id)
            ).scalar_one()
            rows = [
                {
                    "claim_id": claim_id,
                    "line_no": n,
                    "learner_id": x.learner_id,
                    "course_id": x.course_id,
                    "credited_hours": x.credited_hours,
                    "amount": x.amount,
                    "chains": _chains_json(x.chains),
                }
                for n, x in enumerate(lines, start=1)
            ]
            for i in range(0, len(rows), _CHUNK):
                conn.execute(insert(claim_lines), rows[i : i + _CHUNK])
        return self.get_claim(claim_id)

    def get_claim(self, claim_id: int) -> Claim:
        found = self._claims(claims_table.c.id == claim_id)
        if not found:
            raise NotFound(f"claim {claim_id} not found")
        return found[0]

    def list_claims(
        self,
        institution_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Claim]:
        c = claims_table.c
        where: list[Any] = []
        if institution_id is not None:
            where.append(c.institution_id == institution_id)
        if start is not None:
            where.append(c.period_end > aware(start, "start"))
        if end is not None:
            where.append(c.period_start < aware(end, "end"))
        return self._claims(and_(True, *where))

    def _claims(self, where: Any) -> list[Claim]:
        with self._db.read() as conn:
            rows = conn.execute(select(claims_table).where(where).order_by(claims_table.c.id))
            found = rows.all()
            courses: dict[int, set[int]] = {}
            ids = [r.id for r in found]
            for i in range(0, len(ids), 500):
                for cid, course in conn.execute(
                    select(claim_lines.c.claim_id, claim_lines.c.course_id)
                    .where(claim_lines.c.claim_id.in_(ids[i : i + 500]))
                    .distinct()
                ):
                    courses.setdefault(cid, set()).add(course)
        return [_claim(r, tuple(sorted(courses.get(r.id, ())))) for r in found]

    def lines(self, claim_id: int) -> list[ClaimLine]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(claim_lines)
                .where(claim_lines.c.claim_id == claim_id)
                .order_by(claim_lines.c.line_no)
            ).all()
        return [
            ClaimLine(
                r.claim_id,
                r.line_no,
                r.learner_id,
                r.course_id,
                r.credited_hours,
                r.amount,
                _chains_of(r.chains),
            )
            for r in rows
        ]

    # -- objections --------------------------------------------------------------------

    def add_objection(
        self,
        claim_id: int,
        learner_id: int | None,
        statement: str,
        statement_sha256: str,
        received_at: datetime,
        received_by: str,
    ) -> ClaimObjection:
        sha256_hex(statement_sha256, "statement_sha256")
        aware(received_at, "received_at")
        with self._db.write() as conn:
            oid = conn.execute(
                insert(claim_objections)
                .values(
                    claim_id=claim_id,
                    learner_id=learner_id,
                    statement=text(statement, "statement", 4000),
                    statement_sha256=statement_sha256,
                    received_at=received_at,
                    received_by=text(received_by, "received_by", 200),
                )
                .returning(claim_objections.c.id)
            ).scalar_one()
        return self.get_objection(oid)

    def get_objection(self, objection_id: int) -> ClaimObjection:
        with self._db.read() as conn:
            row = conn.execute(
                select(claim_objections).where(claim_objections.c.id == objection_id)
            ).first()
        if row is None:
            raise NotFound(f"objection {objection_id} not found")
        return _objection(row)

    def objections(self, claim_id: int) -> list[ClaimObjection]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(claim_objections)
                .where(claim_objections.c.claim_id == claim_id)
                .order_by(claim_objections.c.id)
            ).all()
        return [_objection(r) for r in rows]

    # -- draws -------------------------------------------------------------------------

    def add_draw(self, draw: ClaimDraw) -> ClaimDraw:
        ident(draw.draw_id, "draw id")
        aware(draw.drawn_at, "drawn_at")
        with self._db.write() as conn:
            conn.execute(
                insert(claim_draws).values(
                    draw_id=draw.draw_id,
                    period_start=aware(draw.period_start, "period_start"),
                    period_end=aware(draw.period_end, "period_end"),
                    seed=text(draw.seed, "seed", 128),
                    base_rate=draw.base_rate,
                    drawn_by=text(draw.drawn_by, "drawn_by", 200),
                    drawn_at=draw.drawn_at,
                )
            )
            members = set(draw.population) | set(draw.sampled)
            if members:
                conn.execute(
                    insert(claim_draw_members),
                    [
                        {"draw_id": draw.draw_id, "claim_id": c, "sampled": c in draw.sampled}
                        for c in sorted(members)
                    ],
                )
        return self.get_draw(draw.draw_id)

    def get_draw(self, draw_id: str) -> ClaimDraw:
        found = self._draws(claim_draws.c.draw_id == draw_id)
        if not found:
            raise NotFound(f"draw {draw_id} not found")
        return found[0]

    def draws(self) -> list[ClaimDraw]:
        return self._draws(True)

    def _draws(self, where: Any) -> list[ClaimDraw]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(claim_draws).where(where).order_by(claim_draws.c.drawn_at.desc())
            ).all()
            sampled: dict[str, list[int]] = {}
            population: dict[str, list[int]] = {}
            ids = [r.draw_id for r in rows]
            if ids:
                m = claim_draw_members.c
                for did, cid, hit in conn.execute(
                    select(m.draw_id, m.claim_id, m.sampled).where(m.draw_id.in_(ids))
                ):
                    population.setdefault(did, []).append(cid)
                    if hit:
                        sampled.setdefault(did, []).append(cid)
        return [
            ClaimDraw(
                r.draw_id,
                r.period_start,
                r.period_end,
                r.seed,
                r.base_rate,
                tuple(sorted(sampled.get(r.draw_id, ()))),
                r.drawn_by,
                r.drawn_at,
                tuple(sorted(population.get(r.draw_id, ()))),
            )
            for r in rows
        ]

    def sampled(self, claim_ids: Sequence[int] | None = None) -> dict[int, str]:
        return {c: d for c, (d, hit) in self._members(claim_ids).items() if hit}

    def drawn(self, claim_ids: Sequence[int] | None = None) -> dict[int, str]:
        return {c: d for c, (d, _) in self._members(claim_ids).items()}

    def _members(self, claim_ids: Sequence[int] | None) -> dict[int, tuple[str, bool]]:
        m = claim_draw_members.c
        q = select(m.claim_id, m.draw_id, m.sampled)
        out: dict[int, tuple[str, bool]] = {}
        with self._db.read() as conn:
            if claim_ids is None:
                return {c: (d, bool(s)) for c, d, s in conn.execute(q)}
            ids = list(claim_ids)
            for i in range(0, len(ids), 500):
                for c, d, s in conn.execute(q.where(m.claim_id.in_(ids[i : i + 500]))):
                    out[c] = (d, bool(s))
        return out

    # -- notices -----------------------------------------------------------------------

    def add_notice(self, notice: ClaimNotice) -> ClaimNotice:
        aware(notice.notice_from, "notice_from")
        aware(notice.notice_until, "notice_until")
        if notice.notice_until <= notice.notice_from:
            raise InvalidInput("a notice must end after it starts")
        with self._db.write() as conn:
            conn.execute(
                insert(claim_notices).values(
                    claim_id=notice.claim_id,
                    notice_from=notice.notice_from,
                    notice_until=notice.notice_until,
                )
            )
        return notice

    def notices_open(self, at: datetime) -> list[ClaimNotice]:
        n = claim_notices.c
        with self._db.read() as conn:
            rows = conn.execute(
                select(claim_notices)
                .where(n.notice_until > aware(at, "at"), n.notice_from <= at)
                .order_by(n.claim_id)
            ).all()
        return [ClaimNotice(r.claim_id, r.notice_from, r.notice_until) for r in rows]

    # -- payment exports ---------------------------------------------------------------

    def add_payment_export(
        self,
        export_id: str,
        created_at: datetime,
        created_by: str,
        payments: Sequence[tuple[int, float]],
    ) -> PaymentExport:
        ident(export_id, "export id")
        aware(created_at, "created_at")
        if not payments:
            raise InvalidInput("a payment export pays at least one claim")
        with self._db.write() as conn:
            conn.execute(
                insert(claim_payment_exports).values(
                    export_id=export_id,
                    created_at=created_at,
                    created_by=text(created_by, "created_by", 200),
                    claims=len(payments),
                    amount=round(sum(a for _, a in payments), 2),
                )
            )
            conn.execute(
                insert(claim_payments),
                [
                    {"claim_id": c, "export_id": export_id, "amount": a, "paid_at": created_at}
                    for c, a in payments
                ],
            )
        return self.payment_export(export_id)[0]

    def payment_export(self, export_id: str) -> tuple[PaymentExport, list[ClaimPayment]]:
        with self._db.read() as conn:
            row = conn.execute(
                select(claim_payment_exports).where(claim_payment_exports.c.export_id == export_id)
            ).first()
            if row is None:
                raise NotFound(f"payment export {export_id} not found")
            paid = conn.execute(
                select(claim_payments)
                .where(claim_payments.c.export_id == export_id)
                .order_by(claim_payments.c.claim_id)
            ).all()
        return _export(row), [_payment(p) for p in paid]

    def payment_exports(self) -> list[PaymentExport]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(claim_payment_exports).order_by(claim_payment_exports.c.created_at.desc())
            ).all()
        return [_export(r) for r in rows]

    def paid(self, claim_ids: Sequence[int] | None = None) -> dict[int, ClaimPayment]:
        q = select(claim_payments)
        if claim_ids is not None:
            q = q.where(claim_payments.c.claim_id.in_(list(claim_ids)))
        with self._db.read() as conn:
            return {r.claim_id: _payment(r) for r in conn.execute(q)}


def _claim(r: Row[Any], courses: tuple[int, ...]) -> Claim:
    return Claim(
        r.id,
        r.institution_id,
        r.period_start,
        r.period_end,
        r.learners,
        r.amount,
        r.lines_sha256,
        r.submitted_by,
        r.submitted_at,
        courses,
    )


def _objection(r: Row[Any]) -> ClaimObjection:
    return ClaimObjection(
        r.id,
        r.claim_id,
        r.learner_id,
        r.statement,
        r.statement_sha256,
        r.received_at,
        r.received_by,
    )


def _export(r: Row[Any]) -> PaymentExport:
    return PaymentExport(r.export_id, r.created_at, r.created_by, r.claims, r.amount)


def _payment(r: Row[Any]) -> ClaimPayment:
    return ClaimPayment(r.claim_id, r.export_id, r.amount, r.paid_at)

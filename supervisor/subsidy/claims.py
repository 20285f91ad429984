"""Claim review: submit, sample, verify, decide, public notice (公示), objections and
the payment export. The service behind `supervisor.api.routes.claims`.

Every step is a ledger event in the claim's chain `claim:<id>` (`supervisor.ledger.
claims`), appended after the checks that may refuse it; a refusal appends nothing.
What a claim is now (submitted, verified, approved, rejected, paid) is replayed from
that chain (`supervisor.rules.claims.claim_state`); the rows of `storage.claims` are
what the events point to (the frozen lines, the objections' statements, the draws,
the payment exports) and are never updated.

Who does what: an institution's operator submits its own claims and reads them; the
bureau (or an inspector) draws the sample and verifies sampled claims; the bureau
decides and exports payments; anyone may object during the notice. The institution
never verifies, decides or pays its own claim.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage.canonical import GENESIS_HASH
from storage.exceptions import Duplicate
from storage.types import (
    BrokenRecord,
    Claim,
    ClaimDraw,
    ClaimLine,
    ClaimNotice,
    ClaimObjection,
    Course,
    FlagStatus,
    Institution,
    Learner,
    LedgerEvent,
    LineChain,
    NewClaimLine,
    PaymentExport,
    Role,
)
from supervisor.auth import (
    READ_ALL,
    Principal,
    require_bureau,
    require_decider,
    require_role,
)
from supervisor.checks.integrity import report_breaks
from supervisor.context import Context
from supervisor.errors import Conflict, Forbidden, InvalidInput, UnknownId
from supervisor.ledger import claims as ce
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import inspection as iev
from supervisor.ledger import subsidy as se
from supervisor.registry.identity import mask_id_number, mask_name
from supervisor.rules import claims as rules
from supervisor.subsidy.report import claims as claim_rows
from supervisor.subsidy.scan import scan

MAX_PERIOD = timedelta(days=366)
MAX_STATEMENT = 2000


@dataclass(frozen=True, slots=True)
class ClaimView:
    claim: Claim
    state: rules.ClaimState
    sampled_by: str | None  # the draw that sampled it
    paid_export: str | None

    @property
    def status(self) -> str:
        return self.state.status


@dataclass(frozen=True, slots=True)
class ClaimDetail:
    view: ClaimView
    lines: tuple[ClaimLine, ...]
    objections: tuple[ClaimObjection, ...]
    payable: float  # the amount of the lines still in (approved claims)


@dataclass(frozen=True, slots=True)
class DrawView:
    event: ce.ClaimSampleDrawn
    reproduced: bool


@dataclass(frozen=True, slots=True)
class NoticeLine:
    learner_id: int
    name_masked: str
    id_number_masked: str
    course_id: int
    course_name: str
    credited_hours: float
    amount: float


@dataclass(frozen=True, slots=True)
class Notice:
    claim: Claim
    institution: str
    notice_from: datetime
    notice_until: datetime
    amount: float
    lines: tuple[NoticeLine, ...]


@dataclass(frozen=True, slots=True)
class PaymentRow:
    export_id: str
    claim_id: int
    institution_id: int
    institution: str
    period_start: datetime
    period_end: datetime
    course_id: int
    course_name: str
    learner_id: int
    learner_name: str
    id_number_masked: str
    credited_hours: float
    amount: float


def check_lines(
    storage: Any, lines: Sequence[ClaimLine], at: datetime, metrics: Any = None
) -> set[int]:
    """Learners whose line rests on a chain that is no longer intact, or whose frozen
    head (seq, hash) is no longer what the ledger holds at that seq (blocking).

    Each chain is re-hashed from its first event up to the frozen seq
    (`LedgerStore.verify_from`): every event the line rests on must still recompute and
    link, and the verified hash at the frozen seq must be the frozen one (events
    appended after it are not what the claim rests on). A chain in the register of
    broken chains (a seal or a scan found it broken, anywhere) is broken whatever it
    recomputes to; one found broken here is registered and raises the integrity alarm
    (`found_by` "claim_review"), as a scan or a seal would."""
    frozen: dict[str, set[tuple[int, str]]] = {}
    for line in lines:
        for ref in line.chains:
            frozen.setdefault(ref.chain_id, set()).add((ref.seq, ref.hash))
    registered = set(storage.ledger.broken(sorted(frozen)))
    found: dict[str, tuple[int, str]] = {}
    # Up to each frozen seq (chains frozen at several seqs are checked at each).
    pending = {c: sorted(v) for c, v in frozen.items() if c not in registered and c not in found}
    while pending:
        upto = {c: v[0][0] for c, v in pending.items()}
        breaks, heads = storage.ledger.verify_from(
            [(c, 0, GENESIS_HASH) for c in sorted(upto)], upto
        )
        for b in breaks:
            found.setdefault(b.chain_id, (b.seq, b.reason))
        for c, v in list(pending.items()):
            seq, hash_ = v.pop(0)
            if c not in found and heads.get(c) != (seq, hash_):
                found[c] = (seq, f"event {seq}, which a claim line rests on, is not as frozen")
            if not v or c in found:
                del pending[c]
    if found:
        report_breaks(
            storage,
            [
                BrokenRecord(c, seq, why, at, "claim_review")
                for c, (seq, why) in sorted(found.items())
            ],
            at,
            metrics=metrics,
        )
    bad = registered | set(found)
    return {line.learner_id for line in lines if any(c.chain_id in bad for c in line.chains)}


class ClaimService:
    def __init__(self, ctx: Context, clock: Callable[[], datetime] | None = None) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.store = ctx.storage.claims
        # The notice lasts days: the tests move this service's clock, not the process's.
        self.clock = clock or ctx.clock

    # -- reading -----------------------------------------------------------------------

    def _state(self, claim_id: int) -> rules.ClaimState:
        stored = self.storage.ledger.read_chain(ce.claim_chain(claim_id))
        return rules.claim_state(claim_id, (e for _, e in codec.decode_all(stored)))

    def _views(self, found: Sequence[Claim]) -> list[ClaimView]:
        ids = [c.id for c in found]
        sampled = self.store.sampled(ids) if ids else {}
        paid = self.store.paid(ids) if ids else {}
        out = []
        for c in found:
            state = self._state(c.id)
            if state.submitted is None:
                continue  # a row whose event was never appended: not a claim
            p = paid.get(c.id)
            out.append(ClaimView(c, state, sampled.get(c.id), p.export_id if p else None))
        return out

    def _read_scope(self, p: Principal, institution_id: int | None) -> int | None:
        if p.role is Role.operator:
            if institution_id is not None and institution_id != p.institution_id:
                raise Forbidden("this belongs to another institution", reason="other_institution")
            return p.institution_id
        require_role(p, *READ_ALL)
        return institution_id

    async def list_claims(
        self,
        p: Principal,
        institution_id: int | None = None,
        status: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[ClaimView]:
        institution_id = self._read_scope(p, institution_id)

        def load() -> list[ClaimView]:
            return self._views(self.store.list_claims(institution_id, start, end))

        found = await self.ctx.db(load)
        return [v for v in found if status is None or v.status == status]

    async def get(self, p: Principal, claim_id: int) -> ClaimDetail:
        detail = await self.ctx.db(self._detail, claim_id)
        self._read_scope(p, detail.view.claim.institution_id)
        return detail

    def _detail(self, claim_id: int) -> ClaimDetail:
        try:
            claim = self.store.get_claim(claim_id)
        except LookupError:
            raise UnknownId("unknown claim", reason="unknown_claim") from None
        views = self._views([claim])
        if not views:
            raise UnknownId("unknown claim", reason="unknown_claim")
        lines = tuple(self.store.lines(claim_id))
        view = views[0]
        payable = round(sum(x.amount for x in lines if x.learner_id not in view.state.rejected), 2)
        return ClaimDetail(view, lines, tuple(self.store.objections(claim_id)), payable)

    async def history(self, p: Principal, claim_id: int) -> tuple[list[LedgerEvent], bool]:
        """The claim's chain in order, and whether it verifies."""
        await self.get(p, claim_id)

        def load() -> tuple[list[LedgerEvent], bool]:
            from storage.canonical import verify_events

            stored = self.storage.ledger.read_chain(ce.claim_chain(claim_id))
            return stored, verify_events(stored) is None

        return await self.ctx.db(load)

    # -- submit ------------------------------------------------------------------------

    async def submit(
        self,
        p: Principal,
        institution_id: int,
        start: datetime,
        end: datetime,
        course_id: int | None = None,
    ) -> ClaimDetail:
        """The institution's claim for [start, end): its learners the scan finds
        eligible (in `course_id` only, if given), frozen with the chain heads they rest
        on. Only the institution's own operator submits."""
        require_role(p, Role.operator)
        if p.institution_id != institution_id:
            raise Forbidden("this belongs to another institution", reason="other_institution")
        if end <= start:
            raise InvalidInput("the period must end after it starts", reason="invalid_period")
        if end - start > MAX_PERIOD:
            raise InvalidInput("a claim covers at most a year", reason="invalid_period")
        if end > self.clock():
            # The lines are decided on the ledger at the period's end; claiming earlier
            # would freeze a month half-lived and block its late finishers (overlap).
            raise Conflict("the period has not ended yet", reason="period_not_ended")
        async with self.ctx.lock(f"claims:institution:{institution_id}"):
            claim_id = await self.ctx.db(
                self.submit_blocking, p.actor, institution_id, start, end, course_id
            )
        return await self.ctx.db(self._detail, claim_id)

    def submit_blocking(
        self,
        actor: str,
        institution_id: int,
        start: datetime,
        end: datetime,
        course_id: int | None = None,
    ) -> int:
        """What `submit` runs in a storage thread once the principal is checked (and
        what `bench/claims_bench.py` times): freeze, refuse overlaps, store, append."""
        lines = self.freeze(institution_id, start, end, course_id)
        courses = {x.course_id for x in lines}
        for other in self._views(self.store.list_claims(institution_id, start, end)):
            if other.status != "rejected" and courses & set(other.claim.courses):
                raise Conflict(
                    f"claim {other.claim.id} already covers part of this period for a "
                    "course of this claim",
                    reason="claim_overlaps",
                    claim_id=other.claim.id,
                )
        digest = rules.lines_sha256(lines)
        now = self.clock()
        claim = self.store.add_claim(institution_id, start, end, lines, digest, actor, now)
        self.storage.ledger.append(
            ce.claim_chain(claim.id),
            [
                codec.encode(
                    ce.ClaimSubmitted(
                        claim.id,
                        institution_id,
                        start,
                        end,
                        claim.learners,
                        claim.amount,
                        digest,
                        actor,
                        now,
                    )
                )
            ],
        )
        return claim.id

    def freeze(
        self, institution_id: int, start: datetime, end: datetime, course_id: int | None = None
    ) -> list[NewClaimLine]:
        """The lines a claim would freeze now (blocking): refuses a suspended or expelled
        institution and a period with nobody eligible."""
        try:
            self.storage.registry.get_institution(institution_id)
        except LookupError:
            raise UnknownId("unknown institution", reason="unknown_institution") from None
        courses = {c.id: c for c in self.storage.registry.list_courses(institution_id)}
        if course_id is not None and course_id not in courses:
            raise InvalidInput("not a course of this institution", reason="unknown_course")
        snap = scan(self.storage, self.ctx.settings, end, metrics=self.ctx.metrics)
        standing = snap.standings.get(institution_id)
        if standing is not None:
            during = {standing.status_at(start)} | {
                s for at, s in standing.changes if start <= at < end
            }
            for status in ("expelled", "suspended"):
                if status in during:
                    raise Conflict(
                        f"the institution was {status} in this period",
                        reason=f"institution_{status}",
                    )
        learners = {lr.id: lr for lr in self.storage.registry.list_learners(institution_id)}
        rows = claim_rows(snap, courses, learners, institution_id, start, end)
        refused = self.rejected_before(institution_id)
        lines: list[NewClaimLine] = []
        for r in rows:
            e = r.eligibility
            if not e.eligible or (course_id is not None and r.course_id != course_id):
                continue
            if (r.learner_id, r.course_id) in refused:
                continue  # rejected in an earlier claim: never claimed again
            chain_ids = [
                ev.learner_chain(r.learner_id),
                se.course_chain(r.course_id),
                se.institution_chain(institution_id),
                *(s.chain_id for s in e.sessions),
            ]
            heads = tuple(
                LineChain(c, *snap.heads[c]) for c in sorted(set(chain_ids)) if c in snap.heads
            )
            lines.append(
                NewClaimLine(r.learner_id, r.course_id, round(e.credited_hours, 6), e.amount, heads)
            )
        if not lines:
            raise Conflict("no learner is eligible in this period", reason="nothing_to_claim")
        lines.sort(key=lambda x: (x.course_id, x.learner_id))
        return lines

    def rejected_before(self, institution_id: int) -> set[tuple[int, int]]:
        """(learner, course) of the lines that a verification or an upheld objection took
        out of an earlier claim of the institution (blocking): a resubmission does not
        bring them back."""
        out: set[tuple[int, int]] = set()
        for claim in self.store.list_claims(institution_id, None, None):
            state = self._state(claim.id)
            out_learners = set(state.rejected)
            if state.rejected_by_objection:
                out_learners |= {x.learner_id for x in self.store.lines(claim.id)}
            if out_learners:
                out |= {
                    (x.learner_id, x.course_id)
                    for x in self.store.lines(claim.id)
                    if x.learner_id in out_learners
                }
        return out

    # -- sample ------------------------------------------------------------------------

    def risk(self, institution_ids: set[int]) -> dict[int, rules.InstitutionRisk]:
        """The risk now of each of these institutions (blocking): confirmed flags, the
        suspensions or expulsions in its chain, irregular spot-check verdicts, claims
        rejected in whole or in part."""
        confirmed: dict[int, int] = {}
        for f in self.storage.subsidy.find_flags(FlagStatus.confirmed):
            if f.institution_id is not None:
                confirmed[f.institution_id] = confirmed.get(f.institution_id, 0) + 1
        suspended: dict[int, int] = {}
        for i in sorted(institution_ids):
            stored = self.storage.ledger.read_chain(se.institution_chain(i))
            suspended[i] = sum(
                1
                for _, e in codec.decode_all(stored)
                if isinstance(e, se.InstitutionStatusChanged)
                and e.status in ("suspended", "expelled")
            )
        drawn: dict[str, int] = {}
        irregular: dict[int, int] = {}
        # As the inspectors' spot-check list reads them (`inspect.spot_checks`).
        kinds = [iev.SpotCheckDrawn.KIND, iev.SpotCheckVerdict.KIND]
        for _, e in codec.decode_all(self.storage.ledger.iter_events(kinds=kinds)):
            if isinstance(e, iev.SpotCheckDrawn):
                drawn[e.draw_id] = e.institution_id
            elif isinstance(e, iev.SpotCheckVerdict) and e.verdict == "irregular":
                inst = drawn.get(e.draw_id)
                if inst is not None:
                    irregular[inst] = irregular.get(inst, 0) + 1
        rejected: dict[int, int] = {}
        for i in sorted(institution_ids):
            for claim in self.store.list_claims(i, None, None):
                state = self._state(claim.id)
                if state.rejected or state.status == "rejected":
                    rejected[i] = rejected.get(i, 0) + 1
        return {
            i: rules.InstitutionRisk(
                confirmed.get(i, 0), suspended.get(i, 0), irregular.get(i, 0), rejected.get(i, 0)
            )
            for i in institution_ids
        }

    async def draw(
        self,
        p: Principal,
        start: datetime,
        end: datetime,
        base_rate: float | None,
        seed: str | None,
    ) -> DrawView:
        """Sample the submitted claims of [start, end) in no earlier draw, each at its
        institution's rate (`supervisor.rules.claims`); recorded in `claimdraw:<id>`."""
        require_decider(p)
        if end <= start:
            raise InvalidInput("the period must end after it starts", reason="invalid_period")
        base = self.ctx.settings.subsidy.claim_sample_rate if base_rate is None else base_rate
        if not 0.0 <= base <= 1.0:
            raise InvalidInput("the base rate is from 0 to 1", reason="bad_rate")
        if seed is not None and not (1 <= len(seed) <= 128):
            raise InvalidInput("a seed is 1..128 characters", reason="bad_seed")
        seed = seed or secrets.token_hex(16)
        async with self.ctx.lock("claims:draw"):
            return await self.ctx.db(self._draw, p.actor, start, end, base, seed)

    def _draw(self, actor: str, start: datetime, end: datetime, base: float, seed: str) -> DrawView:
        # A claim is in one draw's population at most (the store keeps it so): drawing
        # again until a claim is, or is not, sampled gains nothing.
        drawn = self.store.drawn()
        views = self._views(self.store.list_claims(None, start, end))
        population = [v.claim for v in views if v.status == "submitted" and v.claim.id not in drawn]
        if not population:
            raise Conflict("no claim of this period awaits a draw", reason="nothing_to_draw")
        risk = self.risk({c.institution_id for c in population})
        ids = tuple(c.id for c in population)
        rates = tuple(
            rules.claim_rate(base, risk.get(c.institution_id, rules.InstitutionRisk()))
            for c in population
        )
        sampled = rules.draw_claims(ids, rates, seed)
        now = self.clock()
        event = ce.ClaimSampleDrawn(
            uuid.uuid4().hex, start, end, seed, base, ids, rates, sampled, actor, now
        )
        self.storage.ledger.append(ce.claim_draw_chain(event.draw_id), [codec.encode(event)])
        self.store.add_draw(
            ClaimDraw(event.draw_id, start, end, seed, base, sampled, actor, now, ids)
        )
        return DrawView(event, rules.redraw(event))

    async def get_draw(self, p: Principal, draw_id: str) -> DrawView:
        require_decider(p)
        if not draw_id.isalnum() or len(draw_id) != 32:
            raise UnknownId("unknown draw", reason="unknown_draw")

        def load() -> DrawView:
            stored = self.storage.ledger.read_chain(ce.claim_draw_chain(draw_id))
            for _, e in codec.decode_all(stored):
                if isinstance(e, ce.ClaimSampleDrawn):
                    return DrawView(e, rules.redraw(e))
            raise UnknownId("unknown draw", reason="unknown_draw")

        return await self.ctx.db(load)

    # -- verify and decide -------------------------------------------------------------

    async def verify(
        self,
        p: Principal,
        claim_id: int,
        verdict: str,
        note: str,
        rejected_learners: Sequence[int],
    ) -> tuple[ClaimDetail, list[int]]:
        """Record the verdict on a sampled claim; the frozen chain heads are checked
        again and lines on a chain no longer intact are rejected (`chain_broken`).
        Returns the claim and the learners rejected for a broken chain."""
        require_decider(p)
        if verdict not in rules.VERDICTS:
            raise InvalidInput("the verdict is verified or irregular", reason="bad_claim_verdict")
        note = note.strip()
        if len(note) > MAX_STATEMENT:
            raise InvalidInput("the note is at most 2000 characters", reason="note_too_long")
        if verdict == "irregular" and not note:
            raise InvalidInput("an irregular verdict needs a note", reason="note_required")
        async with self.ctx.lock(ce.claim_chain(claim_id)):
            broken = await self.ctx.db(
                self._verify, p.actor, claim_id, verdict, note, list(rejected_learners)
            )
        return await self.ctx.db(self._detail, claim_id), broken

    def _verify(
        self, actor: str, claim_id: int, verdict: str, note: str, rejected: list[int]
    ) -> list[int]:
        detail = self._detail(claim_id)
        view = detail.view
        if view.sampled_by is None:
            raise Conflict("only a sampled claim is verified", reason="claim_not_sampled")
        if view.state.verified is not None:
            raise Conflict("the claim was verified already", reason="already_verified")
        if view.state.decided is not None:
            raise Conflict("the claim was decided already", reason="already_decided")
        learners = {x.learner_id for x in detail.lines}
        if any(lid not in learners for lid in rejected):
            raise InvalidInput("a rejected learner is not in the claim", reason="not_in_claim")
        broken = sorted(check_lines(self.storage, detail.lines, self.clock(), self.ctx.metrics))
        if broken:
            note = (note + "\n" if note else "") + "chain_broken: " + ", ".join(map(str, broken))
        self.storage.ledger.append(
            ce.claim_chain(claim_id),
            [
                codec.encode(
                    ce.ClaimVerified(
                        claim_id,
                        verdict,
                        note,
                        tuple(sorted(set(rejected) | set(broken))),
                        actor,
                        self.clock(),
                    )
                )
            ],
        )
        return broken

    async def decide(
        self, p: Principal, claim_id: int, status: str, note: str
    ) -> tuple[ClaimDetail, list[int]]:
        """Approve (the lines not rejected, on chains still intact) or reject. An approved
        claim goes on the public notice for `subsidy.notice_days` days at once."""
        require_bureau(p)
        if status not in rules.DECISIONS:
            raise InvalidInput("the decision is approved or rejected", reason="bad_decision")
        note = note.strip()
        if len(note) > MAX_STATEMENT:
            raise InvalidInput("the note is at most 2000 characters", reason="note_too_long")
        async with self.ctx.lock(ce.claim_chain(claim_id)):
            broken = await self.ctx.db(self._decide, p.actor, claim_id, status, note)
        return await self.ctx.db(self._detail, claim_id), broken

    def _decide(self, actor: str, claim_id: int, status: str, note: str) -> list[int]:
        detail = self._detail(claim_id)
        state = detail.view.state
        if state.decided is not None:
            raise Conflict("the claim was decided already", reason="already_decided")
        if status == "approved" and claim_id not in self.store.drawn([claim_id]):
            # Every claim goes through a draw before money: approving one that no draw
            # saw would let a resubmission skip sampling.
            raise Conflict(
                "a claim is approved only after a draw of its period has included it",
                reason="claim_not_drawn",
            )
        if status == "approved" and detail.view.sampled_by is not None and state.verified is None:
            raise Conflict(
                "a sampled claim is approved only after its verification",
                reason="claim_not_verified",
            )
        now = self.clock()
        broken: list[int] = []
        amount = 0.0
        if status == "approved":
            kept = [x for x in detail.lines if x.learner_id not in state.rejected]
            broken = sorted(check_lines(self.storage, kept, now, self.ctx.metrics))
            amount = round(sum(x.amount for x in kept if x.learner_id not in broken), 2)
            if amount <= 0:
                raise Conflict(
                    "no line of the claim is left to approve", reason="nothing_to_approve"
                )
        events: list[ev.Event] = [
            ce.ClaimDecided(
                claim_id, status, amount, note, actor, now, tuple(broken) if broken else None
            )
        ]
        if status == "approved":
            days = self.ctx.settings.subsidy.notice_days
            events.append(
                ce.ClaimNoticePublished(claim_id, now, now + timedelta(days=days), actor, now)
            )
        self.storage.ledger.append(ce.claim_chain(claim_id), [codec.encode(e) for e in events])
        if status == "approved":
            notice = events[-1]
            assert isinstance(notice, ce.ClaimNoticePublished)
            self.store.add_notice(ClaimNotice(claim_id, notice.notice_from, notice.notice_until))
        return broken

    # -- public notice and objections ---------------------------------------------------

    async def notices(self) -> list[Notice]:
        """Approved claims whose notice is running (public: names and ID numbers masked)."""
        return await self.ctx.db(self._notices, self.clock())

    def _notices(self, now: datetime) -> list[Notice]:
        ids = [n.claim_id for n in self.store.notices_open(now)]
        if not ids:
            return []
        institutions = {i.id: i for i in self.storage.registry.list_institutions()}
        courses: dict[int, Course] = {c.id: c for c in self.storage.registry.list_courses(None)}
        out = []
        for claim_id in ids:
            detail = self._detail(claim_id)
            state = detail.view.state
            if state.status != "approved" or state.notice is None:
                continue
            learners = {
                lr.id: lr
                for lr in self.storage.registry.list_learners(detail.view.claim.institution_id)
            }
            out.append(self._notice(detail, institutions, courses, learners))
        return out

    def _notice(
        self,
        detail: ClaimDetail,
        institutions: dict[int, Institution],
        courses: dict[int, Course],
        learners: dict[int, Learner],
    ) -> Notice:
        state = detail.view.state
        assert state.notice is not None
        claim = detail.view.claim
        lines = []
        for x in detail.lines:
            if x.learner_id in state.rejected:
                continue
            lr = learners.get(x.learner_id)
            course = courses.get(x.course_id)
            lines.append(
                NoticeLine(
                    x.learner_id,
                    mask_name(lr.full_name) if lr else "",
                    mask_id_number(lr.id_number) if lr else "",
                    x.course_id,
                    course.name if course else "",
                    x.credited_hours,
                    x.amount,
                )
            )
        inst = institutions.get(claim.institution_id)
        return Notice(
            claim,
            inst.name if inst else "",
            state.notice.notice_from,
            state.notice.notice_until,
            detail.payable,
            tuple(lines),
        )

    async def object(
        self, claim_id: int, learner_id: int | None, statement: str, received_by: str
    ) -> ClaimObjection:
        """An objection to a claim on notice (anyone, no sign-in); it blocks payment
        until the bureau decides it. The statement is kept; its SHA-256 is in the event."""
        text = statement.strip()
        if not text:
            raise InvalidInput("the statement is empty", reason="empty_statement")
        if len(text) > MAX_STATEMENT:
            raise InvalidInput(
                "the statement is at most 2000 characters", reason="statement_too_long"
            )
        async with self.ctx.lock(ce.claim_chain(claim_id)):
            return await self.ctx.db(self._object, claim_id, learner_id, text, received_by)

    def _object(
        self, claim_id: int, learner_id: int | None, text: str, received_by: str
    ) -> ClaimObjection:
        detail = self._detail(claim_id)
        state = detail.view.state
        now = self.clock()
        if state.notice is None or state.status != "approved":
            raise Conflict("the claim is not on public notice", reason="not_on_notice")
        if not state.notice.notice_from <= now < state.notice.notice_until:
            raise Conflict("the notice of this claim has closed", reason="notice_closed")
        if learner_id is not None and learner_id not in {
            x.learner_id for x in detail.lines if x.learner_id not in state.rejected
        }:
            raise InvalidInput("that learner is not on this claim", reason="not_in_claim")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        o = self.store.add_objection(claim_id, learner_id, text, digest, now, received_by)
        self.storage.ledger.append(
            ce.claim_chain(claim_id),
            [
                codec.encode(
                    ce.ClaimObjectionReceived(claim_id, o.id, learner_id, digest, received_by, now)
                )
            ],
        )
        return o

    async def decide_objection(
        self, p: Principal, claim_id: int, objection_id: int, upheld: bool, note: str
    ) -> ClaimDetail:
        """Upheld: the named learner's line (or, naming nobody, the whole claim) is
        rejected; dismissed: nothing changes. The bureau or an inspector decides."""
        require_decider(p)
        note = note.strip()
        if len(note) > MAX_STATEMENT:
            raise InvalidInput("the note is at most 2000 characters", reason="note_too_long")
        if upheld and not note:
            raise InvalidInput("upholding an objection needs a note", reason="uphold_needs_note")
        async with self.ctx.lock(ce.claim_chain(claim_id)):

            def run() -> None:
                state = self._detail(claim_id).view.state
                found = [o for o in state.objections if o.received.objection_id == objection_id]
                if not found:
                    raise UnknownId("no such objection on this claim", reason="unknown_objection")
                if not found[0].open:
                    raise Conflict("the objection was decided already", reason="already_decided")
                if state.paid is not None:
                    raise Conflict("the claim was paid already", reason="already_paid")
                withdrawn = None
                if upheld:
                    detail = self._detail(claim_id)
                    named = found[0].received.learner_id
                    withdrawn = round(
                        sum(
                            x.amount
                            for x in detail.lines
                            if x.learner_id not in state.rejected
                            and (named is None or x.learner_id == named)
                        ),
                        2,
                    )
                event = ce.ClaimObjectionDecided(
                    claim_id, objection_id, upheld, note, p.actor, self.clock(), withdrawn
                )
                self.storage.ledger.append(ce.claim_chain(claim_id), [codec.encode(event)])

            await self.ctx.db(run)
        return await self.ctx.db(self._detail, claim_id)

    # -- payment -----------------------------------------------------------------------

    def _payable_problem(self, detail: ClaimDetail, now: datetime) -> Conflict | None:
        state = detail.view.state
        if state.paid is not None or detail.view.paid_export is not None:
            return Conflict(f"claim {detail.view.claim.id} was paid already", reason="already_paid")
        if state.status != "approved" or state.notice is None:
            return Conflict(
                f"claim {detail.view.claim.id} is not approved", reason="claim_not_approved"
            )
        if now < state.notice.notice_until:
            return Conflict(
                f"the notice of claim {detail.view.claim.id} is still open", reason="notice_open"
            )
        if state.open_objections:
            return Conflict(
                f"an objection to claim {detail.view.claim.id} is open", reason="objection_open"
            )
        if detail.payable <= 0:
            return Conflict(
                f"nothing of claim {detail.view.claim.id} is left to pay", reason="nothing_to_pay"
            )
        return None

    async def export_payments(self, p: Principal, claim_ids: Sequence[int] | None) -> PaymentExport:
        """Pay approved claims whose notice has closed with no objection open: the named
        ones (all or none) or every such claim. `ClaimPaid` per claim."""
        require_bureau(p)
        async with self.ctx.lock("claims:payments"):
            return await self.ctx.db(self._export, p.actor, claim_ids)

    def _export(self, actor: str, claim_ids: Sequence[int] | None) -> PaymentExport:
        now = self.clock()
        if claim_ids is not None:
            if len(set(claim_ids)) != len(claim_ids):
                raise InvalidInput("a claim is listed twice", reason="duplicate_claim")
            details = [self._detail(c) for c in claim_ids]
            for d in details:
                problem = self._payable_problem(d, now)
                if problem is not None:
                    raise problem
        else:
            details = []
            for v in self._views(self.store.list_claims()):
                if v.status != "approved":
                    continue
                d = self._detail(v.claim.id)
                if self._payable_problem(d, now) is None:
                    details.append(d)
            if not details:
                raise Conflict("no claim is ready to pay", reason="nothing_to_pay")
        export_id = uuid.uuid4().hex
        try:
            export = self.store.add_payment_export(
                export_id, now, actor, [(d.view.claim.id, d.payable) for d in details]
            )
        except Duplicate:
            raise Conflict("a claim was paid already", reason="already_paid") from None
        for d in details:
            self.storage.ledger.append(
                ce.claim_chain(d.view.claim.id),
                [codec.encode(ce.ClaimPaid(d.view.claim.id, export_id, d.payable, actor, now))],
            )
        return export

    async def payment_rows(
        self, p: Principal, export_id: str
    ) -> tuple[PaymentExport, list[PaymentRow]]:
        """The lines of a payment export (bureau only): full names, ID numbers masked."""
        require_bureau(p)
        if not export_id.isalnum() or len(export_id) != 32:
            raise UnknownId("unknown payment export", reason="unknown_export")

        def load() -> tuple[PaymentExport, list[PaymentRow]]:
            try:
                export, paid = self.store.payment_export(export_id)
            except LookupError:
                raise UnknownId("unknown payment export", reason="unknown_export") from None
            institutions = {i.id: i for i in self.storage.registry.list_institutions()}
            courses = {c.id: c for c in self.storage.registry.list_courses(None)}
            rows: list[PaymentRow] = []
            for pay in paid:
                detail = self._detail(pay.claim_id)
                claim = detail.view.claim
                learners = {
                    lr.id: lr for lr in self.storage.registry.list_learners(claim.institution_id)
                }
                inst = institutions.get(claim.institution_id)
                for x in detail.lines:
                    if x.learner_id in detail.view.state.rejected:
                        continue
                    lr = learners.get(x.learner_id)
                    course = courses.get(x.course_id)
                    rows.append(
                        PaymentRow(
                            export_id,
                            claim.id,
                            claim.institution_id,
                            inst.name if inst else "",
                            claim.period_start,
                            claim.period_end,
                            x.course_id,
                            course.name if course else "",
                            x.learner_id,
                            lr.full_name if lr else "",
                            mask_id_number(lr.id_number) if lr else "",
                            x.credited_hours,
                            x.amount,
                        )
                    )
            return export, rows

        return await self.ctx.db(load)

    async def payment_exports(self, p: Principal) -> list[PaymentExport]:
        require_bureau(p)
        return await self.ctx.db(self.store.payment_exports)

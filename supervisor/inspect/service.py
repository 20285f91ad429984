"""The inspector's workspace: search, replay, spot checks, seals and evidence packs.

Inspectors (and admins) read across institutions; operators only their own
institution; learners not at all. Every read of personal data through the
workspace is written to the access log (who, which learner/session/class, when)
before the data is returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from storage import Storage
from storage.exceptions import EvidencePurged, IntegrityViolation, NotFound
from storage.types import (
    ChainHead,
    Course,
    Institution,
    Learner,
    LedgerEvent,
    Role,
    Seal,
    StudySession,
    TrainingClass,
    VerifyReport,
)
from supervisor.auth import Principal, can_read_institution, require_role
from supervisor.context import Context
from supervisor.errors import InvalidInput, UnknownId
from supervisor.inspect import seals as sl
from supervisor.inspect.packs import PackFrame, build_pack, evidence_hashes
from supervisor.ledger import classroom as cev
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import inspection as iev
from supervisor.registry.identity import mask_id_number
from supervisor.rules.crediting import Credit, Interval, credit
from supervisor.runtime.tasks import cancel_and_wait

MAX_RESULTS = 200
log = logging.getLogger(__name__)


# -- pure parts -------------------------------------------------------------------


def draw_sample(population: Sequence[str], seed: str, size: int) -> list[str]:
    """The spot-check sample: same population (any order), seed and size -> same draw."""
    ordered = sorted(population)
    rng = random.Random(hashlib.sha256(seed.encode("utf-8")).digest())
    return sorted(rng.sample(ordered, min(size, len(ordered))))


def population_digest(population: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(population)).encode("utf-8")).hexdigest()


def learner_matches(learner: Learner, query: str) -> bool:
    """Name substring, or a masked/partial ID (first and last four characters)."""
    q = query.strip().lower()
    if not q:
        return True
    if q in learner.full_name.lower():
        return True
    masked = mask_id_number(learner.id_number).lower()
    if "*" in q:
        return q == masked
    # A partial ID matches only the characters a masked ID shows.
    return len(q) >= 4 and (masked.startswith(q) or masked.endswith(q))


@dataclass(frozen=True, slots=True)
class SealCheck:
    """A chain against the latest seal."""

    state: str  # sealed_ok | sealed_mismatch | not_sealed | no_seal | bad_signature
    seal_id: int | None
    sealed_at: datetime | None
    sealed_seq: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Integrity:
    chain: VerifyReport
    seal: SealCheck

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.seal.state in ("sealed_ok", "not_sealed", "no_seal")


@dataclass(frozen=True, slots=True)
class ReplayCheck:
    seq: int
    at: datetime
    kind: str  # check | missed | deferred | roll_call
    verdict: str
    passed: bool | None
    distance: float | None
    threshold: float | None
    issues: tuple[str, ...]
    evidence_sha256: str | None
    evidence_status: str  # retained | purged | missing | none
    detail: str


@dataclass(frozen=True, slots=True)
class ReplayItem:
    seq: int
    at: datetime | None
    kind: str
    text: str


@dataclass
class Replay:
    kind: str  # session | class
    title: str
    institution: Institution
    course: Course
    learner: Learner | None
    start: datetime
    end: datetime
    credit: Credit | None
    checks: list[ReplayCheck]
    items: list[ReplayItem]
    integrity: Integrity
    session: StudySession | None = None
    training_class: TrainingClass | None = None
    chains: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchRow:
    kind: str  # session | class
    id: str
    institution: str
    course: str
    learner_name: str
    learner_masked_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    credited_seconds: float | None
    flags: int


@dataclass(frozen=True, slots=True)
class SearchQuery:
    learner: str = ""
    institution_id: int | None = None
    course_id: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    outcome: str = ""
    flagged: str = ""  # "" | any | open
    kind: str = ""  # "" | session | class


@dataclass(frozen=True, slots=True)
class Draw:
    event: iev.SpotCheckDrawn
    verdicts: dict[str, iev.SpotCheckVerdict]
    reproduced: bool


# -- the service ----------------------------------------------------------------------


class InspectionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._trees: dict[int, sl.MerkleTree] = {}

    @property
    def storage(self) -> Storage:
        return self.ctx.storage

    # -- access control and the access log --------------------------------------

    @staticmethod
    def require_workspace(p: Principal) -> None:
        require_role(p, Role.admin, Role.inspector, Role.operator)

    async def log(
        self,
        p: Principal,
        action: str,
        *,
        institution_id: int | None = None,
        learner_id: int | None = None,
        session_id: str | None = None,
        class_id: int | None = None,
        detail: str = "",
    ) -> None:
        await self.ctx.db(
            self.storage.access_log.record,
            self.ctx.clock(),
            p.actor + (f" ({p.label})" if p.label else ""),
            p.role.value,
            action,
            institution_id=institution_id,
            learner_id=learner_id,
            session_id=session_id,
            class_id=class_id,
            detail=detail,
        )

    # -- search -----------------------------------------------------------------------

    async def search(self, p: Principal, q: SearchQuery) -> list[SearchRow]:
        self.require_workspace(p)
        if p.role is Role.operator:
            if q.institution_id is not None:
                can_read_institution(p, q.institution_id)
            q = dataclasses.replace(q, institution_id=p.institution_id)
        rows = await self.ctx.db(self._search, q)
        await self.log(
            p,
            "search",
            institution_id=q.institution_id,
            detail=f"learner={q.learner!r} results={len(rows)}",
        )
        return rows

    def _search(self, q: SearchQuery) -> list[SearchRow]:
        reg = self.storage.registry
        institutions = {i.id: i for i in reg.list_institutions()}
        courses = {c.id: c for c in reg.list_courses(q.institution_id)}
        learners = {lr.id: lr for lr in reg.list_learners(q.institution_id)}
        matching = {i for i, lr in learners.items() if learner_matches(lr, q.learner)}
        flags = reg.list_flags(None, q.institution_id)
        flag_count: dict[int, int] = {}
        for f in flags:
            if f.learner_id is not None and (q.flagged != "open" or f.status.value == "open"):
                flag_count[f.learner_id] = flag_count.get(f.learner_id, 0) + 1
        out: list[SearchRow] = []
        gap = timedelta(seconds=self.ctx.settings.policy.max_credited_gap_s)

        def in_range(at: datetime) -> bool:
            return (q.date_from is None or at >= q.date_from) and (
                q.date_to is None or at < q.date_to
            )

        if q.kind in ("", "session"):
            for s in reversed(reg.list_sessions(q.institution_id)):
                if len(out) >= MAX_RESULTS:
                    break
                if s.learner_id not in matching or not in_range(s.started_at):
                    continue
                if q.course_id is not None and s.course_id != q.course_id:
                    continue
                if q.flagged and not flag_count.get(s.learner_id):
                    continue
                chain = codec.decode_all(self.storage.ledger.read_chain(s.chain_id))
                outcome = "open"
                for _, e in chain:
                    if isinstance(e, ev.SessionEnded):
                        outcome = e.reason
                if q.outcome and q.outcome != outcome:
                    continue
                lr = learners[s.learner_id]
                c = credit([e for _, e in chain], gap)
                out.append(
                    SearchRow(
                        "session",
                        s.id,
                        institutions[s.institution_id].name,
                        courses[s.course_id].name if s.course_id in courses else "",
                        lr.full_name,
                        mask_id_number(lr.id_number),
                        s.started_at,
                        s.ended_at,
                        outcome,
                        c.credited_seconds,
                        flag_count.get(s.learner_id, 0),
                    )
                )
        if q.kind in ("", "class") and not q.outcome:
            for tc in self.storage.classroom.list_classes(q.institution_id, q.course_id):
                if len(out) >= MAX_RESULTS or not in_range(tc.starts_at):
                    continue
                roster = [r.learner_id for r in self.storage.classroom.roster(tc.id)]
                if q.learner.strip() and not any(r in matching for r in roster):
                    continue
                n_flags = sum(flag_count.get(r, 0) for r in roster)
                if q.flagged and not n_flags:
                    continue
                out.append(
                    SearchRow(
                        "class",
                        str(tc.id),
                        institutions[tc.institution_id].name,
                        courses[tc.course_id].name if tc.course_id in courses else "",
                        tc.name,
                        f"{len(roster)} learners",
                        tc.starts_at,
                        tc.ends_at,
                        tc.mode.value,
                        None,
                        n_flags,
                    )
                )
        return out

    # -- replay -------------------------------------------------------------------

    async def session(self, p: Principal, session_id: str) -> StudySession:
        self.require_workspace(p)
        session = await self.ctx.db(self.storage.registry.get_session, session_id)
        can_read_institution(p, session.institution_id)
        return session

    async def replay_session(self, p: Principal, session_id: str) -> Replay:
        session = await self.session(p, session_id)
        await self.log(
            p,
            "replay_session",
            institution_id=session.institution_id,
            learner_id=session.learner_id,
            session_id=session.id,
        )
        return await self.ctx.db(self._replay_session, session)

    def _replay_session(self, s: StudySession) -> Replay:
        reg = self.storage.registry
        stored = self.storage.ledger.read_chain(s.chain_id)
        decoded = codec.decode_all(stored)
        gap = timedelta(seconds=self.ctx.settings.policy.max_credited_gap_s)
        c = credit([e for _, e in decoded], gap)
        checks: list[ReplayCheck] = []
        items: list[ReplayItem] = []
        status = self._evidence_status(
            {x for st, _ in decoded for x in evidence_hashes(st.payload)}
        )
        for st, e in decoded:
            if isinstance(e, ev.CheckRecorded):
                sha = e.evidence_sha256
                detail = f"{e.check_kind}/{e.purpose}, {e.faces} face(s), {e.frames} frame(s)"
                if e.liveness:
                    detail += f", liveness {e.liveness.verdict}"
                if e.challenge:
                    detail += f", challenge {e.challenge.kind}: {e.challenge.outcome}"
                if e.suspicion:
                    detail += ", suspicion: " + ", ".join(e.suspicion)
                checks.append(
                    ReplayCheck(
                        st.seq,
                        e.at,
                        "check",
                        e.verdict,
                        e.passed,
                        e.distance,
                        e.threshold,
                        e.issues,
                        sha,
                        status.get(sha, "none") if sha else "none",
                        detail,
                    )
                )
                if e.scheduled_at is not None:
                    items.append(
                        ReplayItem(st.seq, e.scheduled_at, "prompt", f"check asked ({e.purpose})")
                    )
                if e.challenge:
                    items.append(
                        ReplayItem(
                            st.seq,
                            e.at,
                            "prompt",
                            f"challenge {e.challenge.kind} asked: {e.challenge.outcome}",
                        )
                    )
            elif isinstance(e, ev.CheckMissed):
                checks.append(
                    ReplayCheck(
                        st.seq,
                        e.at,
                        "missed",
                        "missed",
                        False,
                        None,
                        None,
                        (),
                        None,
                        "none",
                        e.reason,
                    )
                )
                items.append(ReplayItem(st.seq, e.scheduled_at, "prompt", "check asked (missed)"))
            elif isinstance(e, ev.CheckDeferred):
                checks.append(
                    ReplayCheck(
                        st.seq,
                        e.at,
                        "deferred",
                        "deferred",
                        None,
                        None,
                        None,
                        (),
                        None,
                        "none",
                        e.reason,
                    )
                )
            elif isinstance(e, ev.StateChanged):
                items.append(
                    ReplayItem(st.seq, e.at, "state", f"{e.from_state} → {e.to_state} ({e.reason})")
                )
            elif isinstance(e, ev.SessionStarted):
                items.append(ReplayItem(st.seq, e.at, "start", f"session started ({e.mode})"))
            elif isinstance(e, ev.SessionEnded):
                items.append(ReplayItem(st.seq, e.at, "end", f"session ended ({e.reason})"))
        for st in stored:
            if codec.decode(st) is None:
                items.append(ReplayItem(st.seq, None, "other", st.kind))
        items.sort(key=lambda i: (i.at is None, i.at or s.started_at, i.seq))
        times = [x.at for x in checks] + [i.at for i in items if i.at is not None]
        start = min([s.started_at, *times])
        end = max([s.ended_at or s.started_at, *times])
        learner = reg.get_learner(s.learner_id)
        return Replay(
            "session",
            f"Session {s.id}",
            reg.get_institution(s.institution_id),
            reg.get_course(s.course_id),
            learner,
            start,
            end,
            c,
            checks,
            items,
            self._integrity([s.chain_id]),
            session=s,
            chains=[s.chain_id],
        )

    async def training_class(self, p: Principal, class_id: int) -> TrainingClass:
        self.require_workspace(p)
        tc = await self.ctx.db(self.storage.classroom.get_class, class_id)
        can_read_institution(p, tc.institution_id)
        return tc

    async def replay_class(self, p: Principal, class_id: int) -> Replay:
        tc = await self.training_class(p, class_id)
        await self.log(p, "replay_class", institution_id=tc.institution_id, class_id=tc.id)
        return await self.ctx.db(self._replay_class, tc)

    def class_chains(self, tc: TrainingClass) -> list[str]:
        roster = [r.learner_id for r in self.storage.classroom.roster(tc.id)]
        chains = [cev.class_chain(tc.id)]
        chains += [cev.learner_class_chain(tc.id, lid) for lid in roster]
        return chains

    def _replay_class(self, tc: TrainingClass) -> Replay:
        reg = self.storage.registry
        chain_id = cev.class_chain(tc.id)
        decoded = codec.decode_all(self.storage.ledger.read_chain(chain_id))
        status = self._evidence_status(
            {x for st, _ in decoded for x in evidence_hashes(st.payload)}
        )
        checks: list[ReplayCheck] = []
        items: list[ReplayItem] = []
        runs: list[tuple[datetime, datetime | None]] = []
        for st, e in decoded:
            if isinstance(e, cev.ClassRollCall):
                sha = next((h for h in e.frames_evidence if h), None)
                checks.append(
                    ReplayCheck(
                        st.seq,
                        e.at,
                        "roll_call",
                        e.outcome,
                        e.outcome == "done" and not e.absent,
                        None,
                        None,
                        (),
                        sha,
                        status.get(sha, "none") if sha else "none",
                        f"{e.purpose}: {len(e.present)} present, {len(e.absent)} absent, "
                        f"{len(e.unseen)} unseen, {e.unknown_faces} unknown face(s), "
                        f"cameras down {list(e.cameras_down)}",
                    )
                )
            elif isinstance(e, cev.ClassSupervisionStarted):
                runs.append((e.at, None))
                items.append(ReplayItem(st.seq, e.at, "start", f"supervision run {e.run_id}"))
            elif isinstance(e, cev.ClassSupervisionStopped | cev.ClassSupervisionInterrupted):
                if runs and runs[-1][1] is None:
                    runs[-1] = (runs[-1][0], e.at)
                items.append(ReplayItem(st.seq, e.at, "end", f"{e.KIND}: {e.reason}"))
            elif isinstance(e, cev.CameraStatusChanged):
                items.append(ReplayItem(st.seq, e.at, "state", f"camera {e.camera_id}: {e.state}"))
            elif isinstance(e, cev.ClassFiled):
                items.append(ReplayItem(st.seq, e.at, "prompt", f"filed by {e.filed_by}"))
            elif isinstance(e, cev.ClassFlagRaised):
                items.append(ReplayItem(st.seq, e.at, "state", f"flag {e.flag_kind} raised"))
        intervals = tuple(Interval(a, b) for a, b in runs if b is not None)
        supervised = Credit(
            round(sum((b - a).total_seconds() for a, b in runs if b is not None), 6),
            intervals,
            sum(1 for c in checks if c.passed),
            sum(1 for c in checks if c.passed is False),
            0,
            None,
            None,
        )
        times = [x.at for x in checks] + [i.at for i in items if i.at is not None]
        return Replay(
            "class",
            f"Class {tc.name}",
            reg.get_institution(tc.institution_id),
            reg.get_course(tc.course_id),
            None,
            min([tc.starts_at, *times]),
            max([tc.ends_at, *times]),
            supervised,
            checks,
            sorted(items, key=lambda i: (i.at or tc.starts_at, i.seq)),
            self._integrity(self.class_chains(tc)),
            training_class=tc,
            chains=self.class_chains(tc),
        )

    def _evidence_status(self, hashes: set[str]) -> dict[str, str]:
        records = self.storage.evidence.records(hashes)
        return {
            sha: (
                "missing"
                if sha not in records
                else ("purged" if records[sha].purged_at is not None else "retained")
            )
            for sha in hashes
        }

    # -- integrity ---------------------------------------------------------------

    def _integrity(self, chain_ids: Sequence[str]) -> Integrity:
        report = self.storage.ledger.verify(list(chain_ids))
        return Integrity(report, self._seal_check(chain_ids, report))

    def sealed_tree(self, seal: Seal) -> sl.MerkleTree:
        """The Merkle tree of a seal, built once per process (seals never change)."""
        tree = self._trees.get(seal.id)
        if tree is None:
            tree = sl.MerkleTree(sl.sorted_heads(self.storage.seals.leaves(seal.id)))
            self._trees = {seal.id: tree}  # keep only the newest one asked for
        return tree

    def _seal_check(self, chain_ids: Sequence[str], report: VerifyReport) -> SealCheck:
        seal = self.storage.seals.latest()
        if seal is None:
            return SealCheck("no_seal", None, None, None, "no seal has been made yet")
        if not sl.signature_valid(seal.public_key, seal.statement, seal.signature):
            return SealCheck(
                "bad_signature",
                seal.id,
                seal.sealed_at,
                None,
                f"seal {seal.id}: its signature is wrong",
            )
        tree = self.sealed_tree(seal)
        covered = [c for c in chain_ids if c in tree.heads]
        if not covered:
            return SealCheck(
                "not_sealed",
                seal.id,
                seal.sealed_at,
                None,
                f"newer than the latest seal ({seal.id})",
            )
        root = str(sl.statement_fields(seal.statement)["root"])
        problems = []
        for chain_id in covered:
            h = tree.heads[chain_id]
            proof = tree.proof(chain_id) or []
            if sl.root_from_proof(chain_id, h.seq, h.hash, proof) != root:
                problems.append(f"{chain_id}: leaf not in the signed root")
                continue
            at = self.storage.ledger.read_chain(chain_id, after_seq=h.seq - 1, limit=1)
            if not at or at[0].seq != h.seq or at[0].hash != h.hash:
                problems.append(f"{chain_id}: sealed event seq {h.seq} missing or altered")
                continue
            broken = [b for b in report.breaks if b.chain_id == chain_id and b.seq <= h.seq]
            if broken:
                problems.append(
                    f"{chain_id}: events up to the sealed seq {h.seq} do not recompute "
                    f"(first bad: seq {broken[0].seq})"
                )
        if problems:
            return SealCheck("sealed_mismatch", seal.id, seal.sealed_at, None, "; ".join(problems))
        return SealCheck(
            "sealed_ok",
            seal.id,
            seal.sealed_at,
            tree.heads[covered[0]].seq,
            f"{len(covered)} chain(s) match seal {seal.id}",
        )

    async def check_frames(self, p: Principal, chain_ids: Sequence[str]) -> dict[str, str]:
        """Hash every retained frame of the chains: sha -> ok | altered | purged | missing."""
        return await self.ctx.db(self._check_frames, chain_ids)

    def _check_frames(self, chain_ids: Sequence[str]) -> dict[str, str]:
        hashes: set[str] = set()
        for chain_id in chain_ids:
            for st in self.storage.ledger.read_chain(chain_id):
                hashes |= evidence_hashes(st.payload)
        out: dict[str, str] = {}
        for sha in sorted(hashes):
            try:
                self.storage.evidence.get(sha)
                out[sha] = "ok"
            except EvidencePurged:
                out[sha] = "purged"
            except IntegrityViolation as exc:
                out[sha] = "altered" if "damaged" in str(exc) else "missing"
            except NotFound:
                out[sha] = "missing"
        return out

    # -- frames --------------------------------------------------------------------

    async def frame(self, p: Principal, chain_ids: Sequence[str], sha256: str) -> bytes:
        """A frame that the given chains refer to (the caller checked their scope)."""

        def find() -> bytes:
            for chain_id in chain_ids:
                for st in self.storage.ledger.read_chain(chain_id):
                    if sha256 in st.payload and sha256 in evidence_hashes(st.payload):
                        return self.storage.evidence.get(sha256)
            raise UnknownId("no event of this record refers to that frame")

        return await self.ctx.db(find)

    # -- spot checks ------------------------------------------------------------

    async def draw(
        self,
        p: Principal,
        institution_id: int,
        period_start: datetime,
        period_end: datetime,
        size: int,
        seed: str | None,
    ) -> iev.SpotCheckDrawn:
        require_role(p, Role.admin, Role.inspector)
        if period_end <= period_start:
            raise InvalidInput("the period must end after it starts", reason="bad_period")
        limit = self.ctx.settings.inspection.spot_check_max_sample
        if not 1 <= size <= limit:
            raise InvalidInput(f"the sample size must be 1..{limit}", reason="bad_sample_size")
        if seed is not None and not (1 <= len(seed) <= 128):
            raise InvalidInput("a seed is 1..128 characters", reason="bad_seed")
        await self.ctx.db(self.storage.registry.get_institution, institution_id)
        seed = seed or secrets.token_hex(16)
        population = await self.ctx.db(self._population, institution_id, period_start, period_end)
        drawn = iev.SpotCheckDrawn(
            draw_id=uuid.uuid4().hex,
            institution_id=institution_id,
            period_start=period_start,
            period_end=period_end,
            seed=seed,
            sample_size=size,
            population=len(population),
            population_sha256=population_digest(population),
            sessions=tuple(draw_sample(population, seed, size)),
            drawn_by=p.actor,
            at=self.ctx.clock(),
        )
        await self.ctx.append(iev.spot_check_chain(drawn.draw_id), [codec.encode(drawn)])
        await self.log(p, "spot_check_draw", institution_id=institution_id, detail=drawn.draw_id)
        return drawn

    def _population(self, institution_id: int, start: datetime, end: datetime) -> list[str]:
        return sorted(
            s.id
            for s in self.storage.registry.list_sessions(institution_id)
            if start <= s.started_at < end
        )

    async def draws(self, p: Principal) -> list[Draw]:
        require_role(p, Role.admin, Role.inspector)

        def load() -> list[Draw]:
            chains: dict[str, list[LedgerEvent]] = {}
            it = self.storage.ledger.iter_events(
                kinds=[iev.SpotCheckDrawn.KIND, iev.SpotCheckVerdict.KIND]
            )
            for st in it:
                chains.setdefault(st.chain_id, []).append(st)
            out = [self._draw_of(events) for events in chains.values()]
            return sorted(out, key=lambda d: d.event.at, reverse=True)

        return await self.ctx.db(load)

    def _draw_of(self, stored: Sequence[LedgerEvent]) -> Draw:
        drawn: iev.SpotCheckDrawn | None = None
        verdicts: dict[str, iev.SpotCheckVerdict] = {}
        for _, e in codec.decode_all(stored):
            if isinstance(e, iev.SpotCheckDrawn):
                drawn = e
            elif isinstance(e, iev.SpotCheckVerdict):
                verdicts[e.session_id] = e
        if drawn is None:
            raise UnknownId("not a spot-check draw")
        population = self._population(drawn.institution_id, drawn.period_start, drawn.period_end)
        reproduced = (
            population_digest(population) == drawn.population_sha256
            and tuple(draw_sample(population, drawn.seed, drawn.sample_size)) == drawn.sessions
        )
        return Draw(drawn, verdicts, reproduced)

    async def get_draw(self, p: Principal, draw_id: str) -> Draw:
        require_role(p, Role.admin, Role.inspector)
        if not draw_id.isalnum() or len(draw_id) != 32:
            raise UnknownId("unknown draw")

        def load() -> Draw:
            stored = self.storage.ledger.read_chain(iev.spot_check_chain(draw_id))
            if not stored:
                raise UnknownId("unknown draw")
            return self._draw_of(stored)

        return await self.ctx.db(load)

    async def record_verdict(
        self, p: Principal, draw_id: str, session_id: str, verdict: str, note: str
    ) -> iev.SpotCheckVerdict:
        require_role(p, Role.admin, Role.inspector)
        if verdict not in iev.VERDICTS:
            raise InvalidInput("the verdict is regular or irregular", reason="bad_verdict")
        note = note.strip()
        if len(note) > 2000:
            raise InvalidInput("the note is at most 2000 characters", reason="note_too_long")
        if verdict == "irregular" and not note:
            raise InvalidInput("an irregular verdict needs a note", reason="note_required")
        draw = await self.get_draw(p, draw_id)
        if session_id not in draw.event.sessions:
            raise InvalidInput("that session is not in this draw", reason="not_in_draw")
        event = iev.SpotCheckVerdict(
            draw_id=draw_id,
            session_id=session_id,
            verdict=verdict,
            note=note,
            decided_by=p.actor,
            at=self.ctx.clock(),
        )
        await self.ctx.append(iev.spot_check_chain(draw_id), [codec.encode(event)])
        return event

    # -- seals and evidence packs -----------------------------------------------------

    async def pack(self, p: Principal, subject: str, ident: str) -> tuple[str, bytes]:
        """An evidence pack of a session, a class or a learner; (file name, zip bytes)."""
        self.require_workspace(p)
        if subject == "session":
            s = await self.session(p, ident)
            chains = [s.chain_id]
            await self.log(
                p,
                "evidence_pack",
                institution_id=s.institution_id,
                learner_id=s.learner_id,
                session_id=s.id,
            )
            info = {"kind": "session", "session_id": s.id, "learner_id": s.learner_id}
        elif subject == "class":
            if not ident.isdigit():
                raise UnknownId("unknown class")
            tc = await self.training_class(p, int(ident))
            chains = await self.ctx.db(self.class_chains, tc)
            await self.log(p, "evidence_pack", institution_id=tc.institution_id, class_id=tc.id)
            info = {"kind": "class", "class_id": tc.id}
        elif subject == "learner":
            if not ident.isdigit():
                raise UnknownId("unknown learner")
            lr = await self.ctx.db(self.storage.registry.get_learner, int(ident))
            self.require_workspace(p)
            can_read_institution(p, lr.institution_id)
            sessions = await self.ctx.db(self.storage.registry.list_sessions, None, lr.id, False)
            classes = await self.ctx.db(self._learner_classes, lr)
            chains = [ev.learner_chain(lr.id)] + [s.chain_id for s in sessions]
            chains += [cev.learner_class_chain(c, lr.id) for c in classes]
            await self.log(p, "evidence_pack", institution_id=lr.institution_id, learner_id=lr.id)
            info = {"kind": "learner", "learner_id": lr.id}
        else:
            raise UnknownId("a pack is of a session, a class or a learner")
        data = await self.ctx.db(self._pack, info, chains)
        return f"evidence-{subject}-{ident}.zip", data

    def _learner_classes(self, learner: Learner) -> list[int]:
        """The classes whose roster holds the learner."""
        return [
            tc.id
            for tc in self.storage.classroom.list_classes(learner.institution_id)
            if any(r.learner_id == learner.id for r in self.storage.classroom.roster(tc.id))
        ]

    def _pack(self, info: dict[str, object], chain_ids: Sequence[str]) -> bytes:
        chains = [(c, self.storage.ledger.read_chain(c)) for c in chain_ids]
        chains = [(c, evs) for c, evs in chains if evs]
        hashes: set[str] = set()
        for _, evs in chains:
            for st in evs:
                hashes |= evidence_hashes(st.payload)
        frames = []
        for sha in sorted(hashes):
            try:
                rec = self.storage.evidence.record(sha)
                frames.append(
                    PackFrame(sha, "retained", rec.content_type, self.storage.evidence.get(sha))
                )
            except EvidencePurged:
                frames.append(PackFrame(sha, "purged"))
            except (NotFound, IntegrityViolation):
                # Shipped as missing: the verifier then names it, as it must.
                frames.append(PackFrame(sha, "missing"))
        seal = self.storage.seals.latest()
        proofs: dict[str, tuple[ChainHead, list[sl.ProofStep]]] = {}
        if seal is not None:
            tree = self.sealed_tree(seal)
            for chain_id, _ in chains:
                proof = tree.proof(chain_id)
                if proof is not None:
                    proofs[chain_id] = (tree.heads[chain_id], proof)
        key = sl.private_key(self.ctx.settings.security.seal_key.get_secret_value())
        return build_pack(info, chains, frames, seal, proofs, key, self.ctx.clock())


def make_seal(
    storage: Storage, seal_key_b64: str, at: datetime, *, only_if_changed: bool = False
) -> Seal | None:
    """Seal the heads of all chains now (blocking; run in a thread). With
    `only_if_changed`, returns None instead when nothing was appended since the last seal."""
    key = sl.private_key(seal_key_b64)
    heads: list[ChainHead] = sl.sorted_heads(storage.ledger.heads())
    root = sl.merkle_root(heads)
    if only_if_changed:
        last = storage.seals.latest()
        if last is not None and last.root == root:
            return None
    text = sl.statement(len(heads), root, at)
    return storage.seals.add(
        at, root, text, sl.sign(key, text), sl.public_key_hex(key), heads, len(heads)
    )


def verify_chain_against_seal(storage: Storage, chain_id: str, seal: Seal) -> str | None:
    """None when the chain holds its sealed head and the proof leads to the signed root;
    otherwise what is wrong."""
    if not sl.signature_valid(seal.public_key, seal.statement, seal.signature):
        return f"seal {seal.id}: signature is wrong"
    tree = sl.MerkleTree(sl.sorted_heads(storage.seals.leaves(seal.id)))
    leaf = tree.heads.get(chain_id)
    proof = tree.proof(chain_id)
    if leaf is None or proof is None:
        return f"chain {chain_id} is not covered by seal {seal.id}"
    root = str(sl.statement_fields(seal.statement)["root"])
    if sl.root_from_proof(chain_id, leaf.seq, leaf.hash, proof) != root:
        return f"chain {chain_id}: leaf does not lead to the signed root"
    at = storage.ledger.read_chain(chain_id, after_seq=leaf.seq - 1, limit=1)
    if not at or at[0].seq != leaf.seq or at[0].hash != leaf.hash:
        return f"chain {chain_id}: sealed event seq {leaf.seq} is missing or altered"
    report = storage.ledger.verify([chain_id])
    if not report.ok:
        b = report.breaks[0]
        return f"chain {chain_id}: event seq {b.seq} broken ({b.reason})"
    return None


class PeriodicSealer:
    """Seals all chain heads every `inspection.seal_interval_s` (0: never), in a thread.

    At start it also builds the Merkle tree of the latest seal in the background, so
    the first replay page does not pay for it (100,000 chains: about half a second).
    """

    def __init__(self, inspect: InspectionService) -> None:
        self.inspect = inspect
        self.ctx = inspect.ctx
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="periodic-sealer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _warm(self, seal: Seal | None) -> None:
        if seal is not None:
            await self.ctx.db(self.inspect.sealed_tree, seal)

    async def _run(self) -> None:
        try:
            await self._warm(await self.ctx.db(self.ctx.storage.seals.latest))
        except Exception:  # only a cache; the page builds it when asked
            log.exception("could not prepare the latest seal's tree")
        interval = self.ctx.settings.inspection.seal_interval_s
        if interval <= 0:
            return
        key = self.ctx.settings.security.seal_key.get_secret_value()
        while True:
            await asyncio.sleep(interval)
            try:
                seal = await self.ctx.db(
                    make_seal, self.ctx.storage, key, self.ctx.clock(), only_if_changed=True
                )
                if seal is not None:
                    log.info("sealed %d chains: root %s (seal %d)", seal.chains, seal.root, seal.id)
                    await self._warm(seal)
            except Exception:  # keep sealing later; a failed seal changes nothing
                log.exception("periodic seal failed")

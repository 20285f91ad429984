"""Replay: a session's or a class's record laid out for an inspector, from its chains.

Credited time is recomputed from the ledger (`rules.crediting`), frames are named
by their hashes with their retention status, and the chains are checked against
the latest seal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from storage.types import Course, Institution, Learner, StudySession, TrainingClass
from supervisor.auth import Principal
from supervisor.context import Context
from supervisor.inspect.access import Workspace
from supervisor.inspect.frames import evidence_status
from supervisor.inspect.packs import evidence_hashes
from supervisor.inspect.sealing import Integrity, SealedTrees, integrity
from supervisor.ledger import classroom as cev
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules.crediting import Credit, Interval, credit


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


class Replays:
    def __init__(self, ctx: Context, workspace: Workspace, trees: SealedTrees) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.workspace = workspace
        self.trees = trees

    async def replay_session(self, p: Principal, session_id: str) -> Replay:
        """The session's replay, if the principal may read it; the read is logged."""
        session = await self.workspace.session(p, session_id)
        await self.workspace.log(
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
        status = evidence_status(
            self.storage, {x for st, _ in decoded for x in evidence_hashes(st.payload)}
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
            elif isinstance(e, ev.SupervisionModeChanged):
                items.append(
                    ReplayItem(
                        st.seq, e.at, "state", f"supervised over {e.to_mode} (was {e.from_mode})"
                    )
                )
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
            integrity(self.trees, [s.chain_id]),
            session=s,
            chains=[s.chain_id],
        )

    async def replay_class(self, p: Principal, class_id: int) -> Replay:
        """The class's replay, if the principal may read it; the read is logged."""
        tc = await self.workspace.training_class(p, class_id)
        await self.workspace.log(
            p, "replay_class", institution_id=tc.institution_id, class_id=tc.id
        )
        return await self.ctx.db(self._replay_class, tc)

    def _replay_class(self, tc: TrainingClass) -> Replay:
        reg = self.storage.registry
        chain_id = cev.class_chain(tc.id)
        decoded = codec.decode_all(self.storage.ledger.read_chain(chain_id))
        status = evidence_status(
            self.storage, {x for st, _ in decoded for x in evidence_hashes(st.payload)}
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
            integrity(self.trees, self.workspace.class_chains(tc)),
            training_class=tc,
            chains=self.workspace.class_chains(tc),
        )

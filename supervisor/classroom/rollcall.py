"""One roll call of a class: what the cameras saw, what it finds about each learner,
the events it writes, and the flags an assessment raises.

A roll call samples a few frames from every camera at once, identifies the faces
against the roster in the verification pool, stores the frames kept as evidence,
and appends one event per learner to the learner's chain of the class (present,
absent, or an outage when a camera was out: never absence) and a summary to the
class's chain. In an assessment it raises a flag the first time the number of
faces differs from the number of candidates and the first time a face matches
nobody on the roster, with the evidence of that roll call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Final

import numpy as np

from capture.exceptions import SourceDown
from capture.protocols import FrameSource
from capture.types import FrameSample
from storage.types import ClassMode, LedgerEvent, TemplateModel, TrainingClass
from supervisor.checks.evidence import keep_frame
from supervisor.checks.flags import raise_flag
from supervisor.checks.pool import Overloaded
from supervisor.checks.rollcall import KEEP_ALL, KEEP_REFERENCED, RollCallOutcome, roll_call
from supervisor.classroom.chains import ClassChains
from supervisor.context import Context
from supervisor.ledger import classroom as ce
from supervisor.ledger import events as ev
from supervisor.rules.flags import EvidenceRef
from verification.types import FaceStatus, RollCallParams

log = logging.getLogger(__name__)

FLAG_HEADCOUNT: Final = "assessment_headcount"
FLAG_UNKNOWN_FACE: Final = "assessment_unknown_face"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the cameras gave one roll call, and what the pool made of it."""

    at: datetime  # when the pool's results were in
    params: RollCallParams
    frames: dict[int, list[FrameSample]]  # camera id -> frames, of cameras that gave some
    outcomes: dict[int, RollCallOutcome]  # camera id -> result, of cameras identified
    hashes: dict[tuple[int, int], str]  # (camera id, frame index) -> evidence SHA-256
    down: tuple[int, ...]  # cameras that gave no frame
    deferred: tuple[int, ...]  # cameras the pool had no room for (or failed on)
    not_enrolled: tuple[int, ...]  # learners of the roster without a template

    @property
    def unseen_cameras(self) -> tuple[int, ...]:
        return tuple(sorted(self.down + self.deferred))

    @property
    def outcome(self) -> str:
        return "done" if self.outcomes else ("deferred" if self.deferred else "outage")


@dataclass(frozen=True, slots=True)
class Finding:
    """What one roll call found about one learner."""

    verdict: str  # present | absent | not_enrolled | unseen
    camera_id: int | None = None
    sample: FrameSample | None = None
    evidence: str | None = None
    distance: float | None = None
    box: tuple[int, ...] = ()


async def observe(
    ctx: Context,
    cls: TrainingClass,
    roster: tuple[int, ...],
    sources: Mapping[int, FrameSource],
) -> Observation:
    """Sample every camera, identify the faces against the roster, keep the evidence."""
    s = ctx.settings
    limits = s.face.engine_thresholds()
    params = RollCallParams(
        limits.match_threshold,
        limits.identify_margin,
        s.classroom.min_face_px,
        limits.detection_score_min,
    )
    # Templates of the pool engine's model only: a learner enrolled under another model
    # only is not enrolled for this roll call (re-encode or re-enrol).
    face = ctx.pool.model
    model = TemplateModel(face.engine, face.model_hash) if face is not None else None
    templates = await asyncio.gather(
        *(ctx.db(ctx.storage.templates.for_learner, lid, model) for lid in roster)
    )
    labels: list[int] = []
    rows: list[np.ndarray] = []
    not_enrolled: list[int] = []
    for lid, enrolled in zip(roster, templates, strict=True):
        if not enrolled:
            not_enrolled.append(lid)
        for t in enrolled:
            labels.append(lid)
            rows.append(t.vector)
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), 128)
    # Every camera at once: the frames of a roll call are about simultaneous.
    camera_ids = list(sources)
    sampled = await asyncio.gather(
        *(
            sources[cid].sample(
                s.classroom.frames_per_roll_call,
                s.classroom.frame_spacing_s,
                s.classroom.frame_timeout_s,
            )
            for cid in camera_ids
        ),
        return_exceptions=True,
    )
    frames: dict[int, list[FrameSample]] = {}
    down: list[int] = []
    for cid, got in zip(camera_ids, sampled, strict=True):
        if isinstance(got, BaseException):
            if not isinstance(got, SourceDown):
                log.error("class %s camera %s: %r", cls.id, cid, got)
            down.append(cid)
        else:
            frames[cid] = got
    keep = KEEP_ALL if cls.mode is ClassMode.assessment else KEEP_REFERENCED
    outcomes: dict[int, RollCallOutcome] = {}
    deferred: list[int] = []
    if frames:
        results = await asyncio.gather(
            *(
                roll_call(ctx.pool, [f.image for f in frames[cid]], matrix, labels, params, keep)
                for cid in frames
            ),
            return_exceptions=True,
        )
        for cid, result in zip(list(frames), results, strict=True):
            if isinstance(result, RollCallOutcome):
                outcomes[cid] = result
            else:
                if not isinstance(result, Overloaded):
                    log.error("class %s roll call on camera %s: %r", cls.id, cid, result)
                deferred.append(cid)
    now = ctx.clock()
    # Evidence first: the events carry the hashes of stored frames.
    hashes: dict[tuple[int, int], str] = {}
    puts = [
        (cid, i, jpeg)
        for cid, outcome in outcomes.items()
        for i, jpeg in enumerate(outcome.jpegs)
        if jpeg is not None
    ]
    # A full evidence disk costs the frames, never the roll call.
    kept = await asyncio.gather(
        *(ctx.db(keep_frame, ctx.storage.evidence, jpeg, ctx.retain_until()) for _, _, jpeg in puts)
    )
    for (cid, i, _), (sha, _why) in zip(puts, kept, strict=True):
        if sha is not None:
            hashes[(cid, i)] = sha
    return Observation(
        now, params, frames, outcomes, hashes, tuple(down), tuple(deferred), tuple(not_enrolled)
    )


@dataclass(frozen=True, slots=True)
class RollCall:
    """One roll call of a run: its roster, why it is held, and where it writes."""

    chains: ClassChains
    roster: tuple[int, ...]
    roll_call_id: str
    purpose: str  # start | random | resume | end
    scheduled_at: datetime | None

    def findings(self, obs: Observation) -> dict[int, Finding]:
        """Each learner's best sighting over every camera, else why they were not seen."""
        outcomes, frames, hashes = obs.outcomes, obs.frames, obs.hashes
        best: dict[int, Finding] = {}
        for cid, outcome in outcomes.items():
            for sighting in outcome.result.present:
                current = best.get(sighting.label)
                if current is not None and (current.distance or 0.0) <= sighting.distance:
                    continue
                face = outcome.result.frames[sighting.frame_index].faces[sighting.face_index]
                box = face.box
                best[sighting.label] = Finding(
                    "present",
                    cid,
                    frames[cid][sighting.frame_index],
                    hashes.get((cid, sighting.frame_index)),
                    round(sighting.distance, 6),
                    (box.left, box.top, box.right, box.bottom),
                )
        first = next(iter(outcomes), None)
        out: dict[int, Finding] = {}
        for lid in self.roster:
            if lid in best:
                out[lid] = best[lid]
            elif first is None:
                out[lid] = Finding("unseen")
            elif lid in obs.not_enrolled:
                out[lid] = Finding("not_enrolled", first, frames[first][0], hashes.get((first, 0)))
            elif obs.unseen_cameras:
                out[lid] = Finding("unseen")  # maybe in the view of a camera that is out
            else:
                out[lid] = Finding("absent", first, frames[first][0], hashes.get((first, 0)))
        return out

    def learner_events(
        self, obs: Observation, findings: Mapping[int, Finding], paused: dict[int, bool]
    ) -> dict[int, list[ev.Event]]:
        """Each learner's events of this roll call. `paused` (learner -> clock stopped)
        is updated in place to the state after them."""
        now, unseen_cameras = obs.at, obs.unseen_cameras
        frames_examined = sum(len(obs.frames[c]) for c in obs.outcomes)
        faces = sum(o.result.faces for o in obs.outcomes.values())
        chains = self.chains
        per_learner: dict[int, list[ev.Event]] = {}
        for lid in self.roster:
            found = findings[lid]
            if found.verdict == "unseen":
                if not paused[lid]:
                    per_learner[lid] = [
                        chains.outage(now, "camera_outage", self.roll_call_id, unseen_cameras)
                    ]
                    paused[lid] = True
                continue
            events: list[ev.Event] = []
            if paused[lid]:
                events.append(
                    ce.ClassResumed(
                        ce.OUTAGE,
                        ce.OBSERVED,
                        "observed_again",
                        now,
                        chains.class_id,
                        chains.run_id,
                        self.roll_call_id,
                    )  # fmt: skip
                )
                paused[lid] = False
            sample = found.sample
            events.append(
                ce.ClassPresence(
                    check_id=self.roll_call_id,
                    check_kind="roll_call",
                    purpose=self.purpose,
                    verdict=found.verdict,
                    passed=found.verdict == "present",
                    at=now,
                    distance=found.distance,
                    threshold=obs.params.threshold,
                    issues=(),
                    faces=faces,
                    frames=frames_examined,
                    evidence_sha256=found.evidence,
                    scheduled_at=self.scheduled_at,
                    class_id=chains.class_id,
                    learner_id=lid,
                    run_id=chains.run_id,
                    camera_id=found.camera_id,
                    captured_at=sample.captured_at if sample else None,
                    pts=sample.pts if sample else None,
                    time_base=_fraction(sample.time_base) if sample else None,
                    box=found.box,
                )
            )
            per_learner[lid] = events
        return per_learner

    def summary(self, obs: Observation, findings: Mapping[int, Finding]) -> ce.ClassRollCall:
        """The roll call's event on the class's chain."""
        outcomes, frames, hashes = obs.outcomes, obs.frames, obs.hashes
        ordered = [(cid, i, f) for cid in outcomes for i, f in enumerate(frames[cid])]
        return ce.ClassRollCall(
            class_id=self.chains.class_id,
            run_id=self.chains.run_id,
            roll_call_id=self.roll_call_id,
            purpose=self.purpose,
            outcome=obs.outcome,
            scheduled_at=self.scheduled_at,
            at=obs.at,
            cameras_live=tuple(sorted(outcomes)),
            cameras_down=obs.unseen_cameras,
            faces=sum(o.result.faces for o in outcomes.values()),
            present=tuple(lid for lid in self.roster if findings[lid].verdict == "present"),
            absent=tuple(lid for lid in self.roster if findings[lid].verdict == "absent"),
            unseen=tuple(lid for lid in self.roster if findings[lid].verdict == "unseen"),
            not_enrolled=tuple(
                lid for lid in self.roster if findings[lid].verdict == "not_enrolled"
            ),
            unknown_faces=sum(o.result.most(FaceStatus.unknown) for o in outcomes.values()),
            ambiguous_faces=sum(o.result.most(FaceStatus.ambiguous) for o in outcomes.values()),
            unusable_faces=sum(o.result.most(FaceStatus.unusable) for o in outcomes.values()),
            frames_camera=tuple(cid for cid, _, _ in ordered),
            frames_captured_at=tuple(f.captured_at for _, _, f in ordered),
            frames_pts=tuple(f.pts for _, _, f in ordered),
            frames_time_base=tuple(_fraction(f.time_base) for _, _, f in ordered),
            frames_evidence=tuple(hashes.get((cid, i)) for cid, i, _ in ordered),
            frames_faces=tuple(len(outcomes[cid].result.frames[i].faces) for cid, i, _ in ordered),
            frames_unknown=tuple(
                outcomes[cid].result.frames[i].count(FaceStatus.unknown) for cid, i, _ in ordered
            ),
        )


async def assessment_flags(
    ctx: Context,
    chains: ClassChains,
    institution_id: int,
    roster: tuple[int, ...],
    summary: ce.ClassRollCall,
    stored: LedgerEvent,
    complete: bool,
    flagged: set[str],
) -> None:
    """Raise the assessment's flags that this roll call calls for, once per kind and run
    (`flagged`, updated in place, holds the kinds raised so far). The evidence is the
    roll call's event in the class chain (`stored`) and every frame it kept."""
    candidates = len(roster)
    wanted: list[str] = []
    if complete and summary.faces != candidates:
        wanted.append(FLAG_HEADCOUNT)
    if summary.unknown_faces > 0:
        wanted.append(FLAG_UNKNOWN_FACE)
    scores = {
        "class_id": chains.class_id,
        "run_id": chains.run_id,
        "roll_call_id": summary.roll_call_id,
        "faces": summary.faces,
        "candidates": candidates,
        "present": len(summary.present),
        "unknown_faces": summary.unknown_faces,
    }
    frames = [h for h in summary.frames_evidence if h is not None]
    evidence = [
        EvidenceRef(stored.chain_id, stored.seq, stored.hash, sha, {"frame": n})
        for n, sha in enumerate(frames)
    ] or [EvidenceRef(stored.chain_id, stored.seq, stored.hash, None, {})]
    for kind in wanted:
        if kind in flagged:
            continue  # one flag per kind and run; later roll calls are in the chain
        flagged.add(kind)
        what = (
            f"{summary.faces} face(s) in the room for {candidates} candidate(s)"
            if kind == FLAG_HEADCOUNT
            else f"{summary.unknown_faces} face(s) matched nobody on the roster"
        )
        flag = await ctx.db(
            raise_flag,
            ctx.storage,
            kind,
            institution_id,
            None,
            (),
            f"assessment of class {chains.class_id}: {what}",
            evidence,
            summary.at,
            key=f"{kind}:{chains.class_id}:{chains.run_id}",
            scores=scores,
        )
        await chains.append_class(
            ce.ClassFlagRaised(
                chains.class_id, chains.run_id, flag.id, kind, summary.roll_call_id, summary.at
            )
        )


def _fraction(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"

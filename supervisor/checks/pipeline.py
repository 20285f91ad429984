"""The one check pipeline: a check's frames to its ledger event.

Every check of an online session runs through `CheckPipeline.run`, in a
verification worker: the sign-in, live supervision's scheduled and retry checks and
challenges (over WebRTC or the still-frame path), and a check a client submits.
The steps, each in its own room and each entered once:

1. a job delivered twice answers with what its check id recorded (idempotency);
2. the session's state (`rules.session_state`): an ended session records nothing;
3. verify: the frames are decoded (untrusted bytes) and the face engine decides;
4. liveness: passive liveness, and the outcome of an answered challenge;
5. the verdict and its event (`checks.verdict`), with the decisive frame kept as
   evidence (`checks.evidence`) and its capture time;
6. append, with the change of state the check causes (`rules.session_state`),
   all under the check id, so the check and its consequence land together or not;
7. follow-ups: the impostor search after an identity check.

A sign-in whose check does not pass records nothing: the refusal answers the
learner, and the ledger stays as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from config import Settings
from storage import Storage
from storage.exceptions import BrokenChain, TemplateModelMismatch
from storage.types import LedgerEvent, TemplateModel
from supervisor.checks.evidence import keep_frame
from supervisor.checks.impostor import InstitutionTemplates, search_after_check
from supervisor.checks.jobs import CheckJob, CheckResult, ResultStatus
from supervisor.checks.liveness import FingerprintHistory, assess
from supervisor.checks.pool import decode_frames
from supervisor.checks.replay import ReplayGuard, raise_replay_flag
from supervisor.checks.verdict import check_event
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules import session_state as sm
from verification import replay
from verification.exceptions import ImageError
from verification.imageio import encode_jpeg
from verification.matching import as_matrix
from verification.protocols import FaceEngine
from verification.types import ChallengeKind, CheckKind, Image, TemplateSet

log = logging.getLogger(__name__)


@dataclass
class CheckPipeline:
    """The steps above, for one worker process (blocking: storage and face work)."""

    settings: Settings
    storage: Storage
    engine: FaceEngine
    history: FingerprintHistory | None
    worker: str = "pipeline"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    impostors: InstitutionTemplates | None = None
    replays: ReplayGuard | None = None
    views: sm.SessionViews = field(init=False)

    def __post_init__(self) -> None:
        gap = timedelta(seconds=self.settings.policy.max_credited_gap_s)
        self.views = sm.SessionViews(self.storage.ledger.read_chain, gap)
        if self.replays is None and self.settings.liveness.replay_check:
            self.replays = ReplayGuard(self.settings.liveness.replay_cache_s)
        self._institutions: dict[int, int] = {}  # learner -> institution

    def _institution(self, learner_id: int) -> int:
        found = self._institutions.get(learner_id)
        if found is None:
            found = self.storage.registry.get_learner(learner_id).institution_id
            self._institutions[learner_id] = found
        return found

    def _answer(self, job: CheckJob, status: ResultStatus, **kw: str | None) -> CheckResult:
        return CheckResult(job.check_id, status, self.worker, **kw)

    def run(self, job: CheckJob) -> CheckResult:
        """Verify and record one check. Raises on infrastructure faults (the worker
        leaves the job pending, to be retried)."""
        storage = self.storage
        # 1. A second delivery (its worker died after appending) answers with the record.
        earlier = storage.ledger.find_once(job.chain_id, job.check_id)
        if earlier is not None:
            return self._recorded(job, earlier, ResultStatus.duplicate)
        # 2. The session's state.
        view = self.views.refresh(job.chain_id)
        if job.start is None and (view.start is None or view.state is sm.State.ended):
            return self._answer(job, ResultStatus.session_ended)
        if job.start is not None and view.seq != 0:
            return self._answer(job, ResultStatus.session_ended)  # not a new chain
        # 3. Verify.
        templates = None
        if job.kind is CheckKind.identity:
            model = self.engine.model
            try:
                found = storage.templates.for_check(
                    job.learner_id, TemplateModel(model.engine, model.model_hash)
                )
            except TemplateModelMismatch as exc:
                # Enrolled under another face model only: never compared across models.
                return self._answer(
                    job,
                    ResultStatus.image_error,
                    reason="reenrolment_needed",
                    message=f"the learner's face was enrolled with another model ({exc}); "
                    "enrol again, or have the templates re-encoded",
                )
            if not found:
                return self._answer(
                    job,
                    ResultStatus.image_error,
                    reason="not_enrolled",
                    message="the learner has no enrolled face",
                )
            templates = TemplateSet(model, as_matrix([t.vector for t in found]))
        try:
            images = decode_frames(self.settings.images, job.frames)
        except ImageError as exc:
            return self._answer(job, ResultStatus.image_error, reason=exc.reason, message=str(exc))
        result = self.engine.check(job.kind, images, templates)
        # 4. Liveness.
        cfg = self.settings.liveness
        liveness, challenge = assess(
            self.engine,
            result,
            images,
            job.frame_times,
            session_id=job.session_id,
            base_s=job.enqueued_at.timestamp(),
            passive=cfg.passive,
            challenge=ChallengeKind(job.challenge) if job.challenge else None,
            challenge_time_limit_s=cfg.challenge_time_limit_s,
            reference_yaw_deg=job.reference_yaw_deg,
            history=self.history,
        )
        now = self.clock()
        index = result.frame_index
        stamp = job.stamps[index] if len(job.stamps) == len(job.frames) else None
        # A kept frame (of any learner of the institution) posted again?
        probe = replayed = None
        if self.replays is not None and result.decisive.faces_found == 1:
            probe = self.replays.probe(self.engine, images[index], result.decisive.box)
            if probe is not None:
                replayed = self.replays.find(storage, self._institution(job.learner_id), probe)
        copied = (
            ev.ReplayRecord(
                replayed.match.score or 0.0,
                replayed.match.threshold,
                replayed.copied.evidence_sha256,
            )
            if replayed is not None
            else None
        )
        # 5. The verdict; a sign-in that did not pass stops here, having recorded nothing.
        check = check_event(
            result,
            purpose=job.purpose,
            at=now,
            check_id=job.check_id,
            scheduled_at=job.scheduled_at,
            liveness=liveness,
            challenge=challenge,
            suspicion=job.suspicion,
            stamp=stamp,
            replay=copied,
        )
        if job.start is not None and not check.passed:
            if replayed is not None:
                raise_replay_flag(
                    storage, self._institution(job.learner_id), job.learner_id,
                    f"signin:{job.check_id}", replayed, None, now,
                )  # fmt: skip
            payload = codec.encode(check).payload
            return self._answer(job, ResultStatus.refused, kind=check.KIND, payload=payload)
        retain = now + timedelta(days=self.settings.evidence.retention_days)
        sha, error = keep_frame(storage.evidence, self._evidence(job, images, index), retain)
        check = replace(check, evidence_sha256=sha, evidence_error=error)
        # 6. Append the check with what it causes, under its id.
        events: list[ev.Event] = []
        state = view.state
        if job.start is not None:
            s = job.start
            events.append(
                sm.start(job.session_id, job.learner_id, s.course_id, s.institution_id, s.mode, now)
            )
            state = sm.State.active
        events.append(check)
        change = sm.after_check(state, check)
        if change is not None:
            events.append(change)
        try:
            appended, created = storage.ledger.append_once(
                job.chain_id, job.check_id, [codec.encode(e) for e in events]
            )
        except BrokenChain as exc:
            # Nothing more goes into a broken chain; the job is answered, not retried
            # (retrying cannot help) nor dead-lettered.
            return self._answer(job, ResultStatus.failed, reason="chain_broken", message=str(exc))
        stored = next((e for e in appended if e.kind == check.KIND), appended[0])
        # 7. Follow-ups.
        if created and replayed is not None:
            raise_replay_flag(
                storage, self._institution(job.learner_id), job.learner_id, job.session_id,
                replayed, stored, now,
            )  # fmt: skip
        if created and probe is not None and sha is not None and replayed is None:
            # This frame's signature joins the kept ones, for the checks to come.
            self.replays_keep(job, sha, probe, retain)
        if created and job.kind is CheckKind.identity and self.settings.subsidy.impostor_search:
            if self.impostors is None:
                self.impostors = InstitutionTemplates(self.settings.subsidy.impostor_cache_s)
            search_after_check(
                self.settings,
                storage,
                self.engine,
                self.impostors,
                job.learner_id,
                job.session_id,
                images[index],
                stored,
                now,
                probe=result.decisive.encoding,
            )
        status = ResultStatus.recorded if created else ResultStatus.duplicate
        return self._recorded(job, stored, status)

    def replays_keep(
        self, job: CheckJob, sha: str, probe: replay.ReplayProbe, retain: datetime
    ) -> None:
        assert self.replays is not None
        try:
            self.replays.keep(
                self.storage, job.learner_id, self._institution(job.learner_id), sha,
                "check", probe, retain,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - the check is recorded; a lost signature only logs
            log.exception("signature of check %s not kept", job.check_id)

    def _evidence(self, job: CheckJob, images: Sequence[Image], index: int) -> bytes:
        """The decisive frame as evidence: as the service encoded it, or, for an upload,
        encoded anew (which also strips any metadata the client sent)."""
        if job.evidence_ready:
            return job.frames[index]
        return encode_jpeg(images[index], self.settings.evidence.jpeg_quality)

    def _recorded(self, job: CheckJob, stored: LedgerEvent, status: ResultStatus) -> CheckResult:
        if stored.kind == "session_started":  # a sign-in: answer with its check
            chain = self.storage.ledger.read_chain(job.chain_id)
            stored = next((e for e in chain if e.kind == "check"), stored)
        return self._answer(job, status, kind=stored.kind, payload=stored.payload)

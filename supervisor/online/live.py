"""Live supervision of online study: server-chosen random checks over a learner link.

A `LiveSession` runs one task per session while the learner's page is attached,
over WebRTC (frames from the peer connection; messages on the data channel) or,
where WebRTC cannot connect, over plain HTTP (the page long-polls for requests
and posts still frames). The policy is the same in both modes:

- presence and identity checks at random moments drawn on the server;
- a failed or missed check prompts the learner and opens a response window with
  retries; if nothing passes in it, the session pauses (the clock stops) until
  an identity check passes; `max_failed_windows` failed windows end it;
- a disconnected learner's session pauses and resumes on reconnection after an
  identity check (with a challenge when `challenge_first_check`); so does a page that
  reports itself hidden (a locked screen, the tab in the background: `page_hidden`);
  one live session per learner, held by an expiring Redis lock.

Every decision is a ledger event: checks go through the check pipeline, and the
rest (a missed check, a pause, the end) through `SessionRecorder` and its state
machine. Links to the page are in `supervisor.online.links`, what is shared in
Redis (the lock, the operators' board) in `supervisor.online.board`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from capture.exceptions import CaptureError
from capture.types import PeerState
from capture.webrtc import PeerHub
from storage import Storage
from storage.exceptions import StorageError
from storage.types import StudySession
from supervisor.checks.dispatch import CheckRequest
from supervisor.checks.flags import raise_flag
from supervisor.context import Context
from supervisor.errors import Conflict, InvalidInput, Unavailable
from supervisor.i18n import Language, Translator, translator
from supervisor.i18n import advice as words
from supervisor.i18n.catalogue import N_
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.online.board import LiveBoard, LiveLocks
from supervisor.online.links import Link, UploadLink, WebRTCLink
from supervisor.online.recorder import SessionRecorder
from supervisor.rules import session_state as sm
from supervisor.rules.flags import EvidenceRef
from supervisor.rules.schedule import draw_interval
from supervisor.rules.suspicion import suspicion_from_signals
from verification.types import ChallengeKind, CheckKind, QualityIssue

log = logging.getLogger(__name__)

# A page attaching within this many seconds of a passed identity check (the one
# that opened the session) is not asked for another one straight away.
ATTACH_GRACE_S = 30.0
# Shortest sleep of a session waiting for its next check.
_MIN_NAP_S = 0.5
# How long supervision waits before going on after its storage failed.
STORAGE_RETRY_S = 2.0


# -- one supervised session --------------------------------------------------


# Words sent to the page beside the codes, in the page's language (message ids).
KEEP_OPEN = N_("Keep this page open with the camera on.")
UNREADABLE = N_("The camera's pictures could not be read.")
LOOKED_LIKE_A_PHOTO = N_("Move a little and face the camera: the picture looked like a photo.")
DO_AS_ASKED = N_("Please do as asked when prompted: {prompt}")
FACE_THE_CAMERA = N_("Please face the camera: a check did not pass.")


@dataclass
class LiveSession:
    manager: LiveManager
    session: StudySession
    link: Link | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected_at: datetime | None = None
    task: asyncio.Task[None] | None = None
    last_heartbeat: float = 0.0
    last_verdict: str | None = None
    stopped: bool = False
    signals: dict[str, Any] = field(default_factory=dict)  # the page's own reports
    hidden_since_check: bool = False
    last_challenge: float | None = None  # loop time of the last challenge
    spoof_signs: list[str] = field(default_factory=list)
    spoof_flagged: bool = False
    # Challenges still to pass in a row before checks go without one: set to
    # `liveness.challenge_rounds` for the first check, a resume, and a liveness failure.
    challenges_owed: int = 0
    # The head's yaw before the first of those rounds (the learner facing the camera):
    # each later round's turn is judged against it too, so that a recording coming back
    # from one turn does not pass the opposite turn asked next.
    rounds_reference_yaw: float | None = None
    last_challenge_kind: ChallengeKind | None = None
    lock_refreshed: float = float("-inf")  # loop time the live lock was last refreshed
    woken: asyncio.Event = field(default_factory=asyncio.Event)  # the link came or went
    # The language of the page that attached last (its Accept-Language): the words sent
    # beside the codes (advice, prompts) are in it.
    t: Translator = field(default_factory=lambda: translator(Language.zh_CN))

    @property
    def recorder(self) -> SessionRecorder:
        return self.manager.recorder

    @property
    def policy(self) -> Any:
        return self.manager.settings.policy

    def clock(self) -> datetime:
        return self.manager.ctx.clock()

    def send(self, message: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.send(message)

    async def send_state(
        self, state: sm.SessionState | None = None, note: str | None = None
    ) -> None:
        view = await self.recorder.view(self.session)
        if state is None:
            state = view.snapshot()
        credited = view.clock.credited_seconds
        running = state.state is sm.State.active and (
            self.last_verdict in (None, "match", "present")
        )
        await self.manager.board.publish(
            self.session,
            state=state.state,
            note=note,
            mode=self.link.mode if self.link else None,
            last_verdict=self.last_verdict,
            credited_seconds=credited,
            at=self.clock(),
        )
        self.send(
            {
                "type": "state",
                "state": state.state,
                "note": note,
                "mode": self.link.mode if self.link else None,
                "credited_seconds": credited,
                "clock_running": running,
                "at": ev.iso(self.clock()),
            }
        )

    def attach(self, link: Link) -> None:
        self.link = link
        self.last_heartbeat = asyncio.get_running_loop().time()
        self.connected.set()
        self.woken.set()

    def heartbeat(self) -> None:
        self.last_heartbeat = asyncio.get_running_loop().time()

    def heartbeat_due(self) -> float:
        """Loop time after which the page counts as gone if it has not sent one."""
        return self.last_heartbeat + self.manager.settings.webrtc.heartbeat_timeout_s

    async def _refresh_lock(self) -> None:
        await self.manager.hold(self.session)
        self.lock_refreshed = asyncio.get_running_loop().time()

    def take_signals(self, message: dict[str, Any]) -> bool:
        """Keep what the page reports about its camera; a hidden page is remembered
        until the next check (it can only add suspicion). True when the page says it
        is hidden: the caller then pauses the session (`detach(PAGE_HIDDEN)`), as a
        page in the background cannot answer checks (a phone stops its camera)."""
        label = message.get("label")
        settings = message.get("settings")
        self.signals = {
            "label": label[:200] if isinstance(label, str) else None,
            "settings": {
                k: v
                for k, v in (settings.items() if isinstance(settings, dict) else ())
                if k in ("width", "height", "frameRate") and isinstance(v, int | float)
            },
            "hidden": message.get("hidden") is True,
        }
        if self.signals["hidden"]:
            self.hidden_since_check = True
        return bool(self.signals["hidden"])

    async def detach(self, reason: str) -> None:
        """The learner's page went away: pause now (the clock stops) and wait for it."""
        if self.link is None:
            return
        link, self.link = self.link, None
        self.connected.clear()
        self.woken.set()
        self.disconnected_at = self.clock()
        with contextlib.suppress(Exception):
            await link.close()
        with contextlib.suppress(Conflict):
            state = await self.recorder.pause(self.session, reason)
            await self.send_state(state, note=reason)

    # -- checks --------------------------------------------------------------

    async def check(
        self,
        kind: CheckKind,
        purpose: str,
        scheduled_at: datetime | None = None,
        challenge: ChallengeKind | None = None,
        reference_yaw_deg: float | None = None,
    ) -> bool:
        """Run one check over fresh frames; a check nobody answers is recorded as missed.

        With `challenge`, the learner is first asked for that action and the frames of
        the following seconds must show it. A passed check may be followed by a
        challenge (at random, or when liveness was doubtful); a spoof verdict is
        followed by one at once, so an honest learner who sat very still can clear it.
        """
        link = self.link
        if link is None:
            return False
        check_id = uuid.uuid4().hex
        live_cfg = self.manager.settings.liveness
        suspicion = self.suspicion()
        if challenge is not None:
            self.last_challenge = asyncio.get_running_loop().time()
            self.last_challenge_kind = challenge
            self.send(
                {
                    "type": "challenge",
                    "check_id": check_id,
                    "kind": challenge.value,
                    "prompt": words.prompt(self.t, challenge),
                    "time_limit_s": live_cfg.challenge_time_limit_s,
                }
            )
            fps = live_cfg.challenge_fps
            count = max(2, int(fps * (live_cfg.challenge_time_limit_s + 0.5)))
            spacing, timeout, want_fps = 1.0 / fps, live_cfg.challenge_time_limit_s + 4, fps
        else:
            self.send({"type": "checking", "check_id": check_id, "kind": kind.value})
            count = self.policy.frames_per_check
            spacing = self.manager.settings.webrtc.frame_spacing_s
            timeout, want_fps = self.policy.capture_timeout_s, None
        try:
            captured = await link.frames(check_id, count, spacing, timeout, want_fps)
        except CaptureError as exc:
            missed = ev.CheckMissed(
                check_id, kind.value, scheduled_at or self.clock(), self.clock(), exc.reason
            )
            # No frames and no heartbeat for longer than allowed: the page is gone (a
            # closed tab whose connection has not been torn down yet). The session pauses
            # as disconnected, not as a learner who looked away, and waits for the page.
            if self.link is link and asyncio.get_running_loop().time() > self.heartbeat_due():
                await self.detach("heartbeat_lost")
            await self.recorder.missed(self.session, missed)
            self.last_verdict = "missed"
            self.send(
                {"type": "result", "check_id": check_id, "kind": kind.value, "verdict": "missed",
                 "passed": False, "advice": [self.t.gettext(KEEP_OPEN)]}
            )  # fmt: skip
            return False
        try:
            state, recorded = await self.recorder.check(
                self.session,
                CheckRequest(
                    session_id=self.session.id,
                    chain_id=self.session.chain_id,
                    learner_id=self.session.learner_id,
                    kind=kind,
                    purpose="challenge" if challenge is not None else purpose,
                    frames=tuple(captured.frames),
                    scheduled_at=scheduled_at,
                    check_id=check_id,
                    frame_times=tuple(captured.times),
                    challenge=challenge.value if challenge is not None else None,
                    reference_yaw_deg=reference_yaw_deg if challenge is not None else None,
                    suspicion=suspicion,
                ),
            )
        except InvalidInput as exc:
            # Frames that passed the upload's own validation but not the decoder (a
            # different Pillow build, a worker with other limits): the page sent nothing
            # usable, which is a missed check, and supervision goes on.
            log.info("session %s: unusable frames for check %s: %s", self.session.id,
                     check_id, exc.message)  # fmt: skip
            missed = ev.CheckMissed(
                check_id, kind.value, scheduled_at or self.clock(), self.clock(),
                "unusable_frames",
            )  # fmt: skip
            await self.recorder.missed(self.session, missed)
            self.last_verdict = "missed"
            self.send(
                {"type": "result", "check_id": check_id, "kind": kind.value, "verdict": "missed",
                 "passed": False, "advice": [self.t.gettext(UNREADABLE)]}
            )  # fmt: skip
            return False
        except (StorageError, Unavailable) as exc:
            # The service's own storage or queue failed even to record a deferral: nothing
            # is counted against the learner, and supervision goes on (the next check
            # finds the storage back).
            log.warning("session %s: check %s not recorded: %s", self.session.id, check_id, exc)
            recorded = ev.CheckDeferred(check_id, kind.value, self.clock(), "storage_unavailable")
        if isinstance(recorded, ev.CheckDeferred):
            # The service's own overload or fault: never counted against the learner.
            self.send(
                {"type": "result", "check_id": check_id, "kind": kind.value,
                 "verdict": "deferred", "passed": True, "advice": []}
            )  # fmt: skip
            return True
        self.last_verdict = recorded.verdict
        advice = words.advice(self.t, recorded.issues)
        if recorded.verdict == "spoof":
            advice.append(self.t.gettext(LOOKED_LIKE_A_PHOTO))
        elif recorded.verdict.startswith("challenge_") and challenge is not None:
            asked = words.prompt(self.t, challenge)
            advice.append(self.t.gettext(DO_AS_ASKED).format(prompt=asked))
        self.send(
            {
                "type": "result",
                "check_id": check_id,
                "kind": kind.value,
                "verdict": recorded.verdict,
                "passed": recorded.passed,
                "advice": advice,
                # The codes behind the advice, for a page that words it in its language.
                "issues": [i for i in recorded.issues if i in QualityIssue.__members__],
                "challenge": challenge.value if challenge is not None else None,
            }
        )
        await self.send_state(state)
        await self._count_spoof(recorded)
        liveness_failed = recorded.verdict == "spoof" or recorded.verdict.startswith("challenge_")
        if liveness_failed:
            self.owe_challenges()
        elif challenge is not None and recorded.passed:
            self.challenges_owed = max(0, self.challenges_owed - 1)
            if self.challenges_owed > 0:
                # The next round at once: one lucky turn of a recording earns at most
                # the interval before it, and the next round stops it.
                if self.rounds_reference_yaw is None and recorded.challenge is not None:
                    self.rounds_reference_yaw = recorded.challenge.baseline_yaw_deg
                return await self.check(
                    kind,
                    purpose,
                    challenge=self._draw_challenge(),
                    reference_yaw_deg=self.rounds_reference_yaw,
                )
            self.rounds_reference_yaw = None
        if challenge is None:
            follow = self._challenge_after(recorded, purpose)
            if follow is not None:
                return await self.check(kind, purpose, challenge=follow)
        return recorded.passed

    def owe_challenges(self) -> None:
        """The next checks carry challenges until `challenge_rounds` pass in a row."""
        self.challenges_owed = self.manager.settings.liveness.challenge_rounds
        self.rounds_reference_yaw = None

    def _draw_challenge(self) -> ChallengeKind:
        """A challenge drawn by the server, of another kind than the last one where
        there are several (a recording that turns one way does not pass two rounds)."""
        kinds = [ChallengeKind(k) for k in self.manager.settings.liveness.challenge_kinds]
        others = [k for k in kinds if k is not self.last_challenge_kind] or kinds
        return self.manager.rng.choice(others)

    def suspicion(self) -> tuple[str, ...]:
        """Suspicion from the page's own reports since the last check (never cleared by them)."""
        reasons = set(suspicion_from_signals(self.signals))
        if self.hidden_since_check:
            reasons.add("page_hidden")
        self.hidden_since_check = bool(self.signals.get("hidden"))
        return tuple(sorted(reasons))

    def _challenge_after(self, recorded: ev.CheckRecorded, purpose: str) -> ChallengeKind | None:
        cfg = self.manager.settings.liveness
        kinds = [ChallengeKind(k) for k in cfg.challenge_kinds]
        verdict = recorded.liveness.verdict if recorded.liveness is not None else None
        if recorded.verdict == "spoof":
            return self.manager.rng.choice(kinds)
        if not recorded.passed:
            return None
        now = asyncio.get_running_loop().time()
        recent = (
            self.last_challenge is not None
            and now - self.last_challenge < cfg.challenge_min_interval_s
        )
        if recent:
            return None
        doubtful = verdict == "inconclusive" or bool(recorded.suspicion)
        if cfg.challenge_when_doubtful and doubtful and recorded.check_kind == "identity":
            return self.manager.rng.choice(kinds)
        if (
            purpose == "scheduled"
            and recorded.check_kind == "identity"
            and self.manager.rng.random() < cfg.challenge_probability
        ):
            return self.manager.rng.choice(kinds)
        return None

    async def _count_spoof(self, recorded: ev.CheckRecorded) -> None:
        """Repeated spoof signs in one session raise one `liveness_spoof` flag: spoof
        verdicts, failed challenges, and challenges left unanswered while a face stayed
        in view (a photo or a recording cannot answer; a learner who walked away shows
        no face)."""
        ch = recorded.challenge
        ignored = (
            recorded.verdict == "challenge_timed_out"
            and ch is not None
            and ch.frames is not None
            and ch.face_frames is not None
            and ch.face_frames * 2 >= ch.frames > 0
        )
        # Frames without a face (the learner walked away) are `no_face`, never a sign of
        # a spoof, whatever liveness made of an empty, unchanging picture.
        spoofy = (
            recorded.verdict in ("spoof", "challenge_failed")
            or ignored
            or (
                recorded.faces > 0
                and recorded.liveness is not None
                and recorded.liveness.verdict == "spoof"
            )
        )
        if not spoofy:
            return
        self.spoof_signs.append(recorded.check_id)
        if (
            self.spoof_flagged
            or len(self.spoof_signs) < self.manager.settings.liveness.spoof_flag_after
        ):
            return
        self.spoof_flagged = True
        ctx = self.manager.ctx
        await ctx.db(
            raise_spoof_flag, ctx.storage, self.session, tuple(self.spoof_signs), recorded,
            ctx.clock(),
        )  # fmt: skip

    async def respond(self, failed_kind: CheckKind) -> bool:
        """Response windows after a failed check. Returns False if the session ended."""
        windows = 0
        while not self.stopped:
            state = await self.manager.state_of(self.session)
            if state.state is sm.State.ended:
                return False
            deadline = self.clock() + timedelta(seconds=self.policy.response_window_s)
            self.send(
                {
                    "type": "prompt",
                    "message": self.t.gettext(FACE_THE_CAMERA),
                    "deadline": ev.iso(deadline),
                    # What did not pass (a verdict code), so the page can say what to do.
                    "verdict": self.last_verdict,
                    "kind": failed_kind.value,
                }
            )
            await self.send_state(state, note="please_face_the_camera")
            while self.clock() < deadline and not self.stopped:
                wait = min(self.policy.retry_interval_s, (deadline - self.clock()).total_seconds())
                if await self._sleep(wait):
                    return True
                if self.link is None:
                    break
                paused = (await self.manager.state_of(self.session)).state is sm.State.paused
                kind = CheckKind.identity if paused else failed_kind
                # After a liveness failure only challenges answered can clear it.
                retry_challenge = self._draw_challenge() if self.challenges_owed else None
                if await self.check(kind, "retry", challenge=retry_challenge):
                    state = await self.manager.state_of(self.session)
                    if state.state is sm.State.active:
                        self.send({"type": "prompt", "message": None, "deadline": None})
                        return True
            if self.link is None:
                return True  # disconnected: the run loop waits for the learner
            windows += 1
            await self.recorder.pause(self.session, sm.WINDOW_EXPIRED)
            if windows >= self.policy.max_failed_windows:
                with contextlib.suppress(Conflict):
                    await self.manager.end(self.session, "failed_windows")
                return False
        return False

    async def _sleep(self, seconds: float) -> bool:
        """Sleep; True if the session stopped meanwhile."""
        if seconds > 0:
            await asyncio.sleep(seconds)
        return self.stopped

    # -- the loop ------------------------------------------------------------

    async def _identity_is_recent(self) -> bool:
        """Was an identity check passed just now (the page that started the session)?"""
        passed_at = (await self.recorder.view(self.session)).identity_passed_at
        if passed_at is None:
            return False
        return (self.clock() - passed_at).total_seconds() <= ATTACH_GRACE_S

    def _due_challenge(self) -> ChallengeKind | None:
        """A challenge for the next check when one is due (the session's first check, the
        check that resumes it, after a liveness failure); due until the rounds pass."""
        return self._draw_challenge() if self.challenges_owed else None

    async def run(self) -> None:
        if self.manager.settings.liveness.challenge_first_check:
            self.owe_challenges()
        try:
            # A page that attaches to a session it did not just open (a reload, a
            # second device, a session opened elsewhere) proves who is there first.
            resume_first = not await self._identity_is_recent()
            while not self.stopped:
                try:
                    await self._supervise(resume_first)
                    return
                except (StorageError, Unavailable) as exc:
                    # The service's own storage failed (an outage): nothing was counted
                    # against the learner. Wait, then go on with an identity check.
                    log.warning("session %s: storage unavailable (%s); retrying",
                                self.session.id, exc)  # fmt: skip
                    await asyncio.sleep(STORAGE_RETRY_S)
                    resume_first = True
        except asyncio.CancelledError:
            raise
        except Conflict:
            return  # the session ended under us
        except Exception:
            # Anything else stops this session's supervision (the page is told nothing
            # more and pauses by heartbeat): logged, never silent.
            log.exception("live supervision of session %s failed", self.session.id)
        finally:
            self.stopped = True

    async def _supervise(self, resume_first: bool) -> None:
        """Checks at random moments until the session ends or stops."""
        rng = self.manager.rng
        p = self.policy
        first_challenge = self.manager.settings.liveness.challenge_first_check
        while not self.stopped:
            if self.link is None:
                if not await self._await_reconnect():
                    return
                resume_first = True
                if first_challenge:
                    self.owe_challenges()
            if resume_first:
                resume_first = False
                if not await self.check(
                    CheckKind.identity, "resume", challenge=self._due_challenge()
                ):
                    if not await self.respond(CheckKind.identity):
                        return
                continue
            now = self.clock()
            presence_at = now + timedelta(
                seconds=draw_interval(
                    rng, p.presence_interval_min_s, p.presence_interval_mean_s,
                    p.presence_interval_max_s,
                )
            )  # fmt: skip
            if self.manager.identity_due.get(self.session.id) is None:
                self.manager.identity_due[self.session.id] = now + timedelta(
                    seconds=draw_interval(
                        rng, p.identity_interval_min_s, p.identity_interval_mean_s,
                        p.identity_interval_max_s,
                    )
                )  # fmt: skip
            identity_at = self.manager.identity_due[self.session.id]
            due = min(presence_at, identity_at)
            kind = CheckKind.identity if identity_at <= presence_at else CheckKind.presence
            if not await self._wait_until(due):
                continue  # disconnected or stopped while waiting
            if kind is CheckKind.identity:
                self.manager.identity_due.pop(self.session.id, None)
            if not await self.check(
                kind, "scheduled", scheduled_at=due, challenge=self._due_challenge()
            ):
                if self.link is None:
                    continue
                if not await self.respond(kind):
                    return

    async def _wait_until(self, due: datetime) -> bool:
        """Wait for a check's moment while watching the link. False if it went away."""
        loop = asyncio.get_running_loop()
        # The lock expires after its TTL unless refreshed: a third of it apart leaves
        # two refreshes' worth of slack.
        refresh = self.manager.locks.ttl_ms / 3000
        while not self.stopped:
            # Cleared before the link is looked at, so that a detach during an await
            # below still cuts the next nap short.
            self.woken.clear()
            if self.link is None:
                return False
            remaining = (due - self.clock()).total_seconds()
            if remaining <= 0:
                # A check can outlast a third of the lock's TTL (frames, then a busy
                # worker): it starts with the lock freshly held.
                await self._refresh_lock()
                return self.link is not None
            # Wake for the check, the heartbeat deadline, the lock, or a link change,
            # whichever comes first, rather than on a fixed tick (a few wakes a minute
            # per session instead of sixty).
            now = loop.time()
            nap = min(
                remaining,
                max(self.heartbeat_due() - now, _MIN_NAP_S),
                max(self.lock_refreshed + refresh - now, 0.0),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), nap)
            if self.link is None:
                return False
            if self.link.busy():
                self.heartbeat()
            if loop.time() > self.heartbeat_due():
                await self.detach("heartbeat_lost")
                return False
            if loop.time() - self.lock_refreshed >= refresh:
                await self._refresh_lock()
        return False

    async def _await_reconnect(self) -> bool:
        grace = self.policy.reconnect_grace_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), grace)
        if self.link is not None:
            return True
        with contextlib.suppress(Conflict):
            await self.manager.end(self.session, "disconnected")
        return False


def raise_spoof_flag(
    storage: Storage,
    session: StudySession,
    check_ids: tuple[str, ...],
    last: ev.CheckRecorded,
    at: datetime,
) -> None:
    """One `liveness_spoof` flag for repeated spoof signs in a session, with the check
    events (and their frames) as evidence (blocking)."""
    wanted = set(check_ids)
    evidence = [
        EvidenceRef(
            stored.chain_id,
            stored.seq,
            stored.hash,
            e.evidence_sha256,
            {
                "verdict": e.verdict,
                "liveness": e.liveness.verdict if e.liveness is not None else None,
            },
        )
        for stored, e in codec.decode_all(storage.ledger.read_chain(session.chain_id))
        if isinstance(e, ev.CheckRecorded) and e.check_id in wanted
    ]
    if not evidence:
        # Never a flag that points at nothing: the checks are not (yet) in the chain.
        log.error("session %s: no recorded check for a liveness_spoof flag", session.id)
        return
    raise_flag(
        storage,
        "liveness_spoof",
        session.institution_id,
        session.learner_id,
        (),
        f"{len(check_ids)} checks of session {session.id} showed signs of a photo, a replay "
        f"or a virtual camera (last: {last.verdict})",
        evidence,
        at,
        key=f"liveness_spoof:{session.id}",
        scores={"checks": len(check_ids), "suspicion": ",".join(last.suspicion)},
    )


# -- all live sessions of this process ---------------------------------------


def _refuse_in_person(state: sm.SessionState) -> None:
    # A session on the non-face path is supervised by staff in person, never by camera.
    if state.mode == "in_person":
        raise Conflict(
            "this session is on the non-face path: staff attest presence in person",
            reason="in_person_session",
        )


PAGE_MESSAGES = frozenset({"heartbeat", "hello", "signals"})


class LiveManager:
    """Live sessions of one process; `start()`/`stop()` from the app lifespan."""

    def __init__(
        self,
        ctx: Context,
        recorder: SessionRecorder,
        redis_client: aioredis.Redis,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.recorder = recorder
        # Check moments must not be predictable from the client: system randomness.
        self.rng = rng or secrets.SystemRandom()
        self.locks = LiveLocks(redis_client, self.settings.policy.live_lock_ttl_s)
        self.board = LiveBoard(redis_client)
        self.live: dict[str, LiveSession] = {}
        self.identity_due: dict[str, datetime] = {}
        self.messages_ignored = 0  # data-channel messages malformed or of no known type
        self.hub = PeerHub(self.settings.webrtc, ctx.clock, self._on_message, self._on_peer_state)

    async def state_of(self, session: StudySession) -> sm.SessionState:
        return await self.recorder.state(session)

    # -- the one live session of a learner -------------------------------------

    async def hold(self, session: StudySession) -> None:
        """Take or keep the learner's live lock for this session; 409 if another holds it."""
        if not await self.locks.hold(session.learner_id, session.id):
            raise Conflict(
                "another session of this learner is live",
                reason="session_already_open",
                session_id=await self.locks.holder(session.learner_id),
            )

    async def refuse_if_live(self, learner_id: int, open_session_id: str) -> None:
        """409 while the learner's open session is still live (its lock not expired): a new
        session may start only once the page of the old one is gone."""
        if await self.locks.holder(learner_id) == open_session_id:
            raise Conflict(
                "the learner already has a live session",
                reason="session_already_open",
                session_id=open_session_id,
            )

    async def end(self, session: StudySession, reason: str) -> None:
        """End a session from live supervision (failed windows, the page never came back)."""
        with contextlib.suppress(Conflict):
            await self.recorder.end(session, reason)
        await self.ended(session, reason)

    async def ended(self, session: StudySession, reason: str | None = None) -> None:
        """The session ended: stop supervising it, close its link, release its lock. The
        page is told, with the ledger's `reason` (a code) when it is known."""
        live = self.live.pop(session.id, None)
        self.identity_due.pop(session.id, None)
        if live is not None:
            live.stopped = True
            live.send(
                {"type": "state", "state": sm.State.ended.value, "reason": reason,
                 "at": ev.iso(self.ctx.clock())}
            )  # fmt: skip
            if live.link is not None:
                await live.link.close()
            if live.task is not None and live.task is not asyncio.current_task():
                live.task.cancel()
        await self.locks.release(session.learner_id, session.id)
        await self.board.remove(session)

    # -- attaching a learner's page ------------------------------------------

    async def _attach(
        self, session: StudySession, link: Link, language: Language | None = None
    ) -> LiveSession:
        state = await self.state_of(session)
        if state.state is sm.State.ended:
            raise Conflict("the session has already ended", reason="session_ended")
        _refuse_in_person(state)
        await self.hold(session)
        # The ledger says how the session is actually supervised, not only what the
        # page meant to use at sign-in.
        await self.recorder.mode(session, link.mode)
        live = self.live.get(session.id)
        if live is None or live.stopped:
            live = LiveSession(self, session)
            self.live[session.id] = live
            live.t = translator(language or Language(self.settings.web.default_language))
            live.attach(link)
            live.task = asyncio.ensure_future(live.run())
        else:
            if live.link is not None and live.link is not link:
                await live.link.close()
            if language is not None:
                live.t = translator(language)
            live.attach(link)
        return live

    async def offer(
        self, session: StudySession, sdp: str, sdp_type: str, language: Language | None = None
    ) -> str:
        """Answer the page's WebRTC offer; the session is supervised over it."""
        state = await self.state_of(session)
        if state.state is sm.State.ended:
            raise Conflict("the session has already ended", reason="session_ended")
        _refuse_in_person(state)
        await self.hold(session)
        answer = await self.hub.accept(session.id, sdp, sdp_type)
        live = await self._attach(
            session, WebRTCLink(self.hub, session.id, self.settings), language
        )
        # Three heartbeats fit in the timeout: one lost message is not a disconnection.
        beat = self.settings.webrtc.heartbeat_timeout_s / 3
        live.send({"type": "hello", "mode": "webrtc", "heartbeat_s": beat})
        return answer

    async def attach_upload(
        self, session: StudySession, language: Language | None = None
    ) -> UploadLink:
        """Supervise the session over the HTTP fallback."""
        live = self.live.get(session.id)
        if live is not None and isinstance(live.link, WebRTCLink):
            await self.hub.close(session.id)
        link = UploadLink()
        await self._attach(session, link, language)
        link.send({"type": "hello", "mode": "upload"})
        await self.live[session.id].send_state()
        return link

    def upload_link(self, session_id: str) -> UploadLink | None:
        live = self.live.get(session_id)
        if live is None or not isinstance(live.link, UploadLink):
            return None
        return live.link

    def heartbeat(self, session_id: str) -> bool:
        live = self.live.get(session_id)
        if live is None or live.link is None:
            return False
        live.heartbeat()
        return True

    # -- capture callbacks ---------------------------------------------------

    def _on_message(self, session_id: str, text: str) -> None:
        live = self.live.get(session_id)
        if live is None:
            self.messages_ignored += 1
            return
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):  # "[[[[..." nests past the parser's stack
            self.messages_ignored += 1
            return  # a malformed message is ignored (counted), never fatal
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.messages_ignored += 1
            return
        if message["type"] not in PAGE_MESSAGES:
            self.messages_ignored += 1
            return
        kind = message.get("type")
        if kind == "heartbeat":
            live.heartbeat()
            live.send({"type": "heartbeat", "at": ev.iso(self.ctx.clock())})
        elif kind == "hello":
            live.heartbeat()
            asyncio.ensure_future(live.send_state())
        elif kind == "signals":
            if live.take_signals(message):
                asyncio.ensure_future(live.detach(sm.PAGE_HIDDEN))

    def _on_peer_state(self, session_id: str, state: PeerState) -> None:
        live = self.live.get(session_id)
        if live is None or not isinstance(live.link, WebRTCLink):
            return
        if state is PeerState.connected:
            live.heartbeat()
            asyncio.ensure_future(live.send_state())
        elif state in (PeerState.failed, PeerState.closed, PeerState.disconnected):
            asyncio.ensure_future(live.detach(f"disconnected:{state.value}"))

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Pause every live session (the clock stops honestly) and close every peer."""
        for live in list(self.live.values()):
            live.stopped = True
            if live.task is not None:
                live.task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        self.recorder.pause(live.session, sm.SERVER_SHUTDOWN)
                        for live in self.live.values()
                    ),
                    return_exceptions=True,
                ),
                10,
            )
        await self.hub.stop()
        self.live.clear()

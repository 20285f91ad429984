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
  identity check; one live session per learner, held by an expiring Redis lock.

Every decision is a ledger event recorded through `SessionService`.
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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import redis.asyncio as aioredis

from capture.exceptions import CaptureError, NoFrames
from capture.types import PeerState
from capture.webrtc import PeerHub
from config import Settings
from storage.canonical import canonical_json
from storage.types import StudySession
from supervisor.checks.flags import record_raised
from supervisor.checks.liveness import suspicion_from_signals
from supervisor.context import Context
from supervisor.errors import Conflict, InvalidInput
from supervisor.ledger import events as ev
from supervisor.online.sessions import ACTIVE, ENDED, PAUSED, SessionService, SessionState
from supervisor.rules.schedule import draw_interval
from verification.types import ChallengeKind, CheckKind, QualityIssue

log = logging.getLogger(__name__)

# A page attaching within this many seconds of a passed identity check (the one
# that opened the session) is not asked for another one straight away.
ATTACH_GRACE_S = 30.0
# Shortest sleep of a session waiting for its next check.
_MIN_NAP_S = 0.5


# -- the one-live-session lock -------------------------------------------------

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_REFRESH = """
local v = redis.call('get', KEYS[1])
if v == false then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1
elseif v == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2]) return 1
end
return 0
"""


class LiveLocks:
    """`sv:live:learner:<id>` = session id, expiring unless refreshed."""

    def __init__(self, client: aioredis.Redis, ttl_s: float) -> None:
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)

    @staticmethod
    def key(learner_id: int) -> str:
        return f"sv:live:learner:{learner_id}"

    # While Redis is unreachable the lock fails open: learners keep studying, and
    # any overlap this lets through stays visible in the ledger (session times).

    async def hold(self, learner_id: int, session_id: str) -> bool:
        """Take or refresh the lock for this session; False if another session holds it."""
        try:
            result = await self.client.eval(
                _REFRESH, 1, self.key(learner_id), session_id, str(self.ttl_ms)
            )
        except aioredis.RedisError:
            log.warning("live lock: redis unavailable; not enforced for learner %s", learner_id)
            return True
        return bool(result)

    async def holder(self, learner_id: int) -> str | None:
        try:
            value = await self.client.get(self.key(learner_id))
        except aioredis.RedisError:
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def release(self, learner_id: int, session_id: str) -> None:
        with contextlib.suppress(aioredis.RedisError):
            await self.client.eval(_RELEASE, 1, self.key(learner_id), session_id)


# -- links to the learner's page ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Captured:
    """Frames of one check, with their times in seconds after the request."""

    frames: list[bytes | np.ndarray]
    times: list[float]


class Link(Protocol):
    mode: str

    def send(self, message: dict[str, Any]) -> None: ...

    def busy(self) -> bool:
        """True while the page is demonstrably there (e.g. a long-poll is waiting)."""
        ...

    async def frames(
        self, check_id: str, count: int, spacing: float, timeout: float, fps: float | None = None
    ) -> Captured:
        """Ask the page for `count` frames `spacing` s apart (sent at `fps`)."""
        ...

    async def close(self) -> None: ...


class WebRTCLink:
    """Frames from the session's peer connection; messages on its data channel."""

    mode = "webrtc"

    def __init__(self, hub: PeerHub, session_id: str, settings: Settings) -> None:
        self.hub = hub
        self.session_id = session_id
        self.settings = settings

    def send(self, message: dict[str, Any]) -> None:
        self.hub.send(self.session_id, json.dumps(message))

    def busy(self) -> bool:
        return False  # the data channel's heartbeats speak for the page

    def _capture(self, on: bool, check_id: str | None = None, fps: float | None = None) -> None:
        w = self.settings.webrtc
        fps = (fps or w.check_fps) if on else w.idle_fps
        self.send(
            {
                "type": "capture",
                "on": on or fps > 0,
                "fps": fps,
                "max_width": w.max_width,
                "check_id": check_id,
            }
        )

    async def frames(
        self, check_id: str, count: int, spacing: float, timeout: float, fps: float | None = None
    ) -> Captured:
        reader = self.hub.reader(self.session_id)
        asked = datetime.now(UTC)
        self._capture(True, check_id, fps)
        try:
            samples = await reader.sample(count, spacing, timeout)
        finally:
            self._capture(False)
        times = [(s.captured_at - asked).total_seconds() for s in samples]
        return Captured([s.image for s in samples], times)

    async def close(self) -> None:
        await self.hub.close(self.session_id)


@dataclass
class _FrameRequest:
    check_id: str
    count: int
    future: asyncio.Future[list[bytes]]


class UploadLink:
    """The HTTP fallback: the page long-polls for messages and posts still frames."""

    mode = "upload"
    MAX_QUEUED = 64

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.MAX_QUEUED)
        self.pending: _FrameRequest | None = None
        self.closed = False
        self.polls = 0  # long-polls waiting right now

    def busy(self) -> bool:
        return self.polls > 0

    def send(self, message: dict[str, Any]) -> None:
        if self.outbox.full():  # a page that stopped polling: keep the newest
            with contextlib.suppress(asyncio.QueueEmpty):
                self.outbox.get_nowait()
        self.outbox.put_nowait(message)

    async def frames(
        self, check_id: str, count: int, spacing: float, timeout: float, fps: float | None = None
    ) -> Captured:
        future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        self.pending = _FrameRequest(check_id, count, future)
        self.send(
            {
                "type": "capture",
                "on": True,
                "check_id": check_id,
                "count": count,
                "spacing": spacing,
            }
        )
        try:
            posted = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise NoFrames(f"no frames were posted within {timeout:.0f} s") from None
        finally:
            self.pending = None
        # The page takes them `spacing` seconds apart from the moment it is asked.
        return Captured(list(posted), [i * spacing for i in range(len(posted))])

    def waiting_for(self, check_id: str) -> bool:
        request = self.pending
        return request is not None and request.check_id == check_id and not request.future.done()

    def deliver(self, check_id: str, frames: list[bytes]) -> bool:
        """Frames posted by the page for a pending request; False if none matches."""
        request = self.pending
        if request is None or request.check_id != check_id or request.future.done():
            return False
        request.future.set_result(frames[: request.count])
        return True

    async def next_messages(self, wait: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.outbox.empty() and wait > 0:
            self.polls += 1
            try:
                out.append(await asyncio.wait_for(self.outbox.get(), wait))
            except TimeoutError:
                return out
            finally:
                self.polls -= 1
        while not self.outbox.empty():
            out.append(self.outbox.get_nowait())
        return out

    async def close(self) -> None:
        self.closed = True
        if self.pending is not None and not self.pending.future.done():
            self.pending.future.cancel()


# -- one supervised session --------------------------------------------------


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
    needs_challenge: bool = False  # a liveness failure not yet cleared by a challenge
    lock_refreshed: float = float("-inf")  # loop time the live lock was last refreshed
    woken: asyncio.Event = field(default_factory=asyncio.Event)  # the link came or went

    @property
    def sessions(self) -> SessionService:
        return self.manager.sessions

    @property
    def policy(self) -> Any:
        return self.manager.settings.policy

    def clock(self) -> datetime:
        return self.manager.ctx.clock()

    def send(self, message: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.send(message)

    async def send_state(self, state: SessionState | None = None, note: str | None = None) -> None:
        view = await self.sessions.view(self.session)
        if state is None:
            state = view.snapshot()
        credited = view.clock.credited_seconds
        running = state.state == ACTIVE and (self.last_verdict in (None, "match", "present"))
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
        await self.manager.keep_lock(self.session)
        self.lock_refreshed = asyncio.get_running_loop().time()

    def take_signals(self, message: dict[str, Any]) -> None:
        """Keep what the page reports about its camera; a hidden page is remembered
        until the next check (it can only add suspicion)."""
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
            state = await self.sessions.record(
                self.session, [ev.StateChanged(ACTIVE, PAUSED, reason, self.clock())]
            )
            await self.send_state(state, note=reason)

    # -- checks --------------------------------------------------------------

    async def check(
        self,
        kind: CheckKind,
        purpose: str,
        scheduled_at: datetime | None = None,
        challenge: ChallengeKind | None = None,
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
            self.send(
                {
                    "type": "challenge",
                    "check_id": check_id,
                    "kind": challenge.value,
                    "prompt": challenge.prompt,
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
            await self.sessions.record(self.session, [missed])
            self.last_verdict = "missed"
            self.send(
                {"type": "result", "check_id": check_id, "kind": kind.value, "verdict": "missed",
                 "passed": False, "advice": ["Keep this page open with the camera on."]}
            )  # fmt: skip
            return False
        try:
            state, recorded = await self.sessions.record_check(
                self.session,
                kind,
                captured.frames,
                "challenge" if challenge is not None else purpose,
                pause_on_failure=False,
                scheduled_at=scheduled_at,
                check_id=check_id,
                frame_times=captured.times,
                challenge=challenge.value if challenge is not None else None,
                suspicion=suspicion,
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
            await self.sessions.record(self.session, [missed])
            self.last_verdict = "missed"
            self.send(
                {"type": "result", "check_id": check_id, "kind": kind.value, "verdict": "missed",
                 "passed": False, "advice": ["The camera's pictures could not be read."]}
            )  # fmt: skip
            return False
        if isinstance(recorded, ev.CheckDeferred):
            # The service's own overload or fault: never counted against the learner.
            self.send(
                {"type": "result", "check_id": check_id, "kind": kind.value,
                 "verdict": "deferred", "passed": True, "advice": []}
            )  # fmt: skip
            return True
        self.last_verdict = recorded.verdict
        advice = [QualityIssue(i).advice for i in recorded.issues if i in QualityIssue.__members__]
        if recorded.verdict == "spoof":
            advice.append("Move a little and face the camera: the picture looked like a photo.")
        elif recorded.verdict.startswith("challenge_") and challenge is not None:
            advice.append(f"Please do as asked when prompted: {challenge.prompt}")
        self.send(
            {
                "type": "result",
                "check_id": check_id,
                "kind": kind.value,
                "verdict": recorded.verdict,
                "passed": recorded.passed,
                "advice": advice,
            }
        )
        await self.send_state(state)
        await self._count_spoof(recorded)
        liveness_failed = recorded.verdict == "spoof" or recorded.verdict.startswith("challenge_")
        if liveness_failed:
            self.needs_challenge = True
        elif challenge is not None and recorded.passed:
            self.needs_challenge = False
        if challenge is None:
            follow = self._challenge_after(recorded, purpose)
            if follow is not None:
                return await self.check(kind, purpose, challenge=follow)
        return recorded.passed

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
        verdict = (recorded.liveness or {}).get("verdict")
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
        """Repeated spoof signs in one session raise one `liveness_spoof` flag."""
        spoofy = (
            recorded.verdict in ("spoof", "challenge_failed")
            or (recorded.liveness or {}).get("verdict") == "spoof"
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
        details = canonical_json(
            {
                "session_id": self.session.id,
                "check_ids": list(self.spoof_signs),
                "suspicion": list(recorded.suspicion),
                "last_verdict": recorded.verdict,
            }
        )
        flag = await self.manager.ctx.db(
            self.manager.ctx.storage.registry.raise_flag,
            "liveness_spoof",
            details,
            self.session.institution_id,
            self.session.learner_id,
        )
        ctx = self.manager.ctx
        await ctx.db(record_raised, ctx.storage, flag, ctx.clock())

    async def respond(self, failed_kind: CheckKind) -> bool:
        """Response windows after a failed check. Returns False if the session ended."""
        windows = 0
        while not self.stopped:
            state = await self.manager.state_of(self.session)
            if state.state == ENDED:
                return False
            deadline = self.clock() + timedelta(seconds=self.policy.response_window_s)
            self.send(
                {
                    "type": "prompt",
                    "message": "Please face the camera: a check did not pass.",
                    "deadline": ev.iso(deadline),
                }
            )
            await self.send_state(state, note="please_face_the_camera")
            while self.clock() < deadline and not self.stopped:
                wait = min(self.policy.retry_interval_s, (deadline - self.clock()).total_seconds())
                if await self._sleep(wait):
                    return True
                if self.link is None:
                    break
                paused = (await self.manager.state_of(self.session)).state == PAUSED
                kind = CheckKind.identity if paused else failed_kind
                # After a liveness failure only a challenge answered can clear it.
                retry_challenge = (
                    self.manager.rng.choice(
                        [ChallengeKind(k) for k in self.manager.settings.liveness.challenge_kinds]
                    )
                    if self.needs_challenge
                    else None
                )
                if await self.check(kind, "retry", challenge=retry_challenge):
                    state = await self.manager.state_of(self.session)
                    if state.state == ACTIVE:
                        self.send({"type": "prompt", "message": None, "deadline": None})
                        return True
            if self.link is None:
                return True  # disconnected: the run loop waits for the learner
            windows += 1
            await self.sessions.record(
                self.session,
                [ev.StateChanged(ACTIVE, PAUSED, "response_window_expired", self.clock())],
            )
            if windows >= self.policy.max_failed_windows:
                with contextlib.suppress(Conflict):
                    await self.sessions.end_session(self.session, "failed_windows")
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
        passed_at = (await self.sessions.view(self.session)).identity_passed_at
        if passed_at is None:
            return False
        return (self.clock() - passed_at).total_seconds() <= ATTACH_GRACE_S

    async def run(self) -> None:
        rng = self.manager.rng
        p = self.policy
        try:
            # A page that attaches to a session it did not just open (a reload, a
            # second device, a session opened elsewhere) proves who is there first.
            resume_first = not await self._identity_is_recent()
            while not self.stopped:
                if self.link is None:
                    if not await self._await_reconnect():
                        return
                    resume_first = True
                if resume_first:
                    resume_first = False
                    if not await self.check(CheckKind.identity, "resume"):
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
                if not await self.check(kind, "scheduled", scheduled_at=due):
                    if self.link is None:
                        continue
                    if not await self.respond(kind):
                        return
        except asyncio.CancelledError:
            raise
        except Conflict:
            return  # the session ended under us
        except Exception:
            log.exception("live supervision of session %s failed", self.session.id)
        finally:
            self.stopped = True

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
            await self.sessions.end_session(self.session, "disconnected")
        return False


# -- all live sessions of this process ---------------------------------------


def _refuse_in_person(state: SessionState) -> None:
    # A session on the non-face path is supervised by staff in person, never by camera.
    if state.mode == "in_person":
        raise Conflict(
            "this session is on the non-face path: staff attest presence in person",
            reason="in_person_session",
        )


class LiveBoard:
    """The live state of every supervised session, shared in Redis for operators.

    `sv:live:s:<session_id>` is a hash of the session's latest state; each
    institution's set `sv:live:inst:<id>` lists its sessions. Entries expire
    unless refreshed, so a crashed process leaves nothing stale for long.
    """

    TTL_S = 120

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def publish(
        self,
        session: StudySession,
        *,
        state: str,
        note: str | None,
        mode: str | None,
        last_verdict: str | None,
        credited_seconds: float,
        at: datetime,
    ) -> None:
        key = f"sv:live:s:{session.id}"
        members = f"sv:live:inst:{session.institution_id}"
        fields = {
            "session_id": session.id,
            "institution_id": str(session.institution_id),
            "learner_id": str(session.learner_id),
            "course_id": str(session.course_id),
            "state": state,
            "note": note or "",
            "mode": mode or "",
            "last_verdict": last_verdict or "",
            "credited_seconds": f"{credited_seconds:.0f}",
            "updated_at": ev.iso(at),
        }
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, self.TTL_S)
            pipe.sadd(members, session.id)
            pipe.expire(members, self.TTL_S * 10)
            await pipe.execute()
        except aioredis.RedisError:
            log.warning("live board: redis unavailable")

    async def remove(self, session: StudySession) -> None:
        with contextlib.suppress(aioredis.RedisError):
            await self.client.delete(f"sv:live:s:{session.id}")
            await self.client.srem(f"sv:live:inst:{session.institution_id}", session.id)

    async def sessions(self, institution_id: int) -> list[dict[str, str]]:
        members = f"sv:live:inst:{institution_id}"
        out: list[dict[str, str]] = []
        for raw in await self.client.smembers(members):
            sid = raw.decode() if isinstance(raw, bytes) else str(raw)
            data = await self.client.hgetall(f"sv:live:s:{sid}")
            if not data:
                await self.client.srem(members, sid)  # expired
                continue
            out.append(
                {
                    (k.decode() if isinstance(k, bytes) else str(k)): (
                        v.decode() if isinstance(v, bytes) else str(v)
                    )
                    for k, v in data.items()
                }
            )
        out.sort(key=lambda d: d.get("session_id", ""))
        return out


# What a learner's page may say on the data channel; anything else is ignored.
PAGE_MESSAGES = frozenset({"heartbeat", "hello", "signals"})


class LiveManager:
    """Live sessions of one process; `start()`/`stop()` from the app lifespan."""

    def __init__(
        self,
        ctx: Context,
        sessions: SessionService,
        redis_client: aioredis.Redis,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.sessions = sessions
        # Check moments must not be predictable from the client: system randomness.
        self.rng = rng or secrets.SystemRandom()
        self.locks = LiveLocks(redis_client, self.settings.policy.live_lock_ttl_s)
        self.board = LiveBoard(redis_client)
        self.live: dict[str, LiveSession] = {}
        self.identity_due: dict[str, datetime] = {}
        self.messages_ignored = 0  # data-channel messages malformed or of no known type
        self.hub = PeerHub(self.settings.webrtc, ctx.clock, self._on_message, self._on_peer_state)
        sessions.on_activity = self.keep_lock
        sessions.on_end = self._ended
        sessions.before_start = self._before_start

    async def state_of(self, session: StudySession) -> SessionState:
        return (await self.sessions.view(session)).snapshot()

    # -- hooks from SessionService ---------------------------------------------

    async def keep_lock(self, session: StudySession) -> None:
        if not await self.locks.hold(session.learner_id, session.id):
            raise Conflict(
                "another session of this learner is live",
                reason="session_already_open",
                session_id=await self.locks.holder(session.learner_id),
            )

    async def _before_start(self, learner_id: int, open_session_id: str, commit: bool) -> None:
        """A new session may start only if the open one is no longer live (lock expired);
        with `commit` the open one is then ended as abandoned."""
        holder = await self.locks.holder(learner_id)
        if holder == open_session_id:
            raise Conflict(
                "the learner already has a live session",
                reason="session_already_open",
                session_id=open_session_id,
            )
        if not commit:
            return
        session = await self.ctx.db(self.ctx.storage.registry.get_session, open_session_id)
        with contextlib.suppress(Conflict):
            await self.sessions.end_session(session, "abandoned")

    async def _ended(self, session: StudySession) -> None:
        live = self.live.pop(session.id, None)
        self.identity_due.pop(session.id, None)
        if live is not None:
            live.stopped = True
            live.send({"type": "state", "state": ENDED, "at": ev.iso(self.ctx.clock())})
            if live.link is not None:
                await live.link.close()
            if live.task is not None and live.task is not asyncio.current_task():
                live.task.cancel()
        await self.locks.release(session.learner_id, session.id)
        await self.board.remove(session)

    # -- attaching a learner's page ------------------------------------------

    async def _attach(self, session: StudySession, link: Link) -> LiveSession:
        state = await self.state_of(session)
        if state.state == ENDED:
            raise Conflict("the session has already ended", reason="session_ended")
        _refuse_in_person(state)
        await self.keep_lock(session)
        live = self.live.get(session.id)
        if live is None or live.stopped:
            live = LiveSession(self, session)
            self.live[session.id] = live
            live.attach(link)
            live.task = asyncio.ensure_future(live.run())
        else:
            if live.link is not None and live.link is not link:
                await live.link.close()
            live.attach(link)
        return live

    async def offer(self, session: StudySession, sdp: str, sdp_type: str) -> str:
        """Answer the page's WebRTC offer; the session is supervised over it."""
        state = await self.state_of(session)
        if state.state == ENDED:
            raise Conflict("the session has already ended", reason="session_ended")
        _refuse_in_person(state)
        await self.keep_lock(session)
        answer = await self.hub.accept(session.id, sdp, sdp_type)
        live = await self._attach(session, WebRTCLink(self.hub, session.id, self.settings))
        # Three heartbeats fit in the timeout: one lost message is not a disconnection.
        beat = self.settings.webrtc.heartbeat_timeout_s / 3
        live.send({"type": "hello", "mode": "webrtc", "heartbeat_s": beat})
        return answer

    async def attach_upload(self, session: StudySession) -> UploadLink:
        """Supervise the session over the HTTP fallback."""
        live = self.live.get(session.id)
        if live is not None and isinstance(live.link, WebRTCLink):
            await self.hub.close(session.id)
        link = UploadLink()
        await self._attach(session, link)
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
            live.take_signals(message)

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
                        self.sessions.record(
                            live.session,
                            [ev.StateChanged(ACTIVE, PAUSED, "server_shutdown", self.ctx.clock())],
                        )
                        for live in self.live.values()
                    ),
                    return_exceptions=True,
                ),
                10,
            )
        await self.hub.stop()
        self.live.clear()

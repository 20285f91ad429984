"""Links to the learner's page: WebRTC (frames from the peer connection, messages on its
data channel) or the still-frame fallback (the page long-polls and posts frames).

Either way a check asks the link for frames and gets them with their capture times,
`supervisor.checks.jobs.Frame`: a decoded video frame with its receive time and pts,
or an upload's bytes with the time they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from capture.exceptions import NoFrames
from capture.protocols import FrameSource
from capture.webrtc import PeerHub
from config import Settings
from supervisor.checks.jobs import Frame, FrameStamp


@dataclass(frozen=True, slots=True)
class Captured:
    """Frames of one check, with their times in seconds after the request."""

    frames: list[Frame]
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
        reader: FrameSource = self.hub.reader(self.session_id)
        asked = datetime.now(UTC)
        self._capture(True, check_id, fps)
        try:
            samples = await reader.sample(count, spacing, timeout)
        finally:
            self._capture(False)
        times = [(s.captured_at - asked).total_seconds() for s in samples]
        frames = [
            Frame(
                s.image,
                FrameStamp(
                    s.captured_at,
                    s.pts,
                    f"{s.time_base.numerator}/{s.time_base.denominator}" if s.time_base else None,
                ),
            )
            for s in samples
        ]
        return Captured(frames, times)

    async def close(self) -> None:
        await self.hub.close(self.session_id)


@dataclass
class _FrameRequest:
    check_id: str
    nonce: str
    count: int
    deadline: float  # loop time after which the request is answered by nobody
    future: asyncio.Future[list[Frame]]


class Refusal(Exception):
    """Frames that answer no check request of the server: why (a stable reason)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class UploadLink:
    """The HTTP fallback: the page long-polls for messages and posts still frames.

    Frames are taken only in answer to a request the server issued at a moment it drew
    (`frames`): the request names its check id, a nonce and a deadline, and the page
    must post them back with the frames. Frames that answer no request, a request
    already answered, or one past its deadline are refused (`accept`), and nothing is
    recorded."""

    mode = "upload"
    MAX_QUEUED = 64
    ANSWERED_KEPT = 64  # recent check ids, to tell "answered twice" from "never asked"

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.MAX_QUEUED)
        self.pending: _FrameRequest | None = None
        self.answered: deque[str] = deque(maxlen=self.ANSWERED_KEPT)
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Frame]] = loop.create_future()
        nonce = secrets.token_urlsafe(16)
        self.pending = _FrameRequest(check_id, nonce, count, loop.time() + timeout, future)
        self.send(
            {
                "type": "capture",
                "on": True,
                "check_id": check_id,
                "nonce": nonce,
                "count": count,
                "spacing": spacing,
                "deadline": (datetime.now(UTC) + timedelta(seconds=timeout)).isoformat(),
            }
        )
        try:
            posted = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise NoFrames(f"no frames were posted within {timeout:.0f} s") from None
        finally:
            self.pending = None
            self.answered.append(check_id)
        # The page takes them `spacing` seconds apart from the moment it is asked.
        return Captured(list(posted), [i * spacing for i in range(len(posted))])

    def accept(self, check_id: str, nonce: str) -> None:
        """Raise `Refusal` unless frames for `check_id` with `nonce` answer the request
        waiting now, before its deadline."""
        request = self.pending
        if request is None or request.check_id != check_id or request.future.done():
            if check_id in self.answered:
                raise Refusal("already_answered", "this check was already answered or is over")
            raise Refusal("no_pending_check", "the server asked for no such check")
        if not secrets.compare_digest(request.nonce, nonce):
            raise Refusal("wrong_nonce", "the frames do not answer the server's request")
        if asyncio.get_running_loop().time() > request.deadline:
            raise Refusal("check_expired", "the check's response window is over")

    def deliver(self, check_id: str, nonce: str, frames: list[bytes]) -> None:
        """Frames posted by the page for the waiting request (`accept` first)."""
        self.accept(check_id, nonce)
        request = self.pending
        assert request is not None
        stamp = FrameStamp(datetime.now(UTC))  # when they arrived
        request.future.set_result([Frame(f, stamp) for f in frames[: request.count]])

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

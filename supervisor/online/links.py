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
from dataclasses import dataclass
from datetime import UTC, datetime
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
    count: int
    future: asyncio.Future[list[Frame]]


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
        future: asyncio.Future[list[Frame]] = asyncio.get_running_loop().create_future()
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
        stamp = FrameStamp(datetime.now(UTC))  # when they arrived
        request.future.set_result([Frame(f, stamp) for f in frames[: request.count]])
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

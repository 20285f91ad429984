"""Protocols of capture's replaceable parts: what `supervisor/` names instead of a class.

`FrameSource` is any source of a video's frames that samples on request: the
WebRTC track reader (`capture.webrtc.TrackReader`) and the camera source by URL
(`capture.stream.StreamSource`). `CameraFeed` adds what a camera source also
offers: its own reader, started and watched by the caller.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from capture.types import FrameSample, SourceStatus


@runtime_checkable
class FrameSource(Protocol):
    """Frames of one video source, sampled at the moments the caller asks for."""

    async def sample(self, count: int, spacing: float, timeout: float) -> list[FrameSample]:
        """`count` frames that arrive from now on, at least `spacing` seconds apart,
        within `timeout` seconds overall. Returns what arrived (possibly fewer); raises
        a `CaptureError` (`NoFrames`, `SourceDown`) when nothing did."""
        ...

    async def stop(self) -> None:
        """Stop reading; a sample waiting for frames fails. Idempotent."""
        ...


@runtime_checkable
class CameraFeed(FrameSource, Protocol):
    """A frame source that reads on its own once started and reports its state."""

    @property
    def source_id(self) -> str:
        """The caller's name for the source, carried by every `SourceStatus`."""
        ...

    async def start(self) -> None:
        """Start reading (returns at once); the state goes to `live` on the first frame."""
        ...

    def status(self) -> SourceStatus:
        """The state now, with the last error and the counts (URL redacted)."""
        ...

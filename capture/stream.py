"""Classroom cameras by URL: RTSP, HTTP(S) MJPEG, HLS or a video file, read with PyAV.

Each `StreamSource` owns one thread that opens and reads its source (PyAV calls
block; the event loop never waits on them) and reconnects with exponential
back-off when the source drops or cannot be opened. Its `state` says plainly
what is going on (`connecting`, `live`, `reconnecting`, `unreachable`,
`not_a_video`, `ended`) with the last error, so that a supervisor can record a
camera outage as an outage and never as the absence of the people in the room.

Decoding on demand. The thread reads (demuxes) every packet, which keeps the
connection alive and notices a drop at once, but decodes only when a sample has
been asked for: a roll call every few minutes needs a frame, not 25 a second.
For intra-only codecs (MJPEG) the next packet is decoded by itself; for
inter-coded video (H.264, H.265) decoding starts at the next key frame and
continues while samples keep being asked for (`BURST_LINGER_S`), so a camera's
key-frame interval bounds how long a sample waits. Nothing is queued: a frame
goes only to the samples waiting when it was decoded, and every packet never
handed out is counted as dropped.

Video files are paced at their own frame rate (as a camera would deliver them)
and end in `ended`. File URLs are opened as given: which files may be used is the
caller's policy. URLs may carry credentials; statuses and errors show them
redacted (`redact_url`).

Network cameras and the service's own network. With a `NetworkPolicy`, every
connection attempt first resolves the camera's host and checks every address
(`capture.netguard`), then connects to the checked address:
- HTTP(S): FFmpeg connects to the address, the camera's name in its Host header;
  redirects are never followed (`max_redirects=0`) and only demuxers that open
  nothing else are probed (`HTTP_FORMATS`);
- HLS (a path ending in `.m3u8`): FFmpeg opens nothing itself; every URL (playlist,
  reloads, segments) goes through `capture.hls.HlsOpener`, checked, pinned and
  bounded; one refused URL ends the read;
- RTSP(S): FFmpeg talks, over TCP interleaved only, to a relay on 127.0.0.1
  (`capture.rtsp_relay`) connected to the checked address, which cuts the
  connection on a redirect (FFmpeg would follow one anywhere) or anything else it
  does not pass; stop() closes the relay, which ends a blocked read at once.
A network camera's failure reads the same whatever happened underneath (nothing
listening, connection refused, a service that is not a camera, a timeout, a refused
playlist URL, a cut relay): state `unreachable` (or `reconnecting` after a drop)
with `NETWORK_FAILURE` as its error, so that the camera list cannot be used to tell
open ports from closed ones; the precise cause goes to the log only. It also takes
the same time: a failure before an attempt's first frame is reported no sooner than
`camera_open_timeout_s` after the attempt began (`_even_out`: a wait in the reader
thread, holding no lock, cut short by stop()). Only the camera's own address being
refused by the policy reads differently (`TARGET_REFUSED`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from fractions import Fraction
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import av
import numpy as np

from capture.exceptions import SourceDown, TargetRefused
from capture.hls import HlsOpener, is_hls
from capture.netguard import check_target, host_header, pinned_url
from capture.rtsp_relay import RtspRelay
from capture.types import (
    FrameSample,
    Image,
    NetworkPolicy,
    SourceState,
    SourceStats,
    SourceStatus,
)
from config import ClassroomSettings

log = logging.getLogger(__name__)

StatusHandler = Callable[[SourceStatus], None]

# Inter-coded video keeps decoding this long after the last sample request, so
# the frames of one roll call (a second or so apart) need not wait for key frames.
BURST_LINGER_S: Final = 3.0
# A source that opens but yields this many packets from a key frame on without
# one decodable frame, or this many packets with no key frame at all, is not a
# video (for example a page of text that a demuxer half-recognised).
PROBE_PACKETS: Final = 64
PACKETS_BEFORE_KEYFRAME: Final = 3000
# The thread is joined for at most this long beyond the read timeout at stop().
JOIN_GRACE_S: Final = 2.0
# Demuxers an HTTP(S) camera may be read with: single streams only (no playlist).
HTTP_FORMATS: Final = "mpjpeg,mjpeg,jpeg_pipe,mpegts,flv,h264,hevc,matroska,mov,avi"
# What a network camera's failure says, whatever its cause (see the module's docstring).
NETWORK_FAILURE: Final = "no video from the camera (unreachable, or not a camera stream)"
NETWORK_DROPPED: Final = "the camera stopped sending video"
TARGET_REFUSED: Final = "the camera's address is not allowed by this server's camera networks"

# States in which a sample is refused at once instead of waiting for a frame.
_DOWN_NOW: Final = frozenset(
    {SourceState.unreachable, SourceState.not_a_video, SourceState.ended, SourceState.stopped}
)
_NOT_VIDEO_ERRORS: tuple[type[BaseException], ...] = (
    av.error.InvalidDataError,
    av.error.DecoderNotFoundError,
    av.error.DemuxerNotFoundError,
    av.error.PatchWelcomeError,
)


class _NotAVideo(Exception):
    pass


class _EndOfStream(Exception):
    pass


class _PlaylistRefused(Exception):
    """A URL an HLS playlist named was refused or failed (reads as the network failure)."""


def redact_url(url: str) -> str:
    """The URL without user name, password or query (they may hold secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def file_path(url: str) -> str | None:
    """The local path of a `file:` URL or a plain path; None for a network URL."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme == "" and not parts.netloc:
        return url
    return None


class StreamSource:
    """One camera: a reader thread, its state, and samples on request."""

    def __init__(
        self,
        source_id: str,
        url: str,
        settings: ClassroomSettings,
        clock: Callable[[], datetime],
        on_status: StatusHandler | None = None,
        policy: NetworkPolicy | None = None,
    ) -> None:
        """`policy`: where a network camera may be, checked at every connection; None
        checks nothing (video files, and tests that serve cameras on loopback)."""
        self.source_id = source_id
        self.url = url
        self.redacted = redact_url(url)
        self.settings = settings
        self._clock = clock
        self._on_status = on_status
        self._path = file_path(url)
        self._policy = policy
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[concurrent.futures.Future[FrameSample]] = []
        self._burst_until = 0.0
        self._state = SourceState.connecting
        self._since = clock()
        self._last_error: str | None = None
        self._attempts = 0
        self._size: tuple[int, int] | None = None
        self._received = 0
        self._decoded = 0
        self._sampled = 0
        self._reconnects = 0
        self._went_live_now = False  # this connection delivered a frame
        self._jitter = random.Random()  # back-off jitter only; nothing secret
        self._relay: RtspRelay | None = None  # the RTSP relay of the current connection

    @property
    def is_file(self) -> bool:
        return self._path is not None

    # -- event-loop side -------------------------------------------------------

    async def start(self) -> None:
        """Start reading in the source's own thread (returns at once)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"camera-{self.source_id}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop reading; waiting samples fail. Idempotent."""
        self._stop.set()
        self._set_state(SourceState.stopped, None)
        with self._lock:
            relay = self._relay
        if relay is not None:
            relay.close()  # a read blocked on the relay ends now
        thread, self._thread = self._thread, None
        if thread is not None:
            # A blocking read returns within the read timeout at the latest.
            await asyncio.to_thread(thread.join, self.settings.camera_read_timeout_s + JOIN_GRACE_S)

    def status(self) -> SourceStatus:
        with self._lock:
            return self._status_locked()

    async def next_frame(self, timeout: float) -> FrameSample:
        """The next frame decoded after this call, as RGB.

        Raises `SourceDown` at once when the source is unreachable, not a video,
        ended or stopped, and after `timeout` seconds when no frame came.
        """
        with self._lock:
            state, error = self._state, self._last_error
            if state in _DOWN_NOW:
                raise SourceDown(f"camera {self.source_id} is {state.value}", state.value, error)
            waiter: concurrent.futures.Future[FrameSample] = concurrent.futures.Future()
            self._waiters.append(waiter)
            self._burst_until = time.monotonic() + BURST_LINGER_S
        try:
            return await asyncio.wait_for(asyncio.wrap_future(waiter), timeout)
        except TimeoutError:
            with self._lock:
                state, error = self._state, self._last_error
            raise SourceDown(
                f"no frame from camera {self.source_id} within {timeout:.1f} s",
                state.value,
                error,
            ) from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            waiter.cancel()

    async def sample(self, count: int, spacing: float, timeout: float) -> list[FrameSample]:
        """`count` frames at least `spacing` seconds apart, within `timeout` overall.

        Returns what arrived (possibly fewer); raises `SourceDown` if nothing did.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[FrameSample] = []
        last_error: SourceDown | None = None
        while len(out) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                out.append(await self.next_frame(remaining))
            except SourceDown as exc:
                last_error = exc
                break
            if len(out) < count and spacing > 0:
                await asyncio.sleep(min(spacing, max(deadline - loop.time(), 0)))
        if not out:
            raise last_error or SourceDown(
                f"no frame from camera {self.source_id} within {timeout:.1f} s",
                self.status().state.value,
                self.status().last_error,
            )
        return out

    # -- reader thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            self._read_forever()
        except Exception as exc:  # a bug here must show, and must not look like video
            log.exception("camera %s reader failed", self.source_id)
            self._set_state(SourceState.unreachable, f"internal error: {type(exc).__name__}")

    def _read_forever(self) -> None:
        s = self.settings
        delay = s.camera_backoff_initial_s
        while not self._stop.is_set():
            self._went_live_now = False
            attempt_started = time.monotonic()
            try:
                self._read_once()
                if self._stop.is_set():
                    break
                raise _EndOfStream("the stream ended")
            except _EndOfStream as exc:
                if self.is_file and self._went_live_now:
                    self._set_state(SourceState.ended, "end of file")
                    return
                if self._even_out(attempt_started):
                    break
                self._failed(exc, self._went_live_now)
            except Exception as exc:  # any failure of the source is reported, never fatal
                if self._stop.is_set() or self._even_out(attempt_started):
                    break
                self._failed(exc, self._went_live_now)
            if self._went_live_now:
                delay = s.camera_backoff_initial_s
            # Back-off: doubles per failed attempt, capped, with a little jitter so
            # that cameras which dropped together do not retry in lockstep.
            if self._stop.wait(delay * self._jitter.uniform(0.85, 1.15)):
                break
            delay = min(delay * 2, s.camera_backoff_max_s)

    def _even_out(self, attempt_started: float) -> bool:
        """Under a network policy, a failure before the first frame is reported only
        when the open timeout has passed since the attempt began: a refused connection,
        a service that is not a camera and a silent port then take the same time, so
        that timing does not tell port states apart either. Waits in the reader thread,
        holding no lock, and ends at once on stop(); True if stopped meanwhile."""
        if self._policy is None or self.is_file or self._went_live_now:
            return False
        remaining = attempt_started + self.settings.camera_open_timeout_s - time.monotonic()
        return remaining > 0 and self._stop.wait(remaining)

    def _failed(self, exc: BaseException, was_live: bool) -> None:
        error = self._describe(exc)
        network = not self.is_file
        not_video = not network and isinstance(exc, (_NotAVideo, *_NOT_VIDEO_ERRORS))
        with self._lock:
            self._attempts += 1
            attempts = self._attempts
            if was_live:
                self._reconnects += 1
            current = self._state
        if not_video:
            state = SourceState.not_a_video
        elif was_live or (
            current is SourceState.reconnecting
            and attempts < self.settings.camera_unreachable_after
        ):
            state = SourceState.reconnecting
        else:
            state = SourceState.unreachable
        # The cause, precise, for the log; for a network camera the status says only
        # that no video came (an open port and a closed one must read the same).
        log.info("camera %s (%s): %s: %s", self.source_id, self.redacted, state.value, error)
        if network:
            if isinstance(exc, TargetRefused):
                error = TARGET_REFUSED
            elif state is SourceState.reconnecting:
                error = NETWORK_DROPPED
            else:
                error = NETWORK_FAILURE
        self._set_state(state, error)

    def _read_once(self) -> None:
        """Open the source and read it until it fails or ends."""
        s = self.settings
        options: dict[str, str] = {}
        target = self._path if self._path is not None else self.url
        scheme = urlsplit(self.url).scheme.lower()
        relay: RtspRelay | None = None
        if self._path is None and self._policy is not None:
            # Checked now, right before connecting (the name may resolve elsewhere than
            # at registration), and connected to the address that was checked.
            checked = check_target(self.url, self._policy)
            target = pinned_url(checked)
            if scheme in ("http", "https"):
                options["headers"] = f"Host: {host_header(checked)}\r\n"
            if scheme in ("rtsp", "rtsps"):
                # FFmpeg would follow an RTSP redirect anywhere: it talks to a relay
                # that refuses one, over TCP interleaved only (`capture.rtsp_relay`).
                relay = RtspRelay(
                    checked,
                    max(s.camera_open_timeout_s, s.camera_read_timeout_s),
                    self.redacted,
                )
                with self._lock:
                    self._relay = relay
                if self._stop.is_set():
                    relay.close()
                    return
                try:
                    target = relay.open()
                except BaseException:
                    relay.close()
                    raise
        hls: HlsOpener | None = None
        container_format: str | None = None
        if scheme in ("http", "https") and is_hls(self.url):
            # A playlist names more URLs: FFmpeg opens none itself; every open goes
            # through the opener, which checks, pins and bounds it (`capture.hls`).
            hls = HlsOpener(
                self._policy,
                s.camera_read_timeout_s,
                s.camera_open_timeout_s + s.camera_read_timeout_s,
                self.redacted,
                self._stop,
            )
            target = self.url
            container_format = "hls"
            options.pop("headers", None)
            options["format_whitelist"] = HTTP_FORMATS + ",hls"
            # The demuxer's keep-alive reuses FFmpeg's own HTTP connection: off.
            options["http_persistent"] = "0"
            options["http_multiple"] = "0"
        elif scheme in ("http", "https"):
            # A redirect could lead anywhere, unchecked: refused, never followed. So
            # could a playlist (HLS, DASH) or any demuxer that opens more URLs: only
            # formats that read the one stream they were given are probed.
            options["max_redirects"] = "0"
            options["format_whitelist"] = HTTP_FORMATS
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = "tcp" if relay is not None else s.rtsp_transport
        try:
            container = av.open(
                target,
                format=container_format,
                options=options,
                timeout=(s.camera_open_timeout_s, s.camera_read_timeout_s),
                io_open=hls,
            )
        except BaseException as exc:
            if relay is not None:
                relay.close()
            if hls is not None and hls.refused is not None:
                raise _PlaylistRefused(hls.refused) from exc
            raise
        try:
            if not container.streams.video:
                raise _NotAVideo("the source has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            ctx.thread_count = 1  # one core per camera at most, and honest CPU figures
            intra_only = bool(ctx.codec.intra_only)
            decoding = False
            probing = True
            probe_left = PROBE_PACKETS
            before_key = PACKETS_BEFORE_KEYFRAME
            pace_start: float | None = None
            first_ts: float | None = None
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                if hls is not None and hls.refused is not None:
                    # A URL of the playlist was refused: the read ends here.
                    raise _PlaylistRefused(hls.refused)
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                if self._path is not None:
                    pace_start, first_ts = self._pace(packet, pace_start, first_ts)
                    if self._stop.is_set():
                        return
                with self._lock:
                    self._received += 1
                    want = bool(self._waiters) or time.monotonic() < self._burst_until
                if probing:
                    # Decode from the first key frame until a frame comes out: this
                    # proves it is video and gives its size.
                    if not decoding and not packet.is_keyframe:
                        before_key -= 1
                        if before_key <= 0:
                            raise _NotAVideo("no key frame in the first packets")
                        continue
                    decoding = True
                    try:
                        frames = ctx.decode(packet)
                    except _NOT_VIDEO_ERRORS:
                        frames = []
                    if not frames:
                        probe_left -= 1
                        if probe_left <= 0:
                            raise _NotAVideo("no decodable video frame in the first packets")
                        continue
                    probing = False
                    self._went_live(frames[0])
                    self._deliver(frames)
                    decoding = not intra_only
                    continue
                if not want:
                    if decoding and not intra_only:
                        ctx.flush_buffers()
                        decoding = False
                    continue
                if not decoding and not intra_only:
                    if not packet.is_keyframe:
                        continue
                    decoding = True
                try:
                    frames = ctx.decode(packet)
                except av.error.InvalidDataError:
                    continue  # one damaged packet; the next key frame recovers
                self._deliver(frames)
        finally:
            with contextlib.suppress(Exception):
                container.close()
            if relay is not None:
                relay.close()

    def _pace(
        self, packet: av.Packet, start: float | None, first: float | None
    ) -> tuple[float | None, float | None]:
        """Sleep until a file's packet is due, so a file plays as a live camera."""
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is None or packet.time_base is None:
            return start, first
        seconds = float(ts * packet.time_base)
        now = time.monotonic()
        if start is None or first is None:
            return now, seconds
        wait = start + (seconds - first) - now
        if wait > 0:
            self._stop.wait(wait)
        return start, first

    def _went_live(self, frame: av.VideoFrame) -> None:
        self._went_live_now = True
        with self._lock:
            self._attempts = 0
            self._size = (frame.width, frame.height)
        self._set_state(SourceState.live, None)

    def _deliver(self, frames: list[av.VideoFrame]) -> None:
        for frame in frames:
            with self._lock:
                self._decoded += 1
                waiters, self._waiters = self._waiters, []
            waiters = [w for w in waiters if not w.done()]
            if not waiters:
                continue
            sample = FrameSample(
                self.source_id,
                self._clock(),
                self._rgb(frame),
                frame.pts,
                Fraction(frame.time_base) if frame.time_base is not None else None,
            )
            with self._lock:
                self._sampled += 1
            for waiter in waiters:
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    waiter.set_result(sample)

    def _rgb(self, frame: av.VideoFrame) -> Image:
        limit = self.settings.max_frame_width
        if frame.width > limit:
            height = max(2, round(frame.height * limit / frame.width / 2) * 2)
            frame = frame.reformat(width=limit, height=height, format="rgb24")
            return np.ascontiguousarray(frame.to_ndarray(), dtype=np.uint8)
        return np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)

    # -- state -----------------------------------------------------------------

    def _set_state(self, state: SourceState, error: str | None) -> None:
        with self._lock:
            if self._state is SourceState.stopped and state is not SourceState.stopped:
                return  # stopping wins over whatever the thread was doing
            changed = state is not self._state
            if changed:
                self._state = state
                self._since = self._clock()
            self._last_error = error if error is not None else self._last_error
            if state is SourceState.live:
                self._last_error = None
            failed: list[concurrent.futures.Future[FrameSample]] = []
            if state in _DOWN_NOW:
                failed, self._waiters = self._waiters, []
            status = self._status_locked()
        for waiter in failed:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                waiter.set_exception(
                    SourceDown(f"camera {self.source_id} is {state.value}", state.value, error)
                )
        if changed and self._on_status is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
                self._loop.call_soon_threadsafe(self._on_status, status)

    def _status_locked(self) -> SourceStatus:
        size = self._size
        return SourceStatus(
            self.source_id,
            self.redacted,
            self._state,
            self._since,
            self._last_error,
            self._attempts,
            size[0] if size else None,
            size[1] if size else None,
            SourceStats(
                self._received,
                self._decoded,
                self._sampled,
                max(self._received - self._sampled, 0),
                self._reconnects,
            ),
        )

    def _describe(self, exc: BaseException) -> str:
        """A short error text without the URL (it may carry credentials)."""
        if isinstance(exc, av.error.FFmpegError):
            text = f"{type(exc).__name__}: {exc.strerror}"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in {self.url, self._path or ""} - {""}:
            text = text.replace(secret, self.redacted)
        return text[:300]

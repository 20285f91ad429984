"""Learners' webcams over WebRTC (aiortc): one peer connection and one reader per session.

aiortc decodes every frame it receives in its own thread and queues it without
bound, so a reader must pull frames continuously: it keeps only the latest
decoded frame, counts the ones replaced before anybody sampled them, and
converts a frame to an array only when it is handed out. The real saving is
upstream: the supervisor asks the browser (over the data channel) to send only
while a check samples.

Every peer connection is closed when it fails, when its session closes it, and
at `stop()`; a refused offer leaves nothing open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from capture.exceptions import InvalidOffer, NoFrames, NotConnected, PeerExists, TooManyPeers
from capture.types import FrameSample, HubStats, Image, PeerState, ReaderStats
from config import WebRTCSettings

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, str], None]  # (session_id, text)
StateHandler = Callable[[str, PeerState], None]  # (session_id, state)

_MEDIA_LINE = re.compile(r"^m=(\w+) ", re.MULTILINE)
# The header extension that receive-side bandwidth estimation (REMB) needs; without it
# in the offer, aiortc's answer leaves it out and the browser never sends it.
_ABS_SEND_TIME = re.compile(
    r"^a=extmap:\d+(?:/\w+)? http://www\.webrtc\.org/experiments/rtp-hdrext/abs-send-time\r?\n",
    re.MULTILINE,
)
# Data-channel messages are small JSON texts; anything larger is dropped unread.
MAX_MESSAGE_BYTES = 16 * 1024
MAX_EARLY_MESSAGES = 16


class TrackReader:
    """Reads one video track continuously and keeps only its latest frame."""

    def __init__(self, session_id: str, track: MediaStreamTrack, clock: Callable[[], datetime]):
        self.session_id = session_id
        self._track = track
        self._clock = clock
        self._latest: av.VideoFrame | None = None
        self._latest_at: datetime | None = None
        self._seq = 0  # frames received so far
        self._handed = 0  # seq of the last frame handed out
        self._arrived = asyncio.Event()
        self.received = 0
        self.dropped = 0
        self.sampled = 0
        self._task: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                self.received += 1
                if self._latest is not None and self._handed < self._seq:
                    self.dropped += 1
                self._latest = frame
                self._latest_at = self._clock()
                self._seq += 1
                self._arrived.set()
        except MediaStreamError:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # a decoder failure must not take the service down
            log.exception("video reader of session %s failed", self.session_id)
        finally:
            self.ended.set()
            self._arrived.set()

    @property
    def seq(self) -> int:
        return self._seq

    def stats(self) -> ReaderStats:
        return ReaderStats(self.received, self.dropped, self.sampled)

    async def next_frame(self, after_seq: int, timeout: float) -> tuple[int, FrameSample]:
        """The first frame received after `after_seq` (the latest one, if several), as RGB.

        Raises `NoFrames` when none arrives within `timeout` seconds or the track ended.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._seq <= after_seq:
            if self.ended.is_set():
                raise NoFrames("the video track has ended")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoFrames(f"no video frame arrived within {timeout:.1f} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        frame, at, seq = self._latest, self._latest_at, self._seq
        assert frame is not None and at is not None
        self._handed = seq
        self.sampled += 1
        # Colour conversion is CPU work: keep it off the event loop.
        image = await asyncio.to_thread(_rgb, frame)
        time_base = Fraction(frame.time_base) if frame.time_base is not None else None
        return seq, FrameSample(self.session_id, at, image, frame.pts, time_base)

    async def sample(self, count: int, spacing: float, timeout: float) -> list[FrameSample]:
        """`count` frames received from now on, at least `spacing` seconds apart.

        Returns what arrived before `timeout` (possibly fewer); raises `NoFrames`
        if none did.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[FrameSample] = []
        last = self._seq
        while len(out) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                last, sample = await self.next_frame(last, remaining)
            except NoFrames:
                break
            out.append(sample)
            if len(out) < count and spacing > 0:
                await asyncio.sleep(min(spacing, max(deadline - loop.time(), 0)))
        if not out:
            raise NoFrames(f"no video frame arrived within {timeout:.1f} s")
        return out

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _rgb(frame: av.VideoFrame) -> Image:
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


@dataclass(eq=False)
class _Peer:
    session_id: str
    pc: RTCPeerConnection
    state: PeerState = PeerState.connecting
    reader: TrackReader | None = None
    channel: RTCDataChannel | None = None
    has_video: asyncio.Event = field(default_factory=asyncio.Event)
    watchdog: asyncio.Task[None] | None = None
    # Messages sent before the page's channel opened (the hello, the first state):
    # delivered in order when it does; the oldest go past `MAX_EARLY_MESSAGES`.
    early: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_EARLY_MESSAGES))


class PeerHub:
    """The peer connections of one process, one per session."""

    def __init__(
        self,
        settings: WebRTCSettings,
        clock: Callable[[], datetime],
        on_message: MessageHandler,
        on_state: StateHandler,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._on_message = on_message
        self._on_state = on_state
        self._peers: dict[str, _Peer] = {}
        self._closed_stats = ReaderStats(0, 0, 0)
        self.offers_refused = 0
        self.messages_dropped = 0
        self._stopping = False

    # -- offers ------------------------------------------------------------

    def validate_offer(self, sdp: str, sdp_type: str) -> None:
        """Refuse what is plainly not a usable video offer before aiortc parses it."""
        if sdp_type != "offer":
            raise InvalidOffer(f"expected an SDP offer, got type {sdp_type!r}", "invalid_sdp")
        if len(sdp.encode("utf-8", "replace")) > self.settings.max_sdp_bytes:
            raise InvalidOffer(
                f"the SDP is larger than {self.settings.max_sdp_bytes} bytes", "sdp_too_large"
            )
        if not sdp.startswith("v=0"):
            raise InvalidOffer("the SDP does not start with v=0", "invalid_sdp")
        media = _MEDIA_LINE.findall(sdp)
        if "video" not in media:
            raise InvalidOffer("the offer has no video", "no_video")

    async def accept(self, session_id: str, sdp: str, sdp_type: str) -> str:
        """Answer a browser's offer for a session; returns the answer SDP.

        Raises `InvalidOffer`, `PeerExists` (a live connection already serves the
        session) or `TooManyPeers`. On any failure the new connection is closed.
        """
        try:
            self.validate_offer(sdp, sdp_type)
            old = self._peers.get(session_id)
            if old is not None and old.state.live:
                raise PeerExists("this session already has a live video connection")
            if old is not None:
                await self.close(session_id)
            if len(self._peers) >= self.settings.max_peers or self._stopping:
                raise TooManyPeers("the server carries its maximum of video connections")
        except (InvalidOffer, PeerExists, TooManyPeers):
            self.offers_refused += 1
            raise
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = _Peer(session_id, pc)
        self._wire(peer)
        self._peers[session_id] = peer
        if not self.settings.receive_bandwidth_estimation:
            sdp = _ABS_SEND_TIME.sub("", sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.direction = "recvonly"
                else:
                    transceiver.direction = "inactive"
            answer = await pc.createAnswer()
            await asyncio.wait_for(
                pc.setLocalDescription(answer), self.settings.ice_gathering_timeout_s
            )
        except Exception as exc:
            self.offers_refused += 1
            await self.close(session_id)
            if isinstance(exc, TimeoutError):
                raise InvalidOffer("ICE gathering did not complete", "ice_failed") from None
            raise InvalidOffer(f"the SDP offer could not be used: {exc}", "invalid_sdp") from None
        peer.watchdog = asyncio.ensure_future(self._connect_watchdog(peer))
        local = pc.localDescription
        assert local is not None
        return str(local.sdp)

    def _wire(self, peer: _Peer) -> None:
        pc = peer.pc

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind != "video" or peer.reader is not None:
                return
            reader = TrackReader(peer.session_id, track, self._clock)
            peer.reader = reader
            reader.start()
            peer.has_video.set()

        @pc.on("datachannel")
        def _on_channel(channel: RTCDataChannel) -> None:
            if peer.channel is not None:
                channel.close()
                return
            peer.channel = channel
            if channel.readyState == "open":
                self._flush(peer)
            else:
                channel.on("open", lambda: self._flush(peer))

            @channel.on("message")
            def _on_message(message: object) -> None:
                if not isinstance(message, str) or len(message) > MAX_MESSAGE_BYTES:
                    self.messages_dropped += 1
                    return
                try:
                    self._on_message(peer.session_id, message)
                except Exception:
                    # An exception here would unwind into aiortc's SCTP receive loop
                    # and break the learner's connection: count it, log it, go on.
                    self.messages_dropped += 1
                    log.exception("data-channel message of session %s", peer.session_id)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = {
                "connected": PeerState.connected,
                "failed": PeerState.failed,
                "closed": PeerState.closed,
                "disconnected": PeerState.disconnected,
            }.get(pc.connectionState)
            if state is None or state is peer.state:
                return
            peer.state = state
            if self._peers.get(peer.session_id) is peer:
                self._on_state(peer.session_id, state)
            if state in (PeerState.failed, PeerState.closed):
                await self.close(peer.session_id, only=peer)

    async def _connect_watchdog(self, peer: _Peer) -> None:
        await asyncio.sleep(self.settings.connect_timeout_s)
        if peer.state is PeerState.connecting and self._peers.get(peer.session_id) is peer:
            log.info("peer of session %s did not connect in time", peer.session_id)
            peer.state = PeerState.failed
            self._on_state(peer.session_id, PeerState.failed)
            await self.close(peer.session_id, only=peer)

    # -- using a connection ------------------------------------------------

    def state(self, session_id: str) -> PeerState | None:
        peer = self._peers.get(session_id)
        return peer.state if peer else None

    def reader(self, session_id: str) -> TrackReader:
        peer = self._peers.get(session_id)
        if peer is None or peer.reader is None or not peer.state.live:
            raise NotConnected("no live video for this session")
        return peer.reader

    def send(self, session_id: str, text: str) -> bool:
        """Send a text message on the session's data channel, or keep it until the page
        opens the channel; False if there is no connection or the channel has closed."""
        peer = self._peers.get(session_id)
        if peer is None:
            return False
        channel = peer.channel
        if channel is None or channel.readyState == "connecting":
            peer.early.append(text)
            return True
        if channel.readyState != "open":
            return False
        try:
            channel.send(text)
        except Exception:  # a closing channel; the state handler reports it
            return False
        return True

    def _flush(self, peer: _Peer) -> None:
        while peer.early and peer.channel is not None and peer.channel.readyState == "open":
            text = peer.early.popleft()
            with contextlib.suppress(Exception):
                peer.channel.send(text)

    async def close(self, session_id: str, only: _Peer | None = None) -> None:
        """Close the session's connection, its reader and its channel (idempotent)."""
        peer = self._peers.get(session_id)
        if peer is None or (only is not None and peer is not only):
            return
        del self._peers[session_id]
        if peer.watchdog is not None and peer.watchdog is not asyncio.current_task():
            peer.watchdog.cancel()
        if peer.reader is not None:
            s = peer.reader.stats()
            c = self._closed_stats
            self._closed_stats = ReaderStats(
                c.received + s.received, c.dropped + s.dropped, c.sampled + s.sampled
            )
            await peer.reader.stop()
        if peer.channel is not None:
            with contextlib.suppress(Exception):
                peer.channel.close()
        with contextlib.suppress(Exception):
            await peer.pc.close()
        if peer.state.live:
            peer.state = PeerState.closed

    async def stop(self) -> None:
        """Close every connection (app shutdown)."""
        self._stopping = True
        await asyncio.gather(
            *(self.close(sid) for sid in list(self._peers)), return_exceptions=True
        )

    def stats(self) -> HubStats:
        received, dropped, sampled = (
            self._closed_stats.received,
            self._closed_stats.dropped,
            self._closed_stats.sampled,
        )
        connected = 0
        for peer in self._peers.values():
            if peer.state is PeerState.connected:
                connected += 1
            if peer.reader is not None:
                s = peer.reader.stats()
                received += s.received
                dropped += s.dropped
                sampled += s.sampled
        return HubStats(
            len(self._peers),
            connected,
            received,
            dropped,
            sampled,
            self.offers_refused,
            self.messages_dropped,
        )

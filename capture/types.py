"""Values that cross the capture boundary. Frozen; no aiortc, av or cv2 imports."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class FrameSample:
    """One decoded frame: RGB uint8 (H, W, 3), with the server's receive time.

    `pts`/`time_base` are the source's own timestamps (None where it has none):
    `pts * time_base` seconds on the source's clock.
    """

    session_id: str
    captured_at: datetime
    image: Image
    pts: int | None
    time_base: Fraction | None


class PeerState(StrEnum):
    connecting = "connecting"
    connected = "connected"
    disconnected = "disconnected"
    failed = "failed"
    closed = "closed"

    @property
    def live(self) -> bool:
        return self in (PeerState.connecting, PeerState.connected)


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """Frames a reader received, dropped unsampled (replaced by a newer one), and handed out."""

    received: int
    dropped: int
    sampled: int


@dataclass(frozen=True, slots=True)
class HubStats:
    peers: int
    peers_connected: int
    frames_received: int
    frames_dropped: int
    frames_sampled: int
    offers_refused: int
    # Data-channel messages dropped unread (binary, oversized) or whose handler failed.
    messages_dropped: int = 0


# -- camera sources by URL (capture/stream.py) ---------------------------------


class SourceState(StrEnum):
    """Where a camera source stands. Only `live` delivers frames; every other state
    is an outage of the camera, never a statement about the people in front of it."""

    connecting = "connecting"  # first attempt to open it
    live = "live"  # frames arriving
    reconnecting = "reconnecting"  # it was live and dropped; retrying with back-off
    unreachable = "unreachable"  # cannot be opened (refused, timed out, not found)
    not_a_video = "not_a_video"  # it answers, but not with a video stream
    ended = "ended"  # a video file reached its end
    stopped = "stopped"  # closed by the service

    @property
    def outage(self) -> bool:
        return self is not SourceState.live


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Video packets received, frames decoded, frames handed out, and packets never
    handed out (the source keeps no backlog: only what a sample asks for is decoded)."""

    received: int
    decoded: int
    sampled: int
    dropped: int
    reconnects: int


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A camera source's state, with the last error and when the state began.

    `url` is redacted (no user name or password)."""

    source_id: str
    url: str
    state: SourceState
    since: datetime
    last_error: str | None
    attempts: int  # failed attempts since the source was last live
    width: int | None
    height: int | None
    stats: SourceStats


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Where a network camera may be (`capture.netguard`).

    Loopback and private (non-global) addresses are refused unless inside one of
    `allowed_networks`; link-local, cloud metadata, unspecified, multicast, broadcast
    and reserved addresses always are; `refused_ports` (the service's own) are refused
    on every host. Public addresses are allowed when `allow_public`."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    refused_ports: frozenset[int] = frozenset()
    allow_public: bool = True


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A network URL whose host resolved only to allowed addresses, for this moment."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

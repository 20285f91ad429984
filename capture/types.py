"""Values that cross the capture boundary. Frozen; no aiortc, av or cv2 imports."""

from __future__ import annotations

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

"""Errors of the capture package, under one root. `reason` is machine-readable."""

from __future__ import annotations


class CaptureError(Exception):
    reason = "capture_error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidOffer(CaptureError):
    """The SDP offer is malformed, too large, of the wrong type or has no video."""

    reason = "invalid_sdp"


class PeerExists(CaptureError):
    """A live peer connection already exists for this session."""

    reason = "peer_exists"


class TooManyPeers(CaptureError):
    reason = "too_many_peers"


class NoFrames(CaptureError):
    """No new frame arrived in time."""

    reason = "no_frames"


class NotConnected(CaptureError):
    reason = "not_connected"


class SourceDown(CaptureError):
    """A camera source could not deliver a frame: it is not live (see `state`)."""

    reason = "source_down"

    def __init__(self, message: str, state: str, last_error: str | None = None) -> None:
        super().__init__(message)
        self.state = state
        self.last_error = last_error


class TargetRefused(CaptureError):
    """A camera URL leads somewhere a camera may not be: a refused scheme, address or
    port (checked after name resolution, at every connection and every redirect)."""

    reason = "camera_address_refused"

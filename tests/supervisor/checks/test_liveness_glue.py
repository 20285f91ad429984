"""Browser signals only raise suspicion; fingerprints round-trip through Redis text."""

from __future__ import annotations

from supervisor.checks.liveness import fingerprints_from_json, fingerprints_to_json
from supervisor.rules.suspicion import suspicion_from_signals
from verification.types import FrameFingerprint


def test_virtual_cameras_and_hidden_pages_raise_suspicion() -> None:
    assert suspicion_from_signals({"label": "OBS Virtual Camera"}) == ("virtual_camera",)
    assert suspicion_from_signals({"label": "ManyCam Video Source"}) == ("virtual_camera",)
    assert "page_hidden" in suspicion_from_signals({"label": "HD Webcam", "hidden": True})
    low = suspicion_from_signals({"settings": {"frameRate": 1}})
    assert low == ("camera_frame_rate_low",)


def test_clean_or_missing_reports_add_nothing() -> None:
    assert suspicion_from_signals({}) == ()
    assert suspicion_from_signals({"label": "Integrated Camera (04f2:b6dd)",
                                   "settings": {"frameRate": 30}}) == ()  # fmt: skip
    assert suspicion_from_signals({"label": 42, "settings": "nonsense"}) == ()


def test_fingerprints_round_trip_and_garbage_is_skipped() -> None:
    fp = FrameFingerprint(1.5, 640, 480, 8, 3, 4, 2, 2, b"\x01\x00\x02\x00\x03\x00\x04\x00")
    text = fingerprints_to_json([fp])
    assert fingerprints_from_json([*text, "not json", b'{"t_s": 1}']) == [fp]

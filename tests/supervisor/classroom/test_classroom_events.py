"""Classroom events: their stored form, and classroom hours by the ledger's crediting
function (present = passed, absent = failed, an outage stops the clock without
counting against the learner)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import ClassroomSettings, Settings, SettingsError, load_settings
from storage.types import LedgerEvent
from supervisor.classroom.cameras import check_camera_url
from supervisor.classroom.timeline import paused_at_end, timeline
from supervisor.errors import InvalidInput
from supervisor.ledger import classroom as ce
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules.crediting import credit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def presence(seconds: float, present: bool = True, **kw: object) -> ce.ClassPresence:
    return ce.ClassPresence(
        check_id=f"rc{seconds}",
        check_kind="roll_call",
        purpose="random",
        verdict="present" if present else "absent",
        passed=present,
        at=t(seconds),
        distance=0.31 if present else None,
        threshold=0.53,
        issues=(),
        faces=4,
        frames=3,
        evidence_sha256="ab" * 32,
        scheduled_at=t(seconds - 0.5),
        class_id=7,
        learner_id=3,
        run_id=1,
        **kw,  # type: ignore[arg-type]
    )


def outage(seconds: float) -> ce.ClassOutage:
    return ce.ClassOutage(ce.OBSERVED, ce.OUTAGE, "camera_outage", t(seconds), 7, 1, "rcx", (2,))


def resumed(seconds: float) -> ce.ClassResumed:
    return ce.ClassResumed(ce.OUTAGE, ce.OBSERVED, "observed_again", t(seconds), 7, 1, "rcy")


def stored(event: ev.Event, seq: int = 1) -> LedgerEvent:
    new = codec.encode(event)
    return LedgerEvent("class:7:learner:3", seq, T0, new.kind, new.payload, "0" * 64, "0" * 64)


def test_class_events_round_trip_through_their_stored_form() -> None:
    events: list[ev.Event] = [
        presence(
            10, camera_id=2, captured_at=t(9.5), pts=1234, time_base="1/90000", box=(1, 2, 3, 4)
        ),
        presence(20, present=False),
        outage(30),
        resumed(40),
        ce.ClassLeft("operator", t(50), 7, 1),
        ce.ClassRollCall(
            7,
            1,
            "rc1",
            "start",
            "done",
            None,
            t(1),
            (2,),
            (),
            3,
            (3,),
            (4,),
            (),
            (5,),
            1,
            0,
            0,
            (2, 2),
            (t(0.5), t(0.7)),
            (10, None),
            ("1/25", None),
            ("cd" * 32, None),
            (3, 3),
            (1, 0),
        ),  # fmt: skip
    ]
    for e in events:
        s = stored(e)
        assert s.kind == e.KIND and codec.decode(s) == e
    assert stored(events[0]).kind == "class_presence"
    # Read as their base kinds, which is how crediting sees them.
    assert isinstance(events[0], ev.CheckRecorded) and isinstance(events[2], ev.StateChanged)
    assert isinstance(events[4], ev.SessionEnded)
    assert ce.class_chain(7) == "class:7" and ce.learner_class_chain(7, 3) == "class:7:learner:3"


def test_classroom_hours_come_from_the_same_crediting_function() -> None:
    chain: list[ev.Event] = [
        presence(0),
        presence(60),  # +60
        outage(90),  # a camera is out: the clock stops, nobody is blamed
        resumed(200),
        presence(200),  # seen again at the same instant: nothing unobserved is credited
        presence(260),  # +60
        presence(300, present=False),  # absent: the clock stops
        presence(400),
        presence(460),  # +60
        ce.ClassLeft("operator", t(470), 7, 1),
        presence(1000),  # the next run: nothing credited across the break
        presence(1030),  # +30
    ]
    c = credit(chain, timedelta(seconds=1200))
    assert c.credited_seconds == 210
    assert (c.passed_checks, c.failed_checks, c.missed_checks) == (8, 1, 0)
    assert [(i.start, i.end) for i in c.intervals] == [
        (t(0), t(60)),
        (t(200), t(260)),
        (t(400), t(460)),
        (t(1000), t(1030)),
    ]
    # Without the resume the learner stays paused: passes after an outage never count.
    assert credit([presence(0), outage(10), presence(20), presence(30)], timedelta(hours=1)) \
        .credited_seconds == 0  # fmt: skip
    assert paused_at_end([presence(0), outage(10)]) and not paused_at_end([outage(1), resumed(2)])
    kinds = [(e.status, e.reason) for e in timeline(chain)]
    assert kinds[2:5] == [("outage", "camera_outage"), ("resumed", "observed_again"),
                          ("present", None)]  # fmt: skip
    assert kinds[9] == ("ended", "operator")


def test_camera_urls_and_the_folder_of_file_sources(tmp_path: Path) -> None:
    allowed = tmp_path / "videos"
    allowed.mkdir()
    video = allowed / "room.mp4"
    video.write_bytes(b"\x00")
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"\x00")
    (allowed / "escape.mp4").symlink_to(outside)
    none = Settings()
    files = Settings(classroom={"file_sources_dir": allowed})  # type: ignore[arg-type]
    for ok in ("rtsp://10.0.0.3/live", "https://10.0.0.2:8443/mjpeg", "rtsps://u:p@[fd12::5]/x"):
        assert check_camera_url(ok, none, may_use_files=False) == ok
    assert check_camera_url(video.as_uri(), files, may_use_files=True) == video.as_uri()
    for bad, settings, admin, reason in (
        (video.as_uri(), none, True, "file_source_refused"),  # no folder configured
        (video.as_uri(), files, False, "file_source_refused"),  # an operator, not an admin
        ("smb://nas/cam", none, True, "invalid_camera_url"),
        ("rtsp:///nohost", none, True, "invalid_camera_url"),
        ("http://cam/a b", none, True, "invalid_camera_url"),
    ):
        with pytest.raises(InvalidInput) as caught:
            check_camera_url(bad, settings, may_use_files=admin)
        assert caught.value.reason == reason, bad
    for bad in (outside.as_uri(), (allowed / "escape.mp4").as_uri(), (allowed / "no.mp4").as_uri(),
                f"file://otherhost{video}", f"{allowed.as_uri()}/../secret.mp4"):  # fmt: skip
        with pytest.raises(InvalidInput) as caught:
            check_camera_url(bad, files, may_use_files=True)
        assert caught.value.reason in ("file_source_refused", "invalid_camera_url"), bad


def test_classroom_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    s = ClassroomSettings()
    assert s.max_credited_gap_s > max(s.interval_max_s, s.assessment_interval_max_s)
    monkeypatch.setenv("SUPERVISOR_CLASSROOM__MAX_CREDITED_GAP_S", "600")
    with pytest.raises(SettingsError, match="max_credited_gap_s"):
        load_settings()
    monkeypatch.setenv("SUPERVISOR_CLASSROOM__MAX_CREDITED_GAP_S", "2000")
    monkeypatch.setenv("SUPERVISOR_CLASSROOM__INTERVAL_MIN_S", "700")
    with pytest.raises(SettingsError, match="interval"):
        load_settings()
    monkeypatch.delenv("SUPERVISOR_CLASSROOM__INTERVAL_MIN_S")
    monkeypatch.setenv("SUPERVISOR_CLASSROOM__RTSP_TRANSPORT", "carrier-pigeon")
    with pytest.raises(SettingsError, match="rtsp_transport"):
        load_settings()

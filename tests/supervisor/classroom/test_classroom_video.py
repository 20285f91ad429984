"""Classroom supervision end to end: a class video generated from real faces, played
as a video file and served as a live MJPEG camera, supervised by the real service.

Roll-call moments are random, so the assertions map each roll call to the moment
of the video it looked at (the frame's timestamp for a file, its arrival time for
the live camera) and allow a margin around each change in the room.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capture.stream import NETWORK_FAILURE
from config import FaceSettings
from storage.canonical import canonical_json
from tests import classgen, imagegen
from tests.classgen import MjpegCamera, Presence
from tests.supervisor.classroom_helpers import (
    Classroom,
    attendance,
    class_events,
    fast_service,
    make_class,
    parse,
    status,
    wait_for,
)
from tests.supervisor.conftest import Service
from verification.dlib_engine import DlibFaceEngine
from verification.imageio import decode_image

pytestmark = pytest.mark.slow

MARGIN_S = 0.7  # around each change in the room: frames a roll call took straddle it


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from fast_service(tmp_path_factory.mktemp("classroom"))


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine(FaceSettings())


def videos(svc: Service) -> Path:
    folder = svc.settings.classroom.file_sources_dir
    assert folder is not None
    return Path(folder)


def shared_photo(faces_dir: Path, identity: str, n: int) -> np.ndarray:
    path = faces_dir / identity / f"{n}.jpg"
    with (faces_dir / "manifest.csv").open() as fh:
        listed = {row["path"] for row in csv.DictReader(fh)}
    if f"{identity}/{n}.jpg" not in listed:
        pytest.skip(f"{path} is not in the labelled set")
    return decode_image(path.read_bytes(), max_pixels=50_000_000, max_side=20_000)


def run_class(svc: Service, c: Classroom, until: Any, timeout: float = 60) -> dict[str, Any]:
    """Start supervision, wait until `until(class roll-call events)` holds, stop."""
    r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/start", c.operator)
    assert r.status_code == 200, r.text
    assert r.json()["running"] is True
    wait_for(lambda: until(class_events(svc, c, "class_roll_call")), timeout, "the class ran")
    r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/stop", c.operator)
    assert r.status_code == 200, r.text
    stopped: dict[str, Any] = r.json()
    assert stopped["running"] is False and stopped["stop_reason"] == "operator"
    return stopped


def source_times(entries: list[dict[str, Any]], status_: str) -> list[float]:
    return [e["source_time_s"] for e in entries if e["status"] == status_]


def presence_entries(att: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in att["timeline"] if e["status"] in ("present", "absent")]


def credited_span(att: dict[str, Any]) -> float:
    """Seconds between the first and the last roll call that found the learner."""
    present = [parse(e["at"]) for e in att["timeline"] if e["status"] == "present"]
    return max(present) - min(present) if present else 0.0


def assert_chains_intact(svc: Service, c: Classroom) -> None:
    chains = [f"class:{c.class_id}"] + [
        f"class:{c.class_id}:learner:{lid}" for lid in c.learners.values()
    ]
    report = svc.storage.ledger.verify(chains)
    assert report.ok and report.chains == len(chains), report


def assert_every_roll_call_reached_every_learner(svc: Service, c: Classroom) -> None:
    """No lost events: each roll call of the class chain is in every learner's chain
    as a finding, or the learner was unseen (an outage, recorded once when it began)."""
    roll_calls = class_events(svc, c, "class_roll_call")
    for lid in c.learners.values():
        r = svc.call("GET", f"/api/v1/classes/{c.class_id}/learners/{lid}/events", c.operator)
        found = {e["payload"]["check_id"] for e in r.json() if e["kind"] == "class_presence"}
        for rc in roll_calls:
            p = rc["payload"]
            if lid in p["unseen"]:
                assert p["roll_call_id"] not in found
            else:
                assert p["roll_call_id"] in found, (lid, p["purpose"], p["outcome"])


# -- a video file, packaged faces only ------------------------------------------------


def test_two_people_on_a_video_file_one_leaves_halfway(
    svc: Service, engine: DlibFaceEngine
) -> None:
    svc.forget_faces()
    hopper = classgen.person("Grace Hopper", imagegen.grace_hopper(), engine)
    collins = classgen.person("Eileen Collins", imagegen.astronaut(), engine)
    plan = [Presence(hopper, 1, 0, 99), Presence(collins, 4, 0, 6)]
    # Longer than the run needs: supervision stops once a roll call has seen 10 s; the
    # rest is room for roll calls delayed by a busy machine (a file that ends stops them).
    video = classgen.write_video(videos(svc) / "two.mp4", plan, 18)
    c = make_class(
        svc,
        {"Grace Hopper": imagegen.grace_hopper(), "Eileen Collins": imagegen.astronaut()},
        cameras=(video.as_uri(),),
    )
    run_class(svc, c, lambda rcs: rcs and _latest_source_time(svc, c) >= 10.0)
    att = attendance(svc, c)
    stays, leaves = att[c.learners["Grace Hopper"]], att[c.learners["Eileen Collins"]]

    # Grace Hopper is found by every roll call that looked at the room.
    assert source_times(stays["timeline"], "absent") == []
    assert len(source_times(stays["timeline"], "present")) >= 5
    # Eileen Collins is present until she leaves at 6 s, absent afterwards.
    present = source_times(leaves["timeline"], "present")
    absent = source_times(leaves["timeline"], "absent")
    assert present and absent
    assert max(present) < 6.0 + MARGIN_S and min(absent) > 6.0 - MARGIN_S
    assert [t for t in present if t < 6.0 - MARGIN_S] and [t for t in absent if t > 6 + MARGIN_S]
    # Credited time: between consecutive roll calls that found the learner.
    assert stays["credited_seconds"] == pytest.approx(credited_span(stays), abs=0.01)
    assert leaves["credited_seconds"] == pytest.approx(credited_span(leaves), abs=0.01)
    assert stays["credited_seconds"] > leaves["credited_seconds"] + 3
    assert stays["absent"] == 0 and leaves["absent"] >= 1
    # Presence events carry the evidence frame, which was stored.
    for e in presence_entries(leaves):
        assert e["evidence_sha256"] and svc.storage.evidence.get(e["evidence_sha256"])
    assert_chains_intact(svc, c)
    assert_every_roll_call_reached_every_learner(svc, c)


def _latest_source_time(svc: Service, c: Classroom) -> float:
    times = [
        e["source_time_s"]
        for a in attendance(svc, c).values()
        for e in a["timeline"]
        if e["source_time_s"] is not None
    ]
    return max(times, default=0.0)


# -- a video file, four learners and a stranger (labelled set) -----------------------


@pytest.mark.faces
def test_a_class_with_late_arrival_early_leaver_and_a_stranger(
    svc: Service, engine: DlibFaceEngine, faces_dir: Path
) -> None:
    svc.forget_faces()
    # Enrolled from one photo, seen in class in another.
    enrol = {
        "Grace Hopper": imagegen.grace_hopper(),
        "Eileen Collins": imagegen.astronaut(),
        "Barack Obama": shared_photo(faces_dir, "barack_obama", 1),
        "Angelina Jolie": shared_photo(faces_dir, "angelina_jolie", 1),
    }
    seen = {
        "Grace Hopper": imagegen.grace_hopper(),
        "Eileen Collins": imagegen.astronaut(),
        "Barack Obama": shared_photo(faces_dir, "barack_obama", 2),
        "Angelina Jolie": shared_photo(faces_dir, "angelina_jolie", 2),
        "stranger": shared_photo(faces_dir, "mark_zuckerberg", 1),
    }
    people = {name: classgen.person(name, photo, engine) for name, photo in seen.items()}
    plan = [
        Presence(people["Grace Hopper"], 0, 0, 99),
        Presence(people["Eileen Collins"], 1, 0, 7),  # leaves halfway
        Presence(people["Barack Obama"], 2, 5, 99),  # arrives late
        Presence(people["Angelina Jolie"], 4, 0, 99),
        Presence(people["stranger"], 6, 9, 99),  # not on the roster
    ]
    # Longer than the run needs (it stops once a roll call has seen 12 s): with 2 s
    # to spare, a slow roll call on a busy CI machine missed the end of the file.
    video = classgen.write_video(videos(svc) / "class.mp4", plan, 20)
    c = make_class(svc, enrol, cameras=(video.as_uri(),))
    run_class(svc, c, lambda rcs: rcs and _latest_source_time(svc, c) >= 12.0)
    att = attendance(svc, c)

    def times(name: str, status_: str) -> list[float]:
        return source_times(att[c.learners[name]]["timeline"], status_)

    for name in ("Grace Hopper", "Angelina Jolie"):
        assert times(name, "absent") == [] and len(times(name, "present")) >= 5, name
    assert max(times("Eileen Collins", "present")) < 7 + MARGIN_S
    assert min(times("Eileen Collins", "absent")) > 7 - MARGIN_S
    assert [t for t in times("Eileen Collins", "present") if t < 7 - MARGIN_S]
    assert min(times("Barack Obama", "present")) > 5 - MARGIN_S
    assert [t for t in times("Barack Obama", "absent") if t < 5 - MARGIN_S]
    assert max(times("Barack Obama", "absent")) < 5 + MARGIN_S
    # Hours: the learners there all along are credited the most; the early leaver and
    # the late arrival about as long as they were there (roll calls are ~2 s apart).
    credited = {name: att[lid]["credited_seconds"] for name, lid in c.learners.items()}
    for name, lid in c.learners.items():
        assert credited[name] == pytest.approx(credited_span(att[lid]), abs=0.01), name
    full = credited["Grace Hopper"]
    assert full >= 9 and credited["Angelina Jolie"] == pytest.approx(full, abs=0.01)
    assert 7 - 3.5 <= credited["Eileen Collins"] <= 7
    assert full - 5 - 3.5 <= credited["Barack Obama"] <= full - 5 + 3.5
    # The stranger is an unknown face, counted and kept as evidence; in a training
    # class that is not a flag.
    for rc in class_events(svc, c, "class_roll_call"):
        p = rc["payload"]
        frames = list(zip(p["frames_unknown"], p["frames_evidence"], strict=True))
        assert all(h is not None for n, h in frames if n > 0)
        assert set(p["present"]).isdisjoint(p["absent"])
    roll_calls = [rc["payload"] for rc in class_events(svc, c, "class_roll_call")]
    assert any(p["unknown_faces"] == 1 for p in roll_calls)
    assert roll_calls[0]["unknown_faces"] == 0  # the start, long before 9 s
    assert svc.storage.registry.list_flags(institution_id=c.institution_id) == []
    assert_chains_intact(svc, c)
    assert_every_roll_call_reached_every_learner(svc, c)


# -- a live MJPEG camera: an assessment with a stranger and a dropped camera ----------


def test_assessment_over_mjpeg_flags_a_stranger_and_survives_a_dropped_camera(
    svc: Service, engine: DlibFaceEngine
) -> None:
    svc.forget_faces()
    hopper = classgen.person("Grace Hopper", imagegen.grace_hopper(), engine)
    stranger = classgen.person("stranger", imagegen.astronaut(), engine)
    plan = [Presence(hopper, 1, 0, 99), Presence(stranger, 5, 5, 99)]
    video = classgen.write_video(videos(svc) / "exam.mp4", plan, 20)
    frames, fps = classgen.jpeg_frames(video)
    with MjpegCamera(frames, fps) as camera:
        c = make_class(
            svc, {"Grace Hopper": imagegen.grace_hopper()}, mode="assessment", cameras=(camera.url,)
        )
        t0 = camera.go()
        r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/start", c.operator)
        assert r.status_code == 200, r.text
        wait_for(lambda: time.time() - t0 > 8.0, 30, "8 s of class")
        dropped_at = time.time() - t0
        camera.drop(4.0)
        wait_for(
            lambda: any(
                s["state"] in ("reconnecting", "unreachable") for s in status(svc, c)["cameras"]
            ),
            10,
            "the drop is reported",
        )
        during = status(svc, c)
        assert during["running"] and during["cameras"][0]["last_error"]
        wait_for(lambda: status(svc, c)["cameras"][0]["state"] == "live", 20, "back live")
        back_at = time.time() - t0
        wait_for(lambda: time.time() - t0 > back_at + 3.0, 20, "3 s after recovery")
        r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/stop", c.operator)
        assert r.status_code == 200 and r.json()["running"] is False, r.text

    lid = c.learners["Grace Hopper"]
    tl = attendance(svc, c)[lid]["timeline"]
    kinds = [e["status"] for e in tl]
    # The outage stopped the clock but never counted as an absence.
    assert "absent" not in kinds
    assert kinds.count("outage") == 1 and kinds.count("resumed") == 1
    i_out, i_res = kinds.index("outage"), kinds.index("resumed")
    assert (
        i_out < i_res and kinds[i_res + 1] == "present" and tl[i_out]["reason"] == "camera_outage"
    )
    outage_at = parse(tl[i_out]["at"]) - t0
    assert dropped_at - 0.5 < outage_at < dropped_at + 6.0
    before = [parse(e["at"]) for e in tl[:i_out] if e["status"] == "present"]
    after = [parse(e["at"]) for e in tl[i_res:] if e["status"] == "present"]
    assert len(before) >= 3 and len(after) >= 2
    expected = (max(before) - min(before)) + (max(after) - parse(tl[i_res]["at"]))
    assert attendance(svc, c)[lid]["credited_seconds"] == pytest.approx(expected, abs=0.01)

    roll_calls = [rc["payload"] for rc in class_events(svc, c, "class_roll_call")]
    assert any(p["outcome"] == "outage" for p in roll_calls)
    assert any(p["purpose"] == "resume" and p["outcome"] == "done" for p in roll_calls)
    states = [e["payload"]["state"] for e in class_events(svc, c, "camera_status")]
    assert states[0] == "live" and states[-1] == "live"
    assert {"reconnecting", "unreachable"} & set(states[1:-1])
    # Assessment: every sampled frame is kept, and the stranger (after 5 s) is flagged,
    # once per kind: a face matching nobody, and more faces than candidates.
    for p in roll_calls:
        assert all(h is not None for h in p["frames_evidence"])
        seen_at = [parse(ts) - t0 for ts in p["frames_captured_at"]]
        if p["outcome"] == "done" and min(seen_at) > 5 + MARGIN_S:
            assert p["unknown_faces"] == 1 and p["faces"] == 2, p
        if p["outcome"] == "done" and max(seen_at) < 5 - MARGIN_S:
            assert p["unknown_faces"] == 0 and p["faces"] == 1, p
    flags = svc.storage.registry.list_flags(institution_id=c.institution_id)
    assert sorted(f.kind for f in flags) == ["assessment_headcount", "assessment_unknown_face"]
    raised = {e["payload"]["flag_id"] for e in class_events(svc, c, "class_flag_raised")}
    assert raised == {f.id for f in flags}
    for f in flags:
        details = json.loads(f.details)
        assert canonical_json(details) == f.details and f.learner_id is None
        assert details["scores"]["candidates"] == 1 and details["evidence"]
        for ref in details["evidence"]:
            # Each piece of evidence names the roll call's event and one of its frames,
            # and the flag has its own chain from the moment it is raised.
            assert ref["chain_id"] == f"class:{c.class_id}" and len(ref["hash"]) == 64
            stored = svc.storage.ledger.read_chain(ref["chain_id"])[ref["seq"] - 1]
            assert stored.hash == ref["hash"] and stored.kind == "class_roll_call"
            assert svc.storage.evidence.get(ref["evidence_sha256"])
        assert svc.storage.ledger.read_chain(f"flag:{f.id}")[0].kind == "flag_raised"
    assert_chains_intact(svc, c)
    assert_every_roll_call_reached_every_learner(svc, c)


# -- cameras that are dead or not video at the start, and come back ------------------


def test_dead_and_non_video_cameras_are_outages_and_recover(
    svc: Service, engine: DlibFaceEngine
) -> None:
    svc.forget_faces()
    hopper = classgen.person("Grace Hopper", imagegen.grace_hopper(), engine)
    collins = classgen.person("Eileen Collins", imagegen.astronaut(), engine)
    plan = [Presence(hopper, 1, 0, 99), Presence(collins, 4, 0, 99)]
    video = classgen.write_video(videos(svc) / "room.mp4", plan, 4)
    frames, fps = classgen.jpeg_frames(video)
    dead = MjpegCamera(frames, fps)  # nothing listens on its port yet
    login_page = MjpegCamera(frames, fps)
    login_page.mode = "html"
    with login_page:
        c = make_class(
            svc,
            {"Grace Hopper": imagegen.grace_hopper(), "Eileen Collins": imagegen.astronaut()},
            cameras=(dead.url, login_page.url),
        )
        r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/start", c.operator)
        assert r.status_code == 200, r.text

        def states() -> list[str]:
            return [cam["state"] for cam in status(svc, c)["cameras"]]

        wait_for(lambda: states() == ["unreachable", "unreachable"], 15, "both reported")
        # A camera's state is live (read from its source) while the start roll call is
        # recorded only after it gave up on both cameras: wait for that record too.
        wait_for(
            lambda: status(svc, c)["last_roll_call_outcome"] is not None, 15, "first roll call"
        )
        st = status(svc, c)
        assert st["running"] and st["headcount"] == 0
        assert sorted(st["unseen"]) == sorted(c.learners.values()) and st["absent"] == []
        # A closed port and an open port that is not a camera read the same.
        errors = [cam["last_error"] for cam in st["cameras"]]
        assert errors == [NETWORK_FAILURE, NETWORK_FAILURE]
        # The login page turns into video; then the dead camera comes to life.
        login_page.mode = "video"
        wait_for(lambda: states()[1] == "live", 15, "the second camera is live")
        wait_for(lambda: status(svc, c)["headcount"] == 2, 15, "seen again on camera 2")
        with dead:
            wait_for(lambda: states() == ["live", "live"], 15, "both cameras live")
            wait_for(
                lambda: (
                    status(svc, c)["last_roll_call_outcome"] == "done"
                    and not status(svc, c)["unseen"]
                    and status(svc, c)["cameras"][0]["state"] == "live"
                    and len(class_events(svc, c, "class_roll_call")[-1]["payload"]["cameras_live"])
                    == 2
                ),
                20,
                "a roll call with both cameras",
            )
            r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/stop", c.operator)
            assert r.status_code == 200, r.text

    att = attendance(svc, c)
    for lid in c.learners.values():
        kinds = [e["status"] for e in att[lid]["timeline"]]
        assert "absent" not in kinds, kinds
        assert kinds[:3] == ["outage", "resumed", "present"], kinds
        assert att[lid]["credited_seconds"] == pytest.approx(credited_span(att[lid]), abs=0.01)
    by_camera: dict[int, list[str]] = {}
    for e in class_events(svc, c, "camera_status"):
        by_camera.setdefault(e["payload"]["camera_id"], []).append(e["payload"]["state"])
    first, second = sorted(by_camera)
    assert by_camera[first][0] == "unreachable" and by_camera[first][-1] == "live"
    assert by_camera[second][0] == "unreachable" and by_camera[second][-1] == "live"
    outcomes = [rc["payload"]["outcome"] for rc in class_events(svc, c, "class_roll_call")]
    assert outcomes[0] == "outage" and outcomes[-1] == "done"
    assert_chains_intact(svc, c)
    assert_every_roll_call_reached_every_learner(svc, c)


# -- a restart of the service in the middle of a class --------------------------------


def test_supervision_resumes_after_a_restart_without_crediting_the_gap(
    tmp_path: Path, engine: DlibFaceEngine
) -> None:
    hopper = classgen.person("Grace Hopper", imagegen.grace_hopper(), engine)
    (tmp_path / "videos").mkdir()
    video = classgen.write_video(tmp_path / "videos" / "long.mp4", [Presence(hopper, 2, 0, 99)], 60)
    first = fast_service(tmp_path)
    svc = next(first)
    c = make_class(svc, {"Grace Hopper": imagegen.grace_hopper()}, cameras=(video.as_uri(),))
    r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/start", c.operator)
    assert r.status_code == 200, r.text
    wait_for(lambda: len(class_events(svc, c, "class_roll_call")) >= 3, 30, "three roll calls")
    first.close()  # the service stops: supervision is interrupted, the run stays open
    second = fast_service(tmp_path)
    svc = next(second)
    try:
        st = wait_for(
            lambda: (s := status(svc, c))["supervised_here"] and s["roll_calls"] >= 1 and s,
            30,
            "the new process resumes the class",
        )
        assert st["running"] and st["run_id"] is not None
        wait_for(lambda: status(svc, c)["roll_calls"] >= 3, 30, "roll calls go on")
        r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/stop", c.operator)
        assert r.status_code == 200 and r.json()["running"] is False, r.text
        kinds = [e["kind"] for e in class_events(svc, c)]
        assert kinds.count("class_supervision_started") == 2
        assert "class_supervision_interrupted" in kinds and kinds[-1] == "class_supervision_stopped"
        started = class_events(svc, c, "class_supervision_started")
        assert [e["payload"]["resumed"] for e in started] == [False, True]
        assert len({e["payload"]["run_id"] for e in started}) == 1  # the same run
        (att,) = attendance(svc, c).values()
        tl = att["timeline"]
        statuses = [e["status"] for e in tl]
        i = statuses.index("outage")
        assert tl[i]["reason"] == "service_stopped" and "absent" not in statuses
        assert statuses[i + 1 : i + 3] == ["resumed", "present"]
        before = [parse(e["at"]) for e in tl[:i] if e["status"] == "present"]
        after = [parse(e["at"]) for e in tl[i:] if e["status"] == "present"]
        expected = (max(before) - min(before)) + (max(after) - min(after))
        assert att["credited_seconds"] == pytest.approx(expected, abs=0.01)
        assert parse(tl[i + 1]["at"]) - parse(tl[i]["at"]) > 1.0  # the gap, not credited
        assert_chains_intact(svc, c)
    finally:
        second.close()

"""ClassroomStore contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from storage import Storage
from storage.canonical import canonical_json, format_timestamp
from storage.classroom_sql import filing_sha256
from storage.exceptions import Duplicate, InvalidInput, InvalidState, NotFound
from storage.types import ClassMode, DeliveryMode, TrainingClass
from tests.storage.helpers import id_number

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=4)


def setup_class(store: Storage, seed: int = 1) -> tuple[TrainingClass, list[int], int]:
    """A class of a classroom course with three learners of its institution, and a
    learner of another institution."""
    inst = store.registry.create_institution(f"School {seed}").id
    other = store.registry.create_institution(f"Other {seed}").id
    course = store.registry.create_course(inst, "Welding", 16, DeliveryMode.classroom)
    cls = store.classroom.create_class(course.id, "Welding, March", ClassMode.training, T0, T1)
    ids = [
        store.registry.create_learner(inst, f"Learner {i}", id_number(seed * 10 + i)).id
        for i in range(3)
    ]
    stranger = store.registry.create_learner(other, "Elsewhere", id_number(seed * 10 + 9)).id
    return cls, ids, stranger


def ready(store: Storage, cls: TrainingClass, ids: list[int]) -> None:
    store.classroom.add_to_roster(cls.id, ids, T0)
    store.classroom.add_camera(cls.id, "rtsp://cam:secret@10.0.0.5/stream", "front", T0)
    store.classroom.file_class(cls.id, "Li Hua", "Day 1: safety", "Practical test", "op:1", T0)


def test_classes_take_the_institution_of_their_course(store: Storage) -> None:
    cls, _, _ = setup_class(store)
    course = store.registry.get_course(cls.course_id)
    assert cls.institution_id == course.institution_id
    assert (cls.name, cls.mode, cls.starts_at, cls.ends_at) == (
        "Welding, March",
        ClassMode.training,
        T0,
        T1,
    )
    exam = store.classroom.create_class(course.id, "Exam", ClassMode("assessment"), T0, T1)
    assert store.classroom.get_class(cls.id) == cls
    assert store.classroom.list_classes(course_id=course.id) == [cls, exam]
    assert store.classroom.list_classes(institution_id=cls.institution_id + 1000) == []
    with pytest.raises(NotFound):
        store.classroom.get_class(999)
    with pytest.raises(NotFound):
        store.classroom.create_class(999, "x", ClassMode.training, T0, T1)
    for start, end in ((T1, T0), (T0, T0), (T0.replace(tzinfo=None), T1)):
        with pytest.raises(InvalidInput):
            store.classroom.create_class(course.id, "x", ClassMode.training, start, end)
    with pytest.raises(InvalidInput):
        store.classroom.create_class(course.id, "x", "lecture", T0, T1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.classroom.create_class(course.id, "  ", ClassMode.training, T0, T1)
    assert len(store.classroom.list_classes()) == 2  # nothing refused was stored


def test_roster_is_all_or_nothing_and_institution_bound(store: Storage) -> None:
    cls, ids, stranger = setup_class(store)
    roster = store.classroom.add_to_roster(cls.id, ids[:2], T0)
    assert [(e.class_id, e.learner_id, e.added_at) for e in roster] == [
        (cls.id, ids[0], T0),
        (cls.id, ids[1], T0),
    ]
    for bad in ([ids[2], stranger], [ids[2], 999], [ids[2], ids[2]], [], ["1"], [True]):
        with pytest.raises((InvalidInput, NotFound)):
            store.classroom.add_to_roster(cls.id, bad, T0)  # type: ignore[arg-type]
    with pytest.raises(Duplicate):
        store.classroom.add_to_roster(cls.id, [ids[2], ids[0]], T0)
    assert [e.learner_id for e in store.classroom.roster(cls.id)] == ids[:2]  # unchanged
    assert [e.learner_id for e in store.classroom.remove_from_roster(cls.id, ids[0])] == [ids[1]]
    with pytest.raises(NotFound):
        store.classroom.remove_from_roster(cls.id, ids[0])
    with pytest.raises(NotFound):
        store.classroom.roster(999)


def test_cameras_are_unique_per_class_and_never_echo_the_url(store: Storage) -> None:
    cls, _, _ = setup_class(store)
    url = "rtsp://admin:s3cret@10.0.0.9:554/h264"
    cam = store.classroom.add_camera(cls.id, url, "back row", T0)
    assert (cam.class_id, cam.url, cam.label) == (cls.id, url, "back row")
    with pytest.raises(Duplicate) as caught:
        store.classroom.add_camera(cls.id, url, "again", T0)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(InvalidInput):
        store.classroom.add_camera(cls.id, "x" * 2001, "long", T0)
    other = store.classroom.add_camera(cls.id, "http://10.0.0.7/mjpeg", "side", T0)
    assert store.classroom.cameras(cls.id) == [cam, other]
    store.classroom.remove_camera(cls.id, other.id)
    with pytest.raises(NotFound):
        store.classroom.remove_camera(cls.id, other.id)
    assert store.classroom.cameras(cls.id) == [cam]


def test_filing_snapshots_the_roster_and_its_hash_covers_the_text(store: Storage) -> None:
    cls, ids, _ = setup_class(store)
    with pytest.raises(InvalidState):
        store.classroom.file_class(cls.id, "Li Hua", "plan", "test", "op:1", T0)  # empty roster
    store.classroom.add_to_roster(cls.id, [ids[2], ids[0]], T0)
    assert store.classroom.latest_filing(cls.id) is None
    first = store.classroom.file_class(cls.id, " Li Hua ", "Day 1", "Practical", "op:1", T0)
    assert first.roster == tuple(sorted([ids[2], ids[0]]))
    assert first.teacher == "Li Hua"
    expected = canonical_json(
        {
            "assessment_plan": "Practical",
            "class_id": cls.id,
            "filed_at": format_timestamp(T0),
            "roster": sorted([ids[0], ids[2]]),
            "teacher": "Li Hua",
            "teaching_plan": "Day 1",
        }
    )
    import hashlib

    assert first.sha256 == hashlib.sha256(expected.encode()).hexdigest()
    assert first.sha256 == filing_sha256(cls.id, "Li Hua", "Day 1", "Practical", first.roster, T0)
    later = store.classroom.file_class(cls.id, "Li Hua", "Day 1 v2", "Practical", "op:1", T1)
    assert store.classroom.latest_filing(cls.id) == later
    for bad in (("", "p", "a"), ("t", "", "a"), ("t", "p", " "), ("t", "p" * 20_001, "a")):
        with pytest.raises(InvalidInput):
            store.classroom.file_class(cls.id, *bad, "op:1", T0)
    assert json.loads(canonical_json(list(later.roster))) == sorted([ids[0], ids[2]])


def test_a_run_needs_a_filing_that_matches_the_roster_and_a_camera(store: Storage) -> None:
    cls, ids, _ = setup_class(store)
    lease = T0 + timedelta(seconds=30)
    with pytest.raises(InvalidState, match="not been filed"):
        store.classroom.start_run(cls.id, T0, "op:1", "proc-a", lease)
    store.classroom.add_to_roster(cls.id, ids, T0)
    store.classroom.file_class(cls.id, "Li Hua", "Day 1", "Practical", "op:1", T0)
    with pytest.raises(InvalidState, match="no camera"):
        store.classroom.start_run(cls.id, T0, "op:1", "proc-a", lease)
    store.classroom.add_camera(cls.id, "http://10.0.0.7/mjpeg", "front", T0)
    store.classroom.remove_from_roster(cls.id, ids[2])
    with pytest.raises(InvalidState, match="roster changed"):
        store.classroom.start_run(cls.id, T0, "op:1", "proc-a", lease)
    store.classroom.file_class(cls.id, "Li Hua", "Day 1", "Practical", "op:1", T0)
    run = store.classroom.start_run(cls.id, T0, "op:1", "proc-a", lease)
    assert (run.class_id, run.started_by, run.lease_owner, run.lease_until) == (
        cls.id,
        "op:1",
        "proc-a",
        lease,
    )
    assert run.open and store.classroom.open_run(cls.id) == run
    with pytest.raises(InvalidState, match="already running"):
        store.classroom.start_run(cls.id, T0, "op:2", "proc-b", lease)
    # Once supervision has started, the roster and the filing are frozen, and the
    # cameras stay as they are while it runs.
    with pytest.raises(InvalidState):
        store.classroom.add_to_roster(cls.id, [ids[2]], T0)
    with pytest.raises(InvalidState):
        store.classroom.remove_from_roster(cls.id, ids[0])
    with pytest.raises(InvalidState):
        store.classroom.file_class(cls.id, "Someone", "x", "y", "op:1", T0)
    with pytest.raises(InvalidState):
        store.classroom.add_camera(cls.id, "http://10.0.0.8/mjpeg", "side", T0)
    stopped = store.classroom.stop_run(run.id, T0 + timedelta(hours=1), "op:1", "operator")
    assert (stopped.stopped_by, stopped.stop_reason, stopped.open) == ("op:1", "operator", False)
    with pytest.raises(InvalidState):
        store.classroom.stop_run(run.id, T1, "op:1", "operator")
    with pytest.raises(InvalidState):
        store.classroom.add_to_roster(cls.id, [ids[2]], T0)  # still frozen after the run
    store.classroom.add_camera(cls.id, "http://10.0.0.8/mjpeg", "side", T0)
    again = store.classroom.start_run(cls.id, T1, "op:1", "proc-a", lease)
    assert [r.id for r in store.classroom.list_runs(cls.id)] == [run.id, again.id]


def test_leases_are_renewed_by_their_owner_and_lapsed_runs_claimed_once(store: Storage) -> None:
    cls, ids, _ = setup_class(store)
    ready(store, cls, ids)
    run = store.classroom.start_run(cls.id, T0, "op:1", "proc-a", T0 + timedelta(seconds=30))
    renewed = store.classroom.renew_lease(run.id, "proc-a", T0 + timedelta(seconds=60))
    assert renewed is not None and renewed.lease_until == T0 + timedelta(seconds=60)
    assert store.classroom.renew_lease(run.id, "proc-b", T1) is None
    assert store.classroom.claim_lapsed_runs("proc-b", T0 + timedelta(seconds=59), T1) == []
    # Claimers racing for a lapsed run: exactly one gets it.
    now = T0 + timedelta(seconds=61)
    results: dict[str, int] = {}

    def claim(owner: str) -> None:
        results[owner] = len(store.classroom.claim_lapsed_runs(owner, now, T1))

    threads = [threading.Thread(target=claim, args=(f"proc-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [0, 0, 0, 1]
    winner = next(o for o, n in results.items() if n)
    assert store.classroom.get_run(run.id).lease_owner == winner
    assert store.classroom.renew_lease(run.id, "proc-a", T1) is None  # the old owner lost it
    store.classroom.release_lease(run.id, winner, now)
    assert store.classroom.get_run(run.id).lease_until == now
    requested = store.classroom.request_stop(run.id, now, "op:7")
    assert (requested.stop_requested_at, requested.stopped_by, requested.open) == (
        now,
        "op:7",
        True,
    )
    assert store.classroom.request_stop(run.id, T1, "op:8") == requested  # the first is kept
    store.classroom.stop_run(run.id, now, "op:1", "operator")
    assert store.classroom.renew_lease(run.id, winner, T1) is None
    assert store.classroom.claim_lapsed_runs("proc-z", T1, T1 + timedelta(seconds=30)) == []
    with pytest.raises(InvalidState):
        store.classroom.request_stop(run.id, T1, "op:7")
    with pytest.raises(NotFound):
        store.classroom.get_run(999)

"""`RecordsStore` contract, on SQLite and PostgreSQL: insert-only history where the
latest row counts, key groups replayed from additions and removals, certificates
unique by number and by assessment result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import Storage
from storage.exceptions import Duplicate, InvalidInput, NotFound
from storage.types import DeliveryMode
from tests.storage.helpers import id_number

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def _world(store: Storage, seed: int) -> tuple[int, int, int]:
    inst = store.registry.create_institution(f"Records school {seed}").id
    course = store.registry.create_course(inst, "焊工", 40, DeliveryMode.classroom).id
    learner = store.registry.create_learner(inst, f"Learner {seed}", id_number(seed)).id
    return inst, course, learner


def test_profiles_keep_every_record_and_the_latest_counts(store: Storage) -> None:
    inst, _, _ = _world(store, 1)
    other, _, _ = _world(store, 2)
    assert store.records.profile(inst) is None
    store.records.record_profile(inst, "440305", "L-1", "李四", "深圳", "registered", "b:1", T0)
    store.records.record_profile(other, "110105", "L-2", "王五", "北京", "registered", "b:1", T0)
    later = T0 + timedelta(days=1)
    store.records.record_profile(inst, "440306", "L-1", "李四", "宝安", "moved", "b:1", later)
    latest = store.records.profile(inst)
    assert latest is not None and (latest.division_code, latest.reason) == ("440306", "moved")
    assert latest.recorded_at == later
    assert [p.division_code for p in store.records.profile_history(inst)] == ["440305", "440306"]
    every = store.records.profiles()
    assert every[inst].division_code == "440306" and every[other].division_code == "110105"
    with pytest.raises(NotFound):
        store.records.record_profile(10**6, "440305", "L", "x", "y", "r", "b:1", T0)
    with pytest.raises(InvalidInput):
        store.records.record_profile(inst, "4403050", "L", "x", "y", "r", "b:1", T0)


def test_classifications_latest_counts(store: Storage) -> None:
    _, course, _ = _world(store, 3)
    assert store.records.classification(course) is None
    store.records.classify_course(course, "6-18-02-04", 4, "operator:1", T0)
    store.records.classify_course(course, "6-18-02-04", 3, "bureau:2", T0)
    found = store.records.classification(course)
    assert found is not None and (found.skill_level, found.recorded_by) == (3, "bureau:2")
    assert store.records.classifications()[course].skill_level == 3
    with pytest.raises(InvalidInput):
        store.records.classify_course(course, "6-18-02-04", 6, "bureau:2", T0)


def test_groups_are_replayed_from_additions_and_removals(store: Storage) -> None:
    _, _, learner = _world(store, 4)
    _, _, other = _world(store, 5)
    r = store.records
    r.change_group(learner, "veteran", True, "2024-05-01", "退役军人事务局", None, "op:1", T0)
    r.change_group(learner, "unemployed", True, "2025-01-15", "失业登记", None, "op:1", T0)
    r.change_group(other, "veteran", True, "2023-01-01", "register", None, "op:1", T0)
    r.change_group(learner, "veteran", False, None, None, "wrong", "bureau:2", T0)
    got = r.groups()
    assert [g.group for g in got[learner]] == ["unemployed"]
    assert [(g.group, g.since) for g in got[other]] == [("veteran", "2023-01-01")]
    # Back in the group: the latest change is an addition again.
    r.change_group(learner, "veteran", True, "2026-01-01", "again", None, "op:1", T0)
    assert [g.group for g in r.groups([learner])[learner]] == ["unemployed", "veteran"]
    assert other not in r.groups([learner])
    with pytest.raises(InvalidInput):
        r.change_group(learner, "veteran", True, None, "x", None, "op:1", T0)


def test_certificates_are_unique_by_number_and_by_result(store: Storage) -> None:
    _, course, learner = _world(store, 6)
    store.subsidy.enrol(course, learner, "op:1", T0)
    result = store.subsidy.record_assessment(course, learner, True, 80, T0, "op:1")
    cert = store.records.add_certificate(
        "S-0001", result.id, 4, "6-18-02-04", "2026-03-02", "鉴定中心", "bureau:2", T0
    )
    assert (cert.learner_id, cert.course_id, cert.result_id) == (learner, course, result.id)
    with pytest.raises(Duplicate):
        store.records.add_certificate(
            "S-0002", result.id, 4, "6-18-02-04", "2026-03-02", "鉴定中心", "bureau:2", T0
        )
    again = store.subsidy.record_assessment(course, learner, True, 90, T0, "op:1")
    with pytest.raises(Duplicate):
        store.records.add_certificate(
            "S-0001", again.id, 4, "6-18-02-04", "2026-03-02", "鉴定中心", "bureau:2", T0
        )
    with pytest.raises(NotFound):
        store.records.add_certificate(
            "S-0003", 10**6, 4, "6-18-02-04", "2026-03-02", "鉴定中心", "bureau:2", T0
        )
    assert [c.number for c in store.records.certificates(learner)] == ["S-0001"]
    assert [c.number for c in store.records.certificates(course_id=course)] == ["S-0001"]

"""Contract of the appeal store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storage import Storage
from storage.exceptions import Duplicate, InvalidInput, NotFound
from storage.models import appeal_decisions, appeals
from storage.types import AppealStatus, AppealSubject
from tests.storage.helpers import id_number

T0 = datetime(2026, 12, 6, 9, tzinfo=UTC)
REF = ("appeal:1", 2, "a" * 64)


def _learners(store: Storage) -> tuple[int, int, int]:
    inst = store.registry.create_institution("Appeals school")
    a = store.registry.create_learner(inst.id, "Learner A", id_number(1))
    b = store.registry.create_learner(inst.id, "Learner B", id_number(2))
    return inst.id, a.id, b.id


def _count(store: Storage) -> tuple[int, int]:
    with store.db.read() as conn:
        n = conn.execute(select(func.count()).select_from(appeals)).scalar_one()
        d = conn.execute(select(func.count()).select_from(appeal_decisions)).scalar_one()
    return n, d


def test_an_appeal_is_filed_decided_once_and_found(store: Storage) -> None:
    inst, a, b = _learners(store)
    s = store.appeals
    filed = s.file(a, inst, AppealSubject.flag, 7, None, None, "  not me  ", "learner:3", T0)
    assert filed.status is AppealStatus.open and filed.statement == "not me"
    assert filed.subject_key == "flag:7" and filed.decision is None
    check = s.file(
        a, inst, AppealSubject.check, None, "session:abc", 4, "camera broke", "learner:3", T0
    )
    assert check.subject_key == "session:abc#4"

    # One open appeal per learner and subject (another learner a flag also names may
    # appeal it too).
    with pytest.raises(Duplicate):
        s.file(a, inst, AppealSubject.flag, 7, None, None, "again", "learner:3", T0)
    other = s.file(b, inst, AppealSubject.flag, 7, None, None, "me too", "learner:4", T0)
    with pytest.raises(Duplicate):
        s.file(b, inst, AppealSubject.flag, 7, None, None, "again", "learner:4", T0)

    decided = s.decide(filed.id, False, "the evidence holds", "bureau:1", T0 + timedelta(1), REF)
    assert decided.status is AppealStatus.dismissed
    assert decided.decision is not None and decided.decision.seq == 2
    with pytest.raises(Duplicate):
        s.decide(filed.id, True, "changed my mind", "bureau:1", T0 + timedelta(2), REF)
    assert s.get(filed.id).status is AppealStatus.dismissed

    # Dismissed: the subject takes a new appeal; upheld: it does not.
    again = s.file(a, inst, AppealSubject.flag, 7, None, None, "new facts", "learner:3", T0)
    s.decide(again.id, True, "right", "inspector:2", T0 + timedelta(3), REF)
    with pytest.raises(Duplicate):
        s.file(a, inst, AppealSubject.flag, 7, None, None, "more", "learner:3", T0)

    assert [x.id for x in s.find(learner_id=a)] == [filed.id, check.id, again.id]
    assert [x.id for x in s.find(status=AppealStatus.open)] == [check.id, other.id]
    assert [x.id for x in s.find(status=AppealStatus.upheld)] == [again.id]
    assert [x.id for x in s.find(status=AppealStatus.dismissed)] == [filed.id]
    assert s.find(learner_id=b) == [other] and s.find(institution_id=inst + 99) == []
    with pytest.raises(NotFound):
        s.get(9999)
    with pytest.raises(NotFound):
        s.decide(9999, True, "x", "bureau:1", T0, REF)


def test_bad_appeals_are_refused_and_leave_nothing(store: Storage) -> None:
    inst, a, _ = _learners(store)
    s = store.appeals
    before = _count(store)
    bad = [
        (AppealSubject.flag, None, None, None, "x"),  # no flag
        (AppealSubject.flag, 1, "session:a", 1, "x"),  # a flag and a check
        (AppealSubject.check, None, "session:a", None, "x"),  # no seq
        (AppealSubject.check, None, "bad chain id!", 1, "x"),
        (AppealSubject.roll_call, None, "class:1:learner:1", 0, "x"),
        (AppealSubject.check, None, "session:a", 1, "   "),  # empty statement
        (AppealSubject.check, None, "session:a", 1, "x" * 2001),
        ("nonsense", None, "session:a", 1, "x"),
    ]
    for subject, flag, chain, seq, said in bad:
        with pytest.raises(InvalidInput):
            s.file(a, inst, subject, flag, chain, seq, said, "learner:3", T0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        s.file(
            a, inst, AppealSubject.flag, 1, None, None, "x", "learner:3", T0.replace(tzinfo=None)
        )
    with pytest.raises(NotFound):
        s.file(9999, inst, AppealSubject.flag, 1, None, None, "x", "learner:3", T0)
    ok = s.file(a, inst, AppealSubject.flag, 1, None, None, "x", "learner:3", T0)
    with pytest.raises(InvalidInput):
        s.decide(ok.id, True, "", "bureau:1", T0, REF)
    with pytest.raises(InvalidInput):
        s.decide(ok.id, True, "fine", "bureau:1", T0, ("appeal:1", 2, "not-a-hash"))
    assert _count(store) == (before[0] + 1, before[1])

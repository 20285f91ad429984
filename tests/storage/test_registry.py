"""RegistryStore contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storage import Storage
from storage.exceptions import (
    ConsentRequired,
    Duplicate,
    InvalidInput,
    InvalidState,
    NotFound,
)
from storage.registry_sql import hash_secret
from storage.types import DeliveryMode, FlagStatus, InstitutionStatus, Learner, Role
from tests.storage.helpers import id_number, raw_rows, vector

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def learner(store: Storage, seed: int = 1, institution_id: int | None = None) -> Learner:
    if institution_id is None:
        institution_id = store.registry.create_institution(f"Institution {seed}").id
    return store.registry.create_learner(institution_id, f"Learner {seed}", id_number(seed))


def test_institutions_and_courses(store: Storage) -> None:
    a = store.registry.create_institution("  Skills Academy  ")
    b = store.registry.create_institution("Welding School")
    assert (a.name, a.status) == ("Skills Academy", InstitutionStatus.active)
    assert a.created_at.tzinfo is not None
    assert store.registry.get_institution(a.id) == a
    assert store.registry.list_institutions() == [a, b]
    course = store.registry.create_course(a.id, "Electrician", 40.5, DeliveryMode.online)
    other = store.registry.create_course(b.id, "Welding", 8, DeliveryMode("classroom"))
    assert (course.required_hours, course.delivery_mode) == (40.5, DeliveryMode.online)
    assert store.registry.get_course(course.id) == course
    assert store.registry.list_courses(a.id) == [course]
    assert store.registry.list_courses() == [course, other]
    with pytest.raises(NotFound):
        store.registry.get_institution(999)
    with pytest.raises(NotFound):
        store.registry.create_course(999, "x", 1, DeliveryMode.online)
    for hours in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InvalidInput):
            store.registry.create_course(a.id, "x", hours, DeliveryMode.online)
    with pytest.raises(InvalidInput):
        store.registry.create_course(a.id, "x", 1, "by pigeon")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.registry.create_institution("   ")


def test_learners_are_unique_by_id_number(store: Storage) -> None:
    inst = store.registry.create_institution("A").id
    first = store.registry.create_learner(inst, "Zhang San", id_number(7).lower())
    assert first.id_number == id_number(7).upper()
    assert store.registry.get_learner(first.id) == first
    with pytest.raises(Duplicate) as caught:
        store.registry.create_learner(inst, "Someone Else", id_number(7))
    assert id_number(7) not in str(caught.value)  # ID numbers stay out of error texts
    assert store.registry.list_learners(inst) == [first]
    other = store.registry.create_institution("B").id
    second = store.registry.create_learner(other, "Li Si", id_number(11))
    assert store.registry.learner_institutions() == {first.id: inst, second.id: other}
    assert store.registry.find_learner_by_id_number(id_number(7).lower()) == first
    assert store.registry.find_learner_by_id_number(id_number(8)) is None
    for bad in ("12345", "11010119800101123Y", "1101011980010112345", ""):
        with pytest.raises(InvalidInput):
            store.registry.create_learner(inst, "X", bad)
    with pytest.raises(NotFound):
        store.registry.create_learner(999, "X", id_number(9))
    # Hidden characters: NUL and other controls (PostgreSQL and spreadsheets refuse
    # them), bidirectional overrides (text that reads as other text) are refused.
    for name in ("bad\x01name", "a\x00b", "Li\u202eSi", "x\u2066y"):
        with pytest.raises(InvalidInput, match="control characters"):
            store.registry.create_learner(inst, name, id_number(12))
    assert store.registry.find_learner_by_id_number(id_number(12)) is None


def test_consent_record_and_withdraw_deletes_templates_in_one_go(store: Storage) -> None:
    someone = learner(store, 1)
    bystander = learner(store, 2)
    assert store.registry.active_consent(someone.id) is None
    consent = store.registry.record_consent(someone.id, "2026-11-v1", NOW)
    store.registry.record_consent(bystander.id, "2026-11-v1", NOW)
    assert consent.active and consent.given_at == NOW
    assert store.registry.active_consent(someone.id) == consent
    with pytest.raises(Duplicate):
        store.registry.record_consent(someone.id, "2026-11-v2", NOW)
    store.templates.add(someone.id, vector(1), None)
    store.templates.add(someone.id, vector(2), None)
    store.templates.add(bystander.id, vector(3), None)

    withdrawn, deleted = store.registry.withdraw_consent(someone.id, NOW + timedelta(hours=1))
    assert deleted == 2
    assert withdrawn.id == consent.id and not withdrawn.active
    assert withdrawn.withdrawn_at == NOW + timedelta(hours=1)
    assert store.templates.for_learner(someone.id) == []
    assert len(store.templates.for_learner(bystander.id)) == 1
    assert store.registry.active_consent(someone.id) is None
    with pytest.raises(NotFound):
        store.registry.withdraw_consent(someone.id, NOW)
    # Consent can be given again later; it is a new record.
    again = store.registry.record_consent(someone.id, "2026-11-v2", NOW + timedelta(days=1))
    assert again.id != consent.id and again.active


def test_naive_datetimes_are_refused(store: Storage) -> None:
    someone = learner(store)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        store.registry.record_consent(someone.id, "v1", datetime(2026, 1, 1, 12, 0))
    assert store.registry.active_consent(someone.id) is None


def test_aware_datetimes_come_back_in_utc(store: Storage) -> None:
    someone = learner(store)
    beijing = datetime(2026, 1, 2, 4, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    consent = store.registry.record_consent(someone.id, "v1", beijing)
    loaded = store.registry.active_consent(someone.id)
    assert loaded is not None and consent == loaded
    assert loaded.given_at == datetime(2026, 1, 1, 20, 0, tzinfo=UTC)
    assert loaded.given_at.utcoffset() == timedelta(0)


def test_tokens_resolve_until_revoked_and_secrets_are_never_stored(store: Storage) -> None:
    someone = learner(store)
    admin, admin_secret = store.registry.create_token(Role.admin, "root")
    op, op_secret = store.registry.create_token(
        Role.operator, "desk", institution_id=someone.institution_id
    )
    own, own_secret = store.registry.create_token(Role.learner, "me", learner_id=someone.id)
    assert own.institution_id == someone.institution_id  # taken from the learner
    assert len({admin_secret, op_secret, own_secret}) == 3
    assert len(admin_secret) >= 43  # 32 random bytes, URL-safe base64
    assert store.registry.resolve_token(admin_secret) == admin
    assert store.registry.resolve_token(op_secret) == op
    assert store.registry.resolve_token(own_secret) == own
    assert store.registry.resolve_token("not a token") is None
    assert store.registry.resolve_token("") is None

    rows = raw_rows(store, "SELECT * FROM api_tokens")
    flat = " ".join(str(value) for row in rows for value in row)
    for secret in (admin_secret, op_secret, own_secret):
        assert secret not in flat
        assert hash_secret(secret) in flat

    store.registry.revoke_token(op.id, NOW)
    store.registry.revoke_token(op.id, NOW + timedelta(days=1))  # keeps the first time
    assert store.registry.resolve_token(op_secret) is None
    assert store.registry.get_token(op.id).revoked_at == NOW
    assert store.registry.resolve_token(admin_secret) == admin
    with pytest.raises(NotFound):
        store.registry.revoke_token(999, NOW)
    with pytest.raises(InvalidInput):
        store.registry.create_token(Role.operator, "no institution")
    with pytest.raises(InvalidInput):
        store.registry.create_token(Role.learner, "no learner")
    with pytest.raises(InvalidInput):
        store.registry.create_token(Role.learner, "x", institution_id=999, learner_id=someone.id)


def test_sessions_need_consent_and_end_once(store: Storage) -> None:
    someone = learner(store)
    inst = someone.institution_id
    course = store.registry.create_course(inst, "C", 10, DeliveryMode.online)
    with pytest.raises(ConsentRequired):
        store.registry.create_session("sess-1", "chain-1", someone.id, course.id, inst, NOW)
    store.registry.record_consent(someone.id, "v1", NOW)
    session = store.registry.create_session("sess-1", "chain-1", someone.id, course.id, inst, NOW)
    assert session.ended_at is None and session.chain_id == "chain-1"
    with pytest.raises(Duplicate):
        store.registry.create_session("sess-1", "chain-2", someone.id, course.id, inst, NOW)
    with pytest.raises(Duplicate):
        store.registry.create_session("sess-2", "chain-1", someone.id, course.id, inst, NOW)
    assert store.registry.list_sessions(open_only=True) == [session]
    ended = store.registry.end_session("sess-1", NOW + timedelta(hours=2))
    assert ended.ended_at == NOW + timedelta(hours=2)
    assert store.registry.get_session("sess-1") == ended
    with pytest.raises(InvalidState):
        store.registry.end_session("sess-1", NOW + timedelta(hours=3))
    assert store.registry.list_sessions(open_only=True) == []
    assert store.registry.list_sessions(learner_id=someone.id) == [ended]
    assert store.registry.list_sessions(institution_id=inst + 1) == []
    with pytest.raises(NotFound):
        store.registry.get_session("nope")
    other = store.registry.create_institution("Other").id
    with pytest.raises(InvalidInput):
        store.registry.create_session("sess-3", "chain-3", someone.id, course.id, other, NOW)
    store.registry.withdraw_consent(someone.id, NOW)
    with pytest.raises(ConsentRequired):
        store.registry.create_session("sess-4", "chain-4", someone.id, course.id, inst, NOW)


def test_flags_are_raised_and_decided_once(store: Storage) -> None:
    a = learner(store, 1)
    b = learner(store, 2, institution_id=a.institution_id)
    flag = store.registry.raise_flag(
        "duplicate_identity", '{"distance":0.31}', a.institution_id, a.id, b.id
    )
    assert flag.status is FlagStatus.open and flag.other_learner_id == b.id
    assert store.registry.list_flags(FlagStatus.open) == [flag]
    decided = store.registry.decide_flag(flag.id, FlagStatus.confirmed, "inspector 7", "same face")
    assert decided.status is FlagStatus.confirmed and decided.decided_by == "inspector 7"
    assert decided.decided_at is not None
    assert store.registry.list_flags(FlagStatus.open) == []
    assert store.registry.list_flags(institution_id=a.institution_id) == [decided]
    with pytest.raises(InvalidState):
        store.registry.decide_flag(flag.id, FlagStatus.dismissed, "x", "")
    with pytest.raises(InvalidInput):
        store.registry.decide_flag(flag.id, FlagStatus.open, "x", "")
    with pytest.raises(NotFound):
        store.registry.raise_flag("k", "{}", None, 999)

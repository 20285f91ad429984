"""Contract of the seal store and the access log, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import Storage
from storage.exceptions import InvalidInput, NotFound, StorageError
from storage.types import ChainHead

T0 = datetime(2026, 4, 1, 12, tzinfo=UTC)
HEX = "ab" * 32
SIG = "cd" * 64


def heads(n: int) -> list[ChainHead]:
    return [ChainHead(f"chain-{i:05d}", i + 1, f"{i:064x}") for i in range(n)]


def test_a_seal_is_stored_with_its_leaves_and_the_latest_wins(store: Storage) -> None:
    assert store.seals.latest() is None
    first = store.seals.add(T0, HEX, "{}", SIG, HEX, heads(3), 3)
    second = store.seals.add(T0 + timedelta(hours=1), HEX, "{}", SIG, HEX, heads(12_001), 12_001)
    assert store.seals.latest() == second and second.id > first.id
    assert store.seals.get(first.id) == first
    assert [s.id for s in store.seals.recent()] == [second.id, first.id]
    got = store.seals.leaves(second.id)
    assert sorted(got, key=lambda h: h.chain_id) == heads(12_001)
    assert store.seals.leaves(first.id) == heads(3)
    assert second.sealed_at == T0 + timedelta(hours=1)
    with pytest.raises(NotFound):
        store.seals.get(10**6)


@pytest.mark.parametrize(
    "change",
    [
        {"root": "XYZ"},
        {"public_key": "ab"},
        {"signature": "zz" * 64},
        {"sealed_at": datetime(2026, 1, 1)},
        {"chains": 5},
    ],
)
def test_malformed_seals_are_refused_and_leave_nothing(store: Storage, change: dict) -> None:  # type: ignore[type-arg]
    args = {
        "sealed_at": T0,
        "root": HEX,
        "statement": "{}",
        "signature": SIG,
        "public_key": HEX,
        "leaves": heads(3),
        "chains": 3,
    }
    args.update(change)
    with pytest.raises(InvalidInput):
        store.seals.add(**args)  # type: ignore[arg-type]
    assert store.seals.latest() is None


def test_the_access_log_records_and_filters(store: Storage) -> None:
    store.access_log.record(
        T0,
        "inspector:7",
        "inspector",
        "replay_session",
        learner_id=3,
        session_id="s-1",
        institution_id=1,
    )
    store.access_log.record(
        T0 + timedelta(seconds=1),
        "operator:2",
        "operator",
        "search",
        institution_id=1,
        detail="x" * 900,
    )
    store.access_log.record(
        T0 + timedelta(seconds=2), "inspector:7", "inspector", "view_frame", learner_id=4
    )
    rows = store.access_log.entries()
    assert [r.action for r in rows] == ["view_frame", "search", "replay_session"]
    assert len(rows[1].detail) == 500
    assert [r.action for r in store.access_log.entries(learner_id=3)] == ["replay_session"]
    assert [r.action for r in store.access_log.entries(actor="operator:2")] == ["search"]
    assert len(store.access_log.entries(since=T0 + timedelta(seconds=1))) == 2
    with pytest.raises(InvalidInput):
        store.access_log.record(T0, "a", "admin", "bad action!")
    with pytest.raises(InvalidInput):
        store.access_log.record(datetime(2026, 1, 1), "a", "admin", "read")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_seals SET root = 'x'",
        "DELETE FROM ledger_seals",
        "UPDATE ledger_seal_leaves SET seq = 99",
        "DELETE FROM ledger_seal_leaves",
    ],
)
def test_seals_are_append_only_in_the_database(store: Storage, sql: str) -> None:
    seal = store.seals.add(T0, HEX, "{}", SIG, HEX, heads(2), 2)
    with pytest.raises(StorageError), store.db.write() as conn:
        conn.exec_driver_sql(sql)
    assert store.seals.latest() == seal and store.seals.leaves(seal.id) == heads(2)

"""Broken chains in storage: appends refused, the register, incremental verification.

On SQLite and PostgreSQL, through the group-commit writer and the direct path. The
database is tampered with as its owner could (`tamper`: append-only guards off).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage import Storage
from storage.canonical import GENESIS_HASH, canonical_json
from storage.exceptions import BrokenChain
from storage.types import BrokenRecord, NewEvent
from tests.storage.conftest import OpenStore
from tests.storage.helpers import raw_rows, tamper

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def ev(n: int) -> NewEvent:
    return NewEvent("note", canonical_json({"n": n}))


def fill(store: Storage, chain_id: str, count: int) -> None:
    for i in range(count):
        store.ledger.append(chain_id, [ev(i)])


def count(store: Storage) -> int:
    return int(raw_rows(store, "SELECT count(*) FROM ledger_events")[0][0])


@pytest.mark.parametrize("group_commit", [True, False])
@pytest.mark.parametrize("how", ["truncate", "rewrite_head", "move_head_time"])
def test_an_append_to_a_chain_whose_head_no_longer_verifies_is_refused(
    open_store: OpenStore, group_commit: bool, how: str
) -> None:
    store = open_store(group_commit=group_commit)
    fill(store, "a", 6)
    fill(store, "b", 2)
    if how == "truncate":
        tamper(store, "DELETE FROM ledger_events WHERE chain_id = 'a' AND seq >= 5")
    elif how == "rewrite_head":
        tamper(
            store,
            "UPDATE ledger_events SET payload = :p WHERE chain_id = 'a' AND seq = 6",
            p=canonical_json({"n": 99}),
        )
    else:
        tamper(
            store,
            "UPDATE ledger_events SET recorded_at = :t WHERE chain_id = 'a' AND seq = 6",
            t=T0.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if store.db.is_sqlite else T0,
        )
    before = count(store)
    with pytest.raises(BrokenChain) as caught:
        store.ledger.append("a", [ev(7)])
    assert caught.value.chain_id == "a" and "broken" in str(caught.value)
    with pytest.raises(BrokenChain):
        store.ledger.append_once("a", "k1", [ev(8)])
    # Nothing was written; other chains take appends as before.
    assert count(store) == before
    store.ledger.append("b", [ev(3)])
    assert count(store) == before + 1


@pytest.mark.parametrize("group_commit", [True, False])
def test_an_append_to_a_registered_broken_chain_is_refused(
    open_store: OpenStore, group_commit: bool
) -> None:
    store = open_store(group_commit=group_commit)
    fill(store, "a", 3)
    # A break in the middle of the chain: the head still verifies on its own, so it
    # takes the register (written by whoever verified the chain) to refuse appends.
    tamper(
        store,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = 'a' AND seq = 2",
        p=canonical_json({"n": 99}),
    )
    store.ledger.append("a", [ev(4)])  # not known yet
    rec = BrokenRecord("a", 2, "hash does not match", T0, "seal")
    assert store.ledger.mark_broken([rec]) == [rec]
    assert store.ledger.mark_broken([BrokenRecord("a", 3, "x", T0, "scan")]) == []
    assert store.ledger.broken() == {"a": rec}
    assert store.ledger.broken(["b"]) == {}
    before = count(store)
    with pytest.raises(BrokenChain) as caught:
        store.ledger.append("a", [ev(5)])
    assert caught.value.seq == 2
    assert count(store) == before


@pytest.mark.parametrize("bulk", [False, True])
def test_verify_from_rehashes_only_the_suffix_and_catches_a_cut_or_altered_point(
    store: Storage, bulk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many chains to verify are read in one ordered pass: the same answers.
    monkeypatch.setattr("storage.ledger_sql._BULK_CHAINS", 0 if bulk else 20_000)
    monkeypatch.setattr("storage.ledger_sql._BULK_POINTS", 0 if bulk else 5_000)
    fill(store, "a", 10)
    fill(store, "b", 4)
    fill(store, "c", 4)
    events = store.ledger.read_chain("a")
    breaks, last = store.ledger.verify_from(
        [
            ("a", 5, events[4].hash),
            ("b", 0, GENESIS_HASH),
            ("c", 4, store.ledger.read_chain("c")[3].hash),
        ]
    )
    assert breaks == []
    assert last["a"] == (10, events[9].hash) and last["b"][0] == 4 and last["c"][0] == 4
    # Up to a given seq only.
    _, last = store.ledger.verify_from([("a", 5, events[4].hash)], upto={"a": 7})
    assert last["a"] == (7, events[6].hash)
    # A wrong verified point (the sealed prefix changed), an edit after it, a cut.
    tamper(
        store,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = 'a' AND seq = 8",
        p=canonical_json({"n": 99}),
    )
    tamper(store, "DELETE FROM ledger_events WHERE chain_id = 'c' AND seq >= 3")
    breaks, last = store.ledger.verify_from(
        [("a", 5, events[4].hash), ("b", 4, "f" * 64), ("c", 4, "e" * 64)]
    )
    # Chains that did not grow cost their head event only (with `upto` at the point).
    b4 = store.ledger.read_chain("b")[3].hash
    breaks_still, last_still = store.ledger.verify_from(
        [("b", 4, b4), ("c", 4, "e" * 64), ("a", 5, events[4].hash)], upto={"b": 4, "c": 4, "a": 5}
    )
    assert last_still == {"b": (4, b4), "a": (5, events[4].hash)}
    assert [(x.chain_id, x.seq) for x in breaks_still] == [("c", 4)]
    found = {b.chain_id: b for b in breaks}
    assert found["a"].seq == 8
    assert found["b"].seq == 4 and "altered" in found["b"].reason
    assert found["c"].seq == 4 and "missing" in found["c"].reason
    assert last == {}
    # An edit before the verified point is not re-hashed (incremental by design) ...
    breaks, _ = store.ledger.verify_from([("a", 9, events[8].hash)])
    assert breaks == []
    # ... unless it is the point itself.
    breaks, _ = store.ledger.verify_from([("a", 8, events[7].hash)])
    assert [b.seq for b in breaks] == [8]


def test_linked_rows_carry_what_verifying_them_needs(store: Storage) -> None:
    fill(store, "a", 3)
    stored = store.ledger.read_chain("a")
    rows = [r for batch in store.ledger.stream_rows(links=True) for r in batch]
    assert [tuple(r) for r in rows] == [
        (
            e.chain_id,
            e.seq,
            e.kind,
            e.payload,
            e.hash,
            e.prev_hash,
            e.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        for e in stored
    ]
    (got,) = list(store.summaries.read_chains([("a", 2)], links=True))
    assert [r[1] for r in got] == [2, 3] and tuple(got[0]) == tuple(rows[1])

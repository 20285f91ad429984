"""LedgerStore contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from config.settings import DatabaseSettings
from storage import Storage
from storage.canonical import GENESIS_HASH, canonical_json, event_hash, verify_events
from storage.engine import create_database
from storage.exceptions import AppendConflict, IntegrityViolation, InvalidInput, StorageError
from storage.types import LedgerEvent, NewEvent
from tests.storage.conftest import OpenStore
from tests.storage.helpers import raw_rows, tamper


def ev(n: int, kind: str = "check.passed") -> NewEvent:
    return NewEvent(kind, canonical_json({"n": n, "verdict": "pass"}))


def fill(store: Storage, chain_id: str, count: int) -> list[LedgerEvent]:
    out: list[LedgerEvent] = []
    for i in range(count):
        out.extend(store.ledger.append(chain_id, [ev(i)]))
    return out


def test_append_links_events_and_hashes_them_as_specified(store: Storage) -> None:
    first = store.ledger.append("s1", [ev(1), ev(2)])
    second = store.ledger.append("s1", [ev(3, "session.ended")])
    events = first + second
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
        assert after.recorded_at >= before.recorded_at
    for e in events:
        assert e.recorded_at.tzinfo is not None
        assert e.hash == event_hash(
            e.prev_hash, e.chain_id, e.seq, e.recorded_at, e.kind, e.payload
        )
    # What was returned is what is stored, and an offline check accepts it.
    assert store.ledger.read_chain("s1") == events
    assert verify_events(store.ledger.read_chain("s1")) is None


def test_unusual_text_is_hashed_and_verified_identically_everywhere(store: Storage) -> None:
    payload = canonical_json(
        {"name": "张三 Zoë", "quote": '"\\/', "ctrl": "\n\t\u0001\u007f", "emoji": "🙂"}
    )
    events = store.ledger.append("course:7.s-1_A", [NewEvent("k.1:_-", payload)])
    events += store.ledger.append(events[0].chain_id, [NewEvent("k", payload)])
    assert store.ledger.verify().ok
    assert verify_events(store.ledger.read_chain(events[0].chain_id)) is None
    assert store.ledger.read_chain(events[0].chain_id)[0].payload == payload


def test_read_chain_pages_and_head(store: Storage) -> None:
    events = fill(store, "s1", 5)
    fill(store, "s2", 2)
    assert store.ledger.read_chain("s1", after_seq=2) == events[2:]
    assert store.ledger.read_chain("s1", after_seq=1, limit=2) == events[1:3]
    assert store.ledger.read_chain("nope") == []
    head = store.ledger.head("s1")
    assert head is not None and (head.seq, head.hash) == (5, events[-1].hash)
    assert store.ledger.head("nope") is None
    assert [(h.chain_id, h.seq) for h in store.ledger.heads()] == [("s1", 5), ("s2", 2)]


def test_iter_events_filters_by_kind_and_time(store: Storage) -> None:
    store.ledger.append("a", [ev(1, "check.passed"), ev(2, "check.failed")])
    store.ledger.append("b", [ev(3, "check.failed")])
    failed = list(store.ledger.iter_events(kinds=["check.failed"]))
    assert [(e.chain_id, e.seq) for e in failed] == [("a", 2), ("b", 1)]
    everything = list(store.ledger.iter_events())
    assert len(everything) == 3
    cut = everything[0].recorded_at
    future = datetime.now(UTC) + timedelta(days=1)
    assert list(store.ledger.iter_events(since=future)) == []
    assert len(list(store.ledger.iter_events(since=cut, until=future))) == 3
    assert list(store.ledger.iter_events(until=cut)) == []
    with pytest.raises(InvalidInput):
        store.ledger.iter_events(since=datetime(2026, 1, 1))  # naive: refused at once


def test_stream_rows_reads_every_event_as_tuples_in_chain_order(store: Storage) -> None:
    store.ledger.append("b", [ev(1, "check.passed")])
    store.ledger.append("a", [ev(2, "check.passed"), ev(3, "check.failed")])
    stored = list(store.ledger.iter_events())
    rows = [r for batch in store.ledger.stream_rows() for r in batch]
    assert [tuple(r) for r in rows] == [
        (e.chain_id, e.seq, e.kind, e.payload, e.hash) for e in stored
    ]
    assert [(r[0], r[1]) for r in rows] == [("a", 1), ("a", 2), ("b", 1)]
    future = datetime.now(UTC) + timedelta(days=1)
    assert sum(len(b) for b in store.ledger.stream_rows(until=future)) == 3
    first = min(e.recorded_at for e in stored)
    assert [b for b in store.ledger.stream_rows(until=first) if b] == []
    with pytest.raises(InvalidInput):
        store.ledger.stream_rows(until=datetime(2026, 1, 1))  # naive: refused at once


def test_append_refuses_bad_input_and_changes_nothing(store: Storage) -> None:
    bad = [
        ("", [ev(1)]),
        ("has space", [ev(1)]),
        ("x" * 65, [ev(1)]),
        ("s1", [NewEvent("", "{}")]),
        ("s1", [NewEvent("ok", '{"b":1,"a":2}')]),  # not canonical
        ("s1", [NewEvent("ok", '{"a":NaN}')]),
        ("s1", [NewEvent("ok", "{" * 10)]),
        ("s1", [NewEvent("ok", '"' + "x" * 70_000 + '"')]),
    ]
    for chain_id, events in bad:
        with pytest.raises(InvalidInput):
            store.ledger.append(chain_id, events)
    assert store.ledger.append("s1", []) == []
    assert store.ledger.verify().events == 0


def test_verify_accepts_intact_chains(store: Storage) -> None:
    fill(store, "a", 20)
    fill(store, "b", 5)
    report = store.ledger.verify()
    assert report.ok and (report.chains, report.events) == (2, 25)
    only_b = store.ledger.verify(["b", "missing"])
    assert only_b.ok and (only_b.chains, only_b.events) == (1, 5)


def test_verify_names_an_event_whose_payload_was_edited(store: Storage) -> None:
    fill(store, "a", 10)
    fill(store, "b", 10)
    tamper(
        store,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = 'a' AND seq = 4",
        p=canonical_json({"n": 3, "verdict": "mismatch"}),
    )
    report = store.ledger.verify()
    assert not report.ok
    assert [(b.chain_id, b.seq) for b in report.breaks] == [("a", 4)]
    assert "hash" in report.breaks[0].reason
    assert store.ledger.verify(["b"]).ok


def test_verify_names_the_broken_link_after_a_rehashed_edit(store: Storage) -> None:
    events = fill(store, "a", 10)
    old = events[3]
    payload = canonical_json({"n": 3, "verdict": "mismatch"})
    forged = event_hash(old.prev_hash, "a", 4, old.recorded_at, old.kind, payload)
    tamper(
        store,
        "UPDATE ledger_events SET payload = :p, hash = :h WHERE chain_id = 'a' AND seq = 4",
        p=payload,
        h=forged,
    )
    report = store.ledger.verify()
    assert [(b.chain_id, b.seq) for b in report.breaks] == [("a", 5)]
    assert "prev_hash" in report.breaks[0].reason


def test_verify_names_a_deleted_event(store: Storage) -> None:
    fill(store, "a", 10)
    tamper(store, "DELETE FROM ledger_events WHERE chain_id = 'a' AND seq = 7")
    report = store.ledger.verify(["a"])
    assert [(b.chain_id, b.seq) for b in report.breaks] == [("a", 7)]
    assert "missing" in report.breaks[0].reason


def test_verify_names_an_edited_time(store: Storage) -> None:
    events = fill(store, "a", 3)
    moved = events[0].recorded_at - timedelta(minutes=5)
    with store.db.engine.connect() as conn:  # bound through the column type, per backend
        from storage.models import ledger_events

        conn.exec_driver_sql(
            "DROP TRIGGER IF EXISTS ledger_events_no_update"
            if store.db.is_sqlite
            else "ALTER TABLE ledger_events DISABLE TRIGGER USER"
        )
        conn.execute(
            ledger_events.update()
            .where(ledger_events.c.chain_id == "a", ledger_events.c.seq == 1)
            .values(recorded_at=moved)
        )
        conn.commit()
    assert [(b.chain_id, b.seq) for b in store.ledger.verify().breaks] == [("a", 1)]


def test_the_database_refuses_updates_and_deletes_of_ledger_rows(store: Storage) -> None:
    fill(store, "a", 2)
    for sql in (
        "UPDATE ledger_events SET payload = '{}' WHERE seq = 1",
        "DELETE FROM ledger_events WHERE seq = 2",
    ):
        with pytest.raises(IntegrityViolation, match="append-only"):
            with store.db.write() as conn:
                conn.exec_driver_sql(sql)
    assert store.ledger.verify().ok and store.ledger.verify().events == 2


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "tx-per-append"])
def test_concurrent_appends_to_one_chain_never_fork_or_lose_events(
    open_store: OpenStore, group_commit: bool
) -> None:
    store = open_store(group_commit=group_commit)
    threads, per_thread = 20, 15
    returned: list[LedgerEvent] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                out = store.ledger.append("hot", [ev(t * 1000 + i)])
                with lock:
                    returned.extend(out)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    chain = store.ledger.read_chain("hot")
    assert [e.seq for e in chain] == list(range(1, threads * per_thread + 1))
    assert sorted(chain, key=lambda e: e.seq) == sorted(returned, key=lambda e: e.seq)
    expected = {
        canonical_json({"n": t * 1000 + i, "verdict": "pass"})
        for t in range(threads)
        for i in range(per_thread)
    }
    assert {e.payload for e in chain} == expected
    assert verify_events(chain) is None


def test_two_writers_on_one_database_retry_instead_of_forking(open_store: OpenStore) -> None:
    # Two Storage objects stand for two processes: each has its own writer thread
    # and head cache, so each keeps losing races to the other and must retry.
    first, second = open_store(), open_store()
    errors: list[BaseException] = []

    def work(store: Storage, base: int) -> None:
        try:
            for i in range(40):
                store.ledger.append("shared", [ev(base + i)])
        except BaseException as exc:
            errors.append(exc)

    workers = [
        threading.Thread(target=work, args=(s, k * 100))
        for k, s in enumerate([first, second, first, second, first, second])
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    chain = first.ledger.read_chain("shared")
    assert [e.seq for e in chain] == list(range(1, 241))
    assert len({e.payload for e in chain}) == 240
    assert first.ledger.verify().ok


def test_a_stale_writer_raises_append_conflict_when_retries_are_exhausted(
    open_store: OpenStore,
) -> None:
    stale = open_store(append_retries=0)
    other = open_store()
    stale.ledger.append("c", [ev(1)])  # `stale` now caches head seq 1
    other.ledger.append("c", [ev(2)])  # the real head moves to seq 2
    with pytest.raises(AppendConflict):
        stale.ledger.append("c", [ev(3)])
    # Nothing was written by the failed append, and the next one reloads the head.
    assert [e.seq for e in stale.ledger.read_chain("c")] == [1, 2]
    assert [e.seq for e in stale.ledger.append("c", [ev(4)])] == [3]
    assert stale.ledger.verify().ok


def test_a_stale_writer_with_retries_appends_after_the_real_head(open_store: OpenStore) -> None:
    stale, other = open_store(append_retries=1), open_store()
    stale.ledger.append("c", [ev(1)])
    other.ledger.append("c", [ev(2), ev(3)])
    (out,) = stale.ledger.append("c", [ev(4)])
    chain = stale.ledger.read_chain("c")
    assert out.seq == 4 and out.prev_hash == chain[2].hash and chain[3] == out
    assert stale.ledger.verify().ok


def test_append_after_close_is_refused(open_store: OpenStore) -> None:
    store = open_store()
    store.ledger.append("c", [ev(1)])
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.ledger.append("c", [ev(2)])


def test_recorded_at_is_stored_as_utc_text_on_sqlite(store: Storage) -> None:
    (event,) = store.ledger.append("c", [ev(1)])
    (stored,) = raw_rows(store, "SELECT recorded_at FROM ledger_events")
    if store.db.is_sqlite:
        assert stored[0] == event.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        assert stored[0] == event.recorded_at


def test_an_append_is_committed_when_it_returns(store: Storage, migrated_url: str) -> None:
    (event,) = store.ledger.append("c", [ev(1)])
    # A separate engine (as another process would) sees it at once.
    other = create_database(DatabaseSettings(url=migrated_url))
    try:
        with other.read() as conn:
            stored = conn.exec_driver_sql(
                "SELECT seq, hash FROM ledger_events WHERE chain_id = 'c'"
            ).all()
    finally:
        other.dispose()
    assert [tuple(r) for r in stored] == [(1, event.hash)]


def test_close_during_appends_loses_nothing_and_blocks_nobody(open_store: OpenStore) -> None:
    store = open_store()
    returned: list[LedgerEvent] = []
    refused: list[StorageError] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(200):
            try:
                out = store.ledger.append(f"c{t}", [ev(i)])
            except StorageError as exc:
                with lock:
                    refused.append(exc)
                return
            with lock:
                returned.extend(out)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for w in workers:
        w.start()
    while len(returned) < 200:
        time.sleep(0.001)
    store.close()
    for w in workers:
        w.join(timeout=30)
        assert not w.is_alive()
    assert refused and all("closed" in str(e) for e in refused)
    reader = open_store()
    stored = list(reader.ledger.iter_events())
    assert sorted((e.chain_id, e.seq) for e in stored) == sorted(
        (e.chain_id, e.seq) for e in returned
    )
    assert reader.ledger.verify().ok


def test_verify_of_many_named_chains(store: Storage) -> None:
    chains = [f"c{i:04d}" for i in range(620)]  # more than one IN (...) chunk
    workers = [
        threading.Thread(
            target=lambda part: [store.ledger.append(c, [ev(1)]) for c in part],
            args=(chains[k::8],),
        )
        for k in range(8)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tamper(
        store, "UPDATE ledger_events SET kind = 'check.failed' WHERE chain_id IN ('c0007', 'c0555')"
    )
    report = store.ledger.verify(chains)
    assert (report.chains, report.events) == (620, 620)
    assert [(b.chain_id, b.seq) for b in report.breaks] == [("c0007", 1), ("c0555", 1)]
    assert [h.chain_id for h in store.ledger.heads()] == chains


def test_the_head_index_follows_every_append_and_verify_checks_it(store: Storage) -> None:
    for i in range(3):
        store.ledger.append("a", [ev(i), ev(i + 10)])
    store.ledger.append("b", [ev(1)])
    events = store.ledger.read_chain("a")
    assert [(h.chain_id, h.seq, h.hash) for h in store.ledger.heads()] == [
        ("a", 6, events[-1].hash),
        ("b", 1, store.ledger.read_chain("b")[0].hash),
    ]
    assert store.ledger.head("a") == list(store.ledger.heads())[0]
    assert store.ledger.verify().ok
    # Cutting the tail off a chain leaves an intact prefix; the head index still
    # names the event that was removed.
    tamper(store, "DELETE FROM ledger_events WHERE chain_id = 'a' AND seq = 6")
    report = store.ledger.verify()
    assert [(b.chain_id, b.seq) for b in report.breaks] == [("a", 6)]
    assert "head index" in report.breaks[0].reason
    assert store.ledger.verify(["b"]).ok
    # A chain the index does not know, and an index row the ledger does not back.
    tamper(store, "DELETE FROM ledger_heads WHERE chain_id = 'b'")
    tamper(
        store,
        "INSERT INTO ledger_heads VALUES ('ghost', 1, :h, :t)",
        h="0" * 64,
        t=events[0].recorded_at,
    )
    found = {(b.chain_id, b.seq) for b in store.ledger.verify().breaks}
    assert found == {("a", 6), ("b", 1), ("ghost", 1)}


@pytest.mark.parametrize("group_commit", [True, False])
def test_append_once_records_a_keyed_append_exactly_once(
    open_store: OpenStore, group_commit: bool
) -> None:
    store = open_store(group_commit=group_commit)
    first, created = store.ledger.append_once("session:k", "check-1", [ev(1), ev(2)])
    assert created and [e.seq for e in first] == [1, 2]
    again, created = store.ledger.append_once("session:k", "check-1", [ev(3)])
    assert not created and again == first[:1]
    other, created = store.ledger.append_once("session:k", "check-2", [ev(4)])
    assert created and other[0].seq == 3
    # The same key on another chain is another append.
    elsewhere, created = store.ledger.append_once("session:j", "check-1", [ev(5)])
    assert created and elsewhere[0].seq == 1
    assert [e.seq for e in store.ledger.read_chain("session:k")] == [1, 2, 3]
    assert store.ledger.verify(None).ok
    # The first event of a keyed append is found by its key, and only on its chain.
    assert store.ledger.find_once("session:k", "check-2") == other[0]
    assert store.ledger.find_once("session:k", "check-1") == first[0]
    assert store.ledger.find_once("session:j", "check-2") is None
    with pytest.raises(InvalidInput):
        store.ledger.find_once("session:k", "bad key with spaces")


def test_concurrent_deliveries_of_one_job_are_recorded_once(open_store: OpenStore) -> None:
    stores = [open_store(), open_store()]  # two processes' worth of writers
    results: list[bool] = []
    lock = threading.Lock()

    def deliver(i: int) -> None:
        _, created = stores[i % 2].ledger.append_once("session:dup", "job-7", [ev(i)])
        with lock:
            results.append(created)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 11 + [True]
    assert len(stores[0].ledger.read_chain("session:dup")) == 1


def test_append_once_refuses_bad_keys(store: Storage) -> None:
    with pytest.raises(InvalidInput):
        store.ledger.append_once("session:k", "bad key with spaces", [ev(1)])
    with pytest.raises(InvalidInput):
        store.ledger.append_once("session:k", "k", [])
    assert store.ledger.read_chain("session:k") == []

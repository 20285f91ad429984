"""Bulk reads ahead of their consumer (`storage.ahead`), alone and through `Database.stream`
on both backends: every row once and in order, errors where they occur, and an early
stop that ends the read and returns its connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from storage import Storage
from storage.ahead import read_ahead
from storage.exceptions import StorageError

COUNT = 5_000
NUMBERS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
    "SELECT i FROM n ORDER BY i"
)


def test_items_arrive_once_and_in_order_read_by_another_thread() -> None:
    readers: set[str] = set()

    def source() -> Iterator[int]:
        for i in range(1_000):
            readers.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(source, depth=3)) == list(range(1_000))
    assert readers == {"storage-read-ahead"}


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("the third row is unreadable")

    seen: list[int] = []
    with pytest.raises(ValueError, match="third row"):
        for item in read_ahead(source):
            seen.append(item)
    assert seen == [1, 2]


def test_a_consumer_that_stops_early_stops_the_reader_and_closes_its_source() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for i in range(100_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    reading = read_ahead(source, depth=2)
    assert next(reading) == 0
    reading.close()  # the consumer's `break`, or an exception in its loop
    assert closed.is_set()  # closed before close() returned, not later
    # it read at most the handed item, the `depth` waiting ones and the one in hand
    assert len(produced) <= 1 + 2 + 1
    assert not any(t.name == "storage-read-ahead" for t in threading.enumerate())


def test_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        read_ahead(lambda: iter(()), depth=0)


def test_stream_reads_every_row_in_order_in_batches(store: Storage) -> None:
    batches = list(store.db.stream(NUMBERS.format(count=COUNT), (), 700))
    assert [len(b) for b in batches] == [700] * 7 + [COUNT - 7 * 700]
    assert [row[0] for b in batches for row in b] == list(range(1, COUNT + 1))


def test_stream_stopped_early_returns_its_connection(store: Storage) -> None:
    pool = store.db.engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    reading = store.db.stream(NUMBERS.format(count=COUNT), (), 100)
    assert [row[0] for row in next(reading)] == list(range(1, 101))
    reading.close()
    assert pool.checkedout() == before  # type: ignore[attr-defined]
    # and the store goes on answering
    assert sum(len(b) for b in store.db.stream(NUMBERS.format(count=10), (), 100)) == 10


def test_stream_of_a_bad_statement_raises_a_storage_error(store: Storage) -> None:
    with pytest.raises(StorageError):
        for _ in store.db.stream("SELECT nothing FROM no_such_table", (), 100):
            pass
    assert store.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]

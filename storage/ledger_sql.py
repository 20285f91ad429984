"""`LedgerStore` on SQLAlchemy Core (SQLite and PostgreSQL).

Appends go through a group-commit writer by default: one thread takes every
pending append from all callers, writes them in one transaction (one executemany
INSERT, one COMMIT, so one fsync), and only then wakes each caller. A caller's
append is therefore durable when it returns, and N concurrent appends cost one
fsync instead of N. The batch size follows the number of callers waiting, so
throughput grows with the number of threads calling `append` (a caller's thread
pool of a handful of threads caps it). With ``group_commit=False`` each append is
its own transaction (the baseline the benchmark compares against).

Forks are impossible either way: (chain_id, seq) is the primary key, so two
writers that both computed seq n+1 from a stale head cannot both commit. Writers
also queue per chain rather than race: SQLite admits one writer at a time
(BEGIN IMMEDIATE), and on PostgreSQL a transaction-scoped advisory lock per chain
is taken before the head is read. A writer whose cached head is stale (another
process appended) fails on the primary key, reloads the head inside its next
transaction and retries, at most `append_retries` times for races it really lost,
then raises `AppendConflict`.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from json.encoder import encode_basestring
from typing import Any, Final, cast

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from storage.canonical import (
    GENESIS_HASH,
    ChainVerifier,
    format_timestamp,
    hash_event_fields,
    is_canonical_json,
    verify_linked,
)
from storage.engine import Database
from storage.exceptions import (
    AppendConflict,
    BrokenChain,
    Duplicate,
    InvalidInput,
    StorageError,
)
from storage.models import broken_chains as B
from storage.models import ledger_events as T
from storage.models import ledger_heads as H
from storage.models import ledger_keys as K
from storage.types import (
    BrokenRecord,
    ChainBreak,
    ChainHead,
    LedgerEvent,
    LedgerRow,
    NewEvent,
    VerifyReport,
)
from storage.validate import aware, ident

MAX_PAYLOAD_CHARS: Final = 65_536
MAX_EVENTS_PER_APPEND: Final = 1_000
_MAX_BATCH_EVENTS: Final = 4_096  # per group-commit transaction
_HEAD_CACHE_SIZE: Final = 200_000  # chains whose head the writer remembers
_IN_CHUNK: Final = 500  # ids per IN (...) list
_STREAM_ROWS: Final = 5_000  # rows per fetch when streaming
_BULK_ROWS: Final = 10_000  # rows per batch of `stream_rows`
_PG_CHUNK_ROWS: Final = 1_000  # rows per message in psycopg's chunked streaming
_BULK_CHAINS: Final = 20_000  # chains to verify past which `verify_from` reads the table once
_BULK_POINTS: Final = 5_000  # unchanged chains past which it joins every head to its event

_COLUMN_NAMES: Final = "chain_id, seq, recorded_at, kind, payload, prev_hash, hash"
_COLUMNS = (T.c.chain_id, T.c.seq, T.c.recorded_at, T.c.kind, T.c.payload, T.c.prev_hash, T.c.hash)


class _Head:
    __slots__ = ("seq", "hash", "recorded_at")

    def __init__(self, seq: int, hash_: str, recorded_at: datetime | None) -> None:
        self.seq = seq
        self.hash = hash_
        self.recorded_at = recorded_at

    def same(self, other: _Head) -> bool:
        return self.seq == other.seq and self.hash == other.hash


_GENESIS = _Head(0, GENESIS_HASH, None)


class SqlLedgerStore:
    """Hash-chained, append-only events in the `ledger_events` table. Thread-safe."""

    def __init__(self, db: Database, *, append_retries: int, group_commit: bool = True) -> None:
        if append_retries < 0:
            raise InvalidInput("append_retries must be >= 0")
        self._db = db
        self._retries = append_retries
        self._writer = _GroupCommitWriter(self) if group_commit else None
        self._closed = False

    # -- appends ------------------------------------------------------------------

    def append(self, chain_id: str, events: Sequence[NewEvent]) -> list[LedgerEvent]:
        """Append events to one chain atomically, after its current head.

        Returns only after COMMIT. Raises `InvalidInput` for a malformed chain id,
        kind or payload (payload must be canonical JSON, at most 65,536 characters),
        `AppendConflict` after `append_retries` lost races, `StorageUnavailable`
        when the database cannot be reached.
        """
        _check_append(chain_id, events)
        if not events:
            return []
        if self._closed:
            raise StorageError("the ledger store is closed")
        if self._writer is not None:
            return self._writer.submit(chain_id, events)
        return self._append_direct(chain_id, events)

    def append_once(
        self, chain_id: str, key: str, events: Sequence[NewEvent]
    ) -> tuple[list[LedgerEvent], bool]:
        """Append events unless an append with this key was already made to the chain.

        Returns (events, True) when appended now, and ([the first event of the
        earlier append], False) when the key was already used: a job delivered
        twice is recorded once. Keys are 1-64 characters like chain ids.
        """
        _check_append(chain_id, events)
        ident(key, "idempotency key")
        if not events:
            raise InvalidInput("an idempotent append needs at least one event")
        if self._closed:
            raise StorageError("the ledger store is closed")
        if self._writer is not None:
            pending = self._writer.submit_pending(chain_id, events, key)
            return pending.result, pending.created
        return self._append_direct(chain_id, events, key)

    def find_once(self, chain_id: str, key: str) -> LedgerEvent | None:
        """The first event of the append made to the chain with `key`, if there was one."""
        ident(key, "idempotency key")
        with self._db.read() as conn:
            seq = _existing_keys(conn, [(chain_id, key)]).get((chain_id, key))
            if seq is None:
                return None
            return _events_at(conn, [(chain_id, seq)])[0][0]

    def _append_direct(
        self, chain_id: str, events: Sequence[NewEvent], key: str | None = None
    ) -> Any:
        for _attempt in range(self._retries + 1):
            try:
                with self._db.write() as conn:
                    _lock_chains(conn, [chain_id])
                    if key is not None:
                        found = _existing_keys(conn, [(chain_id, key)])
                        if (chain_id, key) in found:
                            return _events_at(conn, [(chain_id, found[(chain_id, key)])])[0], False
                    head = _load_heads(conn, [chain_id]).get(chain_id, _GENESIS)
                    refused = _refuse_broken(conn, {chain_id: head}, self._db.is_sqlite)
                    if refused:
                        raise refused[chain_id]
                    rows: list[tuple[Any, ...]] = []
                    out, _ = _build(chain_id, head, events, datetime.now(UTC), rows, self._db)
                    _insert(conn, rows)
                    if key is not None:
                        _insert_keys(conn, [(chain_id, key, out[0].seq)])
                if key is not None:
                    return out, True
                return out
            except Duplicate:
                continue  # another writer took the next seq first; reload the head
        raise AppendConflict(
            f"chain {chain_id!r}: lost the race for the next seq {self._retries + 1} times"
        )

    def close(self) -> None:
        """Finish pending appends, then stop the writer thread. Idempotent."""
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    # -- reads --------------------------------------------------------------------

    def read_chain(
        self, chain_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[LedgerEvent]:
        """Events of one chain with seq > `after_seq`, in seq order, at most `limit`."""
        if limit is not None and limit < 0:
            raise InvalidInput("limit must be >= 0")
        stmt = (
            select(*_COLUMNS).where(T.c.chain_id == chain_id, T.c.seq > after_seq).order_by(T.c.seq)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._db.read() as conn:
            return [LedgerEvent(*row) for row in conn.execute(stmt)]

    def head(self, chain_id: str) -> ChainHead | None:
        """The last event of a chain, or None for a chain with no events."""
        stmt = select(H.c.chain_id, H.c.seq, H.c.hash).where(H.c.chain_id == chain_id)
        with self._db.read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else ChainHead(row[0], row[1], row[2])

    def heads(self) -> Iterator[ChainHead]:
        """The last event of every chain, ordered by chain_id (streamed).

        Read from `ledger_heads`, which a trigger keeps with every insert into the
        ledger; `verify` checks it against the events."""
        stmt = select(H.c.chain_id, H.c.seq, H.c.hash).order_by(H.c.chain_id)
        with self._db.read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS).execute(
                stmt
            )
            for row in result:
                yield ChainHead(row[0], row[1], row[2])

    def iter_events(
        self,
        kinds: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[LedgerEvent]:
        """Events across all chains ordered by (chain_id, seq), streamed.

        `since` is inclusive and `until` exclusive (recorded_at). Close the iterator
        (or exhaust it) to release its database connection.
        """
        stmt = select(*_COLUMNS).order_by(T.c.chain_id, T.c.seq)
        if kinds is not None:
            stmt = stmt.where(T.c.kind.in_(list(kinds)))
        if since is not None:
            stmt = stmt.where(T.c.recorded_at >= aware(since, "since"))
        if until is not None:
            stmt = stmt.where(T.c.recorded_at < aware(until, "until"))
        return self._stream_events(stmt)

    def _stream_events(self, stmt: Select[Any]) -> Iterator[LedgerEvent]:
        with self._db.read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS).execute(
                stmt
            )
            for row in result:
                yield LedgerEvent(*row)

    def stream_rows(
        self, until: datetime | None = None, *, links: bool = False
    ) -> Iterator[list[LedgerRow]]:
        """Every event recorded before `until`, as (chain_id, seq, kind, payload, hash)
        tuples in (chain_id, seq) order, in batches: the bulk read of eligibility,
        reports and fraud scans (DBAPI tuples, no time parsing: the event's own times
        are in its payload). With `links`, each tuple also has what verifying it needs:
        `LinkedRow` (prev_hash, and recorded_at as the hashed text)."""
        where, params = "", cast(tuple[Any, ...], ())
        if until is not None:
            aware(until, "until")
            where = " WHERE recorded_at < " + ("?" if self._db.is_sqlite else "%s")
            bound: Any = format_timestamp(until) if self._db.is_sqlite else until
            params = (bound,)
        sql = (
            f"SELECT {linked_columns(self._db.is_sqlite) if links else _ROW_COLUMNS} "
            f"FROM ledger_events{where} ORDER BY chain_id, seq"
        )
        return self._db.stream(sql, params, _BULK_ROWS)

    # -- the register of broken chains --------------------------------------------------

    def mark_broken(self, found: Sequence[BrokenRecord]) -> list[BrokenRecord]:
        """Register chains found broken; returns those not registered before (a chain
        stays registered with its first record: a break is never forgotten)."""
        if not found:
            return []
        for r in found:
            ident(r.chain_id, "chain id")
            aware(r.found_at, "found_at")
        new: list[BrokenRecord] = []
        with self._db.write() as conn:
            known = _registered(conn, [r.chain_id for r in found])
            for r in found:
                if r.chain_id in known:
                    continue
                known[r.chain_id] = r
                conn.execute(
                    B.insert().values(
                        chain_id=r.chain_id,
                        seq=r.seq,
                        reason=r.reason[:500],
                        found_at=r.found_at,
                        found_by=r.found_by[:64],
                    )
                )
                new.append(r)
        return new

    def broken(self, chain_ids: Sequence[str] | None = None) -> dict[str, BrokenRecord]:
        """The registered broken chains (all, or those of `chain_ids`)."""
        with self._db.read() as conn:
            if chain_ids is None:
                return {r[0]: BrokenRecord(*r) for r in conn.execute(select(*_B_COLUMNS))}
            return _registered(conn, list(chain_ids))

    def verify_from(
        self, starts: Sequence[tuple[str, int, str]], upto: dict[str, int] | None = None
    ) -> tuple[list[ChainBreak], dict[str, tuple[int, str]]]:
        """Incremental verification: each chain from a verified point (chain_id, seq,
        hash; seq 0 with the genesis hash: from the start), up to seq `upto[chain]`
        when given. The event at a point must still be there with that hash and must
        still recompute to it; the events after it are re-hashed and linked.

        Reads: a chain whose `upto` is its point costs one row, read with others in one
        statement per 500; the others are read from their point, chain by chain (or, when
        there are more than `_BULK_CHAINS` of them, in one ordered pass over the table).

        Returns the first break of each broken chain and the last verified head
        (seq, hash) of every chain read (the point itself when nothing followed)."""
        breaks: list[ChainBreak] = []
        last: dict[str, tuple[int, str]] = {}
        limits = upto or {}
        points = {c: (seq, h) for c, seq, h in starts}
        still = sorted(c for c, (seq, _) in points.items() if seq > 0 and limits.get(c) == seq)
        grown = sorted(set(points) - set(still))

        def check(chain_id: str, rows: list[Any]) -> None:
            seq, hash_ = points[chain_id]
            if rows and rows[0][1] < seq:  # the bulk pass reads chains from their start
                rows = [r for r in rows if r[1] >= seq]
            found, at, h = verify_linked(chain_id, seq, hash_, rows, limits.get(chain_id))
            if found is not None:
                breaks.append(found)
            else:
                last[chain_id] = (at, h)

        sqlite = self._db.is_sqlite
        cols = linked_columns(sqlite)
        e_cols = linked_columns(sqlite, "e")
        with self._db.read(snapshot=True) as conn:
            dbapi: Any = conn.connection.driver_connection
            cursor = dbapi.cursor()
            try:
                if len(still) > _BULK_POINTS:
                    # Many unchanged chains (a seal when little grew): their head events in
                    # one pass over the head index joined to the events, not a query each.
                    still = self._verify_heads(
                        cursor, e_cols, {c: points[c][0] for c in still}, check
                    )
                for i in range(0, len(still), _IN_CHUNK):
                    chunk = still[i : i + _IN_CHUNK]
                    if sqlite:
                        # A point query per chain: in-process, each a primary-key search
                        # (a row-value IN list would scan the whole table instead).
                        point_rows: list[Any] = []
                        for c in chunk:
                            cursor.execute(
                                f"SELECT {cols} FROM ledger_events WHERE chain_id = ? AND seq = ?",
                                (c, points[c][0]),
                            )
                            point_rows.extend(cursor.fetchall())
                    else:
                        cursor.execute(
                            f"SELECT {e_cols} FROM unnest(%s::text[], %s::bigint[]) "
                            "AS w(chain_id, at) JOIN ledger_events e "
                            "ON e.chain_id = w.chain_id AND e.seq = w.at",
                            (chunk, [points[c][0] for c in chunk]),
                        )
                        point_rows = cursor.fetchall()
                    found_rows = {r[0]: [r] for r in point_rows}
                    for c in chunk:
                        check(c, found_rows.get(c, []))
                if len(grown) > _BULK_CHAINS:
                    self._verify_bulk(cursor, cols, set(grown), check)
                    return breaks, last
                for i in range(0, len(grown), _IN_CHUNK):
                    chunk = grown[i : i + _IN_CHUNK]
                    if sqlite:
                        rows: list[Any] = []
                        for c in chunk:
                            cursor.execute(
                                f"SELECT {cols} FROM ledger_events WHERE chain_id = ? "
                                "AND seq >= ? ORDER BY seq",
                                (c, points[c][0]),
                            )
                            rows.extend(cursor.fetchall())
                    else:
                        cursor.execute(
                            f"SELECT {e_cols} "
                            "FROM unnest(%s::text[], %s::bigint[]) AS w(chain_id, after) "
                            "JOIN ledger_events e ON e.chain_id = w.chain_id "
                            "AND e.seq >= w.after ORDER BY e.chain_id, e.seq",
                            (chunk, [points[c][0] for c in chunk]),
                        )
                        rows = cursor.fetchall()
                    by_chain: dict[str, list[Any]] = {}
                    for r in rows:
                        by_chain.setdefault(r[0], []).append(r)
                    for c in chunk:
                        check(c, by_chain.get(c, []))
            finally:
                cursor.close()
        return breaks, last

    def _verify_heads(
        self, cursor: Any, e_cols: str, wanted: dict[str, int], check: Any
    ) -> list[str]:
        """`verify_from` for chains whose point is their indexed head: the head event of
        every chain, in one statement. Returns the chains left to read one by one (their
        point is not the indexed head, or that event is gone)."""
        sql = (
            f"SELECT {e_cols} FROM ledger_heads h JOIN ledger_events e "
            "ON e.chain_id = h.chain_id AND e.seq = h.seq"
        )
        if self._db.is_sqlite:
            cursor.execute(sql)
            batches: Iterator[list[Any]] = iter(lambda: cursor.fetchmany(_STREAM_ROWS), [])
        else:
            it = cursor.stream(sql, size=_PG_CHUNK_ROWS)
            batches = iter(lambda: list(islice(it, _STREAM_ROWS)), [])
        for batch in batches:
            for r in batch:
                if wanted.get(r[0]) == r[1]:
                    del wanted[r[0]]
                    check(r[0], [r])
        return sorted(wanted)

    def _verify_bulk(self, cursor: Any, cols: str, wanted: set[str], check: Any) -> None:
        """`verify_from` for many chains: one ordered pass over every event."""
        sql = f"SELECT {cols} FROM ledger_events ORDER BY chain_id, seq"
        if self._db.is_sqlite:
            cursor.execute(sql)
            batches: Iterator[list[Any]] = iter(lambda: cursor.fetchmany(_STREAM_ROWS), [])
        else:
            it = cursor.stream(sql, size=_PG_CHUNK_ROWS)
            batches = iter(lambda: list(islice(it, _STREAM_ROWS)), [])
        current: str | None = None
        rows: list[Any] = []
        for batch in batches:
            for r in batch:
                if r[0] != current:
                    if current in wanted:
                        check(current, rows)
                        wanted.discard(current)
                    current, rows = r[0], []
                if current in wanted:
                    rows.append(r)
        if current in wanted:
            check(current, rows)
            wanted.discard(current)
        for chain_id in sorted(wanted):  # no events at all
            check(chain_id, [])

    # -- verification -------------------------------------------------------------

    def verify(self, chain_ids: Sequence[str] | None = None) -> VerifyReport:
        """Recompute chains (all when None) and name the first bad event of each broken one.

        Streams rows in (chain_id, seq) order, one statement per chunk of requested
        chains: memory does not grow with the number of events, but it holds the head
        (seq, hash) of every verified chain, and of every row of the head index, to
        compare the two (some 100 MB at 400,000 chains).
        """
        verifier = ChainVerifier()
        breaks: list[ChainBreak] = []
        wanted = None if chain_ids is None else sorted(set(chain_ids))
        sqlite = self._db.is_sqlite
        # One snapshot: the head index is compared with the events this pass read.
        with self._db.read(snapshot=True) as conn:
            # The hot loop reads DBAPI tuples directly: SQLAlchemy Row objects would
            # cost about a quarter of the time. The SQL is fixed text; ids are bound.
            dbapi: Any = conn.connection.driver_connection
            for where, params in _chain_filters(wanted, sqlite):
                if sqlite:
                    breaks.extend(_verify_sqlite(dbapi, where, params, verifier))
                else:
                    breaks.extend(_verify_postgres(dbapi, where, params, verifier))
            verifier.finish()
            broken = {b.chain_id for b in breaks}
            breaks.extend(_check_heads(conn, wanted, verifier.intact_heads, broken))
        return VerifyReport(chains=verifier.chains, events=verifier.events, breaks=tuple(breaks))

    # -- used by the group-commit writer --------------------------------------------

    @property
    def retries(self) -> int:
        return self._retries

    @property
    def db(self) -> Database:
        return self._db


def _verify_sqlite(
    dbapi: Any, where: str, params: tuple[Any, ...], verifier: ChainVerifier
) -> list[ChainBreak]:
    # recorded_at is stored as the exact text that is hashed (see UTCDateTime), and
    # the table is clustered by (chain_id, seq): this is one sequential pass.
    breaks: list[ChainBreak] = []
    cursor = dbapi.cursor()
    try:
        cursor.execute(
            f"SELECT {_COLUMN_NAMES} FROM ledger_events{where} ORDER BY chain_id, seq", params
        )
        while rows := cursor.fetchmany(_STREAM_ROWS):
            breaks.extend(verifier.feed_rows(rows))
    finally:
        cursor.close()
    return breaks


# The server formats recorded_at exactly as format_timestamp does (the contract
# tests hold the two together), on its own CPU.
_PG_TS: Final = "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _verify_postgres(
    dbapi: Any, where: str, params: tuple[Any, ...], verifier: ChainVerifier
) -> list[ChainBreak]:
    # psycopg's stream() in chunked mode: the server keeps sending rows while this
    # thread hashes the previous ones (a FETCH-based server-side cursor would make
    # each side wait for the other; measured 290k vs 170k events/s).
    breaks: list[ChainBreak] = []
    sql = (
        f"SELECT {_COLUMN_NAMES.replace('recorded_at', _PG_TS)} "
        f"FROM ledger_events{where} ORDER BY chain_id, seq"
    )
    cursor = dbapi.cursor()
    rows_iter = cursor.stream(sql, params, size=_PG_CHUNK_ROWS)
    try:
        while rows := list(islice(rows_iter, _STREAM_ROWS)):
            breaks.extend(verifier.feed_rows(rows))
    finally:
        rows_iter.close()
        cursor.close()
    return breaks


_ROW_COLUMNS: Final = "chain_id, seq, kind, payload, hash"
_B_COLUMNS = (B.c.chain_id, B.c.seq, B.c.reason, B.c.found_at, B.c.found_by)


def linked_columns(sqlite: bool, table: str = "") -> str:
    """The SELECT list of a `LinkedRow` from ledger_events (recorded_at as hashed text),
    its columns qualified by `table` (an alias) when given."""
    q = f"{table}." if table else ""
    ts = f"{q}recorded_at" if sqlite else _PG_TS.replace("recorded_at", f"{q}recorded_at")
    return f"{q}chain_id, {q}seq, {q}kind, {q}payload, {q}hash, {q}prev_hash, {ts}"


def _registered(conn: Connection, chain_ids: list[str]) -> dict[str, BrokenRecord]:
    found: dict[str, BrokenRecord] = {}
    for i in range(0, len(chain_ids), _IN_CHUNK):
        chunk = chain_ids[i : i + _IN_CHUNK]
        for r in conn.execute(select(*_B_COLUMNS).where(B.c.chain_id.in_(chunk))):
            found[r[0]] = BrokenRecord(*r)
    return found


def _refuse_broken(
    conn: Connection, heads: dict[str, _Head], sqlite: bool
) -> dict[str, BrokenChain]:
    """The chains of an append that must be refused: registered as broken, or whose
    stored head no longer verifies (the head index names an event that is gone, or
    whose fields no longer hash to the indexed hash). Checked inside the append's
    write transaction, after the chains' locks. Returns chain -> error."""
    refused: dict[str, BrokenChain] = {}
    chain_ids = list(heads)
    for chain_id, r in _registered(conn, chain_ids).items():
        refused[chain_id] = BrokenChain(chain_id, r.seq, r.reason)
    wanted = [(c, h.seq) for c, h in heads.items() if c not in refused and h.seq > 0]
    cols = linked_columns(sqlite)
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        # PostgreSQL: one statement for the batch's chains (the group commit writes many
        # at once). SQLite: point queries (primary-key searches, in-process), as a
        # row-value IN list would make it scan the whole table.
        found: list[Any] = []
        if sqlite:
            for pair in chunk:
                found.extend(
                    conn.exec_driver_sql(
                        f"SELECT {cols} FROM ledger_events WHERE chain_id = ? AND seq = ?", pair
                    ).all()
                )
        else:
            found[:] = conn.exec_driver_sql(
                f"SELECT {cols.replace('chain_id', 'e.chain_id')} FROM "
                "unnest(%(c)s::text[], %(s)s::bigint[]) AS w(chain_id, at) "
                "JOIN ledger_events e ON e.chain_id = w.chain_id AND e.seq = w.at",
                {"c": [c for c, _ in chunk], "s": [s for _, s in chunk]},
            ).all()
        rows = {r[0]: r for r in found}
        for chain_id, seq in chunk:
            head = heads[chain_id]
            row = rows.get(chain_id)
            problem = None
            if row is None:
                problem = f"the head event {seq} is missing: the chain was cut"
            else:
                bad, _, _ = verify_linked(chain_id, seq, head.hash, [row])
                if bad is not None:
                    problem = f"the head event {seq} was altered"
            if problem is not None:
                refused[chain_id] = BrokenChain(chain_id, seq, problem)
    return refused


def _check_heads(
    conn: Connection,
    wanted: list[str] | None,
    intact: dict[str, tuple[int, str]],
    broken: set[str],
) -> list[ChainBreak]:
    """`ledger_heads` against the heads of the chains just verified: a row that names
    another last event, or a chain without its row, means the index was altered."""
    rows: dict[str, tuple[int, str]] = {}
    stmt = select(H.c.chain_id, H.c.seq, H.c.hash)
    if wanted is None:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute(stmt)}
    else:
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i : i + _IN_CHUNK]
            rows.update(
                {r[0]: (r[1], r[2]) for r in conn.execute(stmt.where(H.c.chain_id.in_(chunk)))}
            )
    out: list[ChainBreak] = []
    for chain_id, (seq, hash_) in sorted(rows.items()):
        if chain_id in broken:
            continue
        found = intact.get(chain_id)
        if found != (seq, hash_):
            last = f"ends at event {found[0]}" if found else "has no events"
            out.append(
                ChainBreak(chain_id, seq, f"the head index names event {seq}, but the chain {last}")
            )
    for chain_id in sorted(intact.keys() - rows.keys()):
        out.append(
            ChainBreak(chain_id, intact[chain_id][0], "the chain is missing from the head index")
        )
    return out


def _chain_filters(wanted: list[str] | None, sqlite: bool) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(WHERE clause, parameters) per query: all chains, or sorted chunks of ids."""
    if wanted is None:
        yield "", ()
        return
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        if sqlite:
            yield f" WHERE chain_id IN ({', '.join('?' * len(chunk))})", tuple(chunk)
        else:
            yield " WHERE chain_id = ANY(%s)", (chunk,)


def _check_append(chain_id: str, events: Sequence[NewEvent]) -> None:
    ident(chain_id, "chain id")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise InvalidInput(f"at most {MAX_EVENTS_PER_APPEND} events per append")
    for ev in events:
        if not isinstance(ev, NewEvent):
            raise InvalidInput(f"expected NewEvent, got {type(ev).__name__}")
        ident(ev.kind, "event kind")
        if not isinstance(ev.payload, str) or len(ev.payload) > MAX_PAYLOAD_CHARS:
            raise InvalidInput(f"payload must be a str of at most {MAX_PAYLOAD_CHARS} characters")
        if not is_canonical_json(ev.payload):
            raise InvalidInput(
                f"payload of a {ev.kind!r} event is not canonical JSON "
                "(build it with storage.canonical.canonical_json)"
            )


def _build(
    chain_id: str,
    head: _Head,
    events: Sequence[NewEvent],
    now: datetime,
    rows: list[tuple[Any, ...]],
    db: Database,
) -> tuple[list[LedgerEvent], _Head]:
    """Hash `events` after `head`; append their INSERT parameters to `rows`."""
    # recorded_at never goes backwards within a chain, even if the wall clock does,
    # so the learning clock derived from the ledger never sees negative intervals.
    at = now if head.recorded_at is None or now >= head.recorded_at else head.recorded_at
    ts = format_timestamp(at)
    # The INSERT below bypasses the column type (speed), so bind what UTCDateTime
    # would: the hashed text on SQLite, the aware datetime on PostgreSQL.
    stored_at: Any = ts if db.is_sqlite else at
    chain_json = encode_basestring(chain_id)
    seq = head.seq
    prev = head.hash
    out: list[LedgerEvent] = []
    for ev in events:
        seq += 1
        digest = hash_event_fields(bytes.fromhex(prev), chain_json, seq, ts, ev.kind, ev.payload)
        rows.append((chain_id, seq, stored_at, ev.kind, ev.payload, prev, digest))
        out.append(LedgerEvent(chain_id, seq, at, ev.kind, ev.payload, prev, digest))
        prev = digest
    return out, _Head(seq, prev, at)


_INSERT_SQL: Final = {
    "sqlite": f"INSERT INTO ledger_events ({_COLUMN_NAMES}) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "postgresql": f"INSERT INTO ledger_events ({_COLUMN_NAMES}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
}


def _insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    # One executemany with DBAPI tuples: the per-row cost of SQLAlchemy's parameter
    # processing is a fifth of the writer's time at thousands of events per second.
    # (On PostgreSQL one INSERT of the rows as arrays, unnest(), measured 3.6 times
    # slower than psycopg's pipelined executemany.)
    conn.exec_driver_sql(_INSERT_SQL[conn.dialect.name], rows)


_KEY_INSERT_SQL: Final = {
    "sqlite": "INSERT INTO ledger_keys (chain_id, key, seq) VALUES (?, ?, ?)",
    "postgresql": "INSERT INTO ledger_keys (chain_id, key, seq) VALUES (%s, %s, %s)",
}


def _insert_keys(conn: Connection, rows: list[tuple[str, str, int]]) -> None:
    conn.exec_driver_sql(_KEY_INSERT_SQL[conn.dialect.name], rows)


def _existing_keys(
    conn: Connection, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """seq of the first event of each (chain_id, key) already appended."""
    found: dict[tuple[str, str], int] = {}
    for chain_id, key in wanted:
        row = conn.execute(select(K.c.seq).where(K.c.chain_id == chain_id, K.c.key == key)).first()
        if row is not None:
            found[(chain_id, key)] = int(row[0])
    return found


def _events_at(conn: Connection, refs: Sequence[tuple[str, int]]) -> list[list[LedgerEvent]]:
    out: list[list[LedgerEvent]] = []
    for chain_id, seq in refs:
        row = conn.execute(select(*_COLUMNS).where(T.c.chain_id == chain_id, T.c.seq == seq)).one()
        out.append([LedgerEvent(*row)])
    return out


def _lock_chains(conn: Connection, chain_ids: Sequence[str]) -> None:
    """PostgreSQL: lock the chains' appends until COMMIT, across all connections.

    Then a head read after the lock stays the head until this transaction ends, so
    writers in several processes queue instead of losing races again and again
    under READ COMMITTED. Locks are taken in key order (PostgreSQL evaluates
    volatile output functions after ORDER BY), so two batches cannot deadlock.
    SQLite needs nothing: BEGIN IMMEDIATE already admits one writer at a time.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(c) for c in chain_ids})
    conn.exec_driver_sql(
        "SELECT pg_advisory_xact_lock(k) FROM unnest(%(keys)s::bigint[]) AS t(k) ORDER BY k",
        {"keys": keys},
    )


def _lock_key(chain_id: str) -> int:
    # 64-bit advisory-lock key of a chain, the same in every process.
    return int.from_bytes(hashlib.sha256(chain_id.encode()).digest()[:8], "big", signed=True)


def _load_heads(conn: Connection, chain_ids: Sequence[str]) -> dict[str, _Head]:
    """Current heads of the given chains (absent: no events yet)."""
    found: dict[str, _Head] = {}
    for i in range(0, len(chain_ids), _IN_CHUNK):
        chunk = list(chain_ids[i : i + _IN_CHUNK])
        stmt = select(H.c.chain_id, H.c.seq, H.c.hash, H.c.recorded_at).where(
            H.c.chain_id.in_(chunk)
        )
        for chain_id, seq, hash_, recorded_at in conn.execute(stmt):
            found[chain_id] = _Head(seq, hash_, recorded_at)
    return found


class _Pending:
    """One caller's append, waiting for the writer. `done` is held until it is settled."""

    __slots__ = (
        "chain_id",
        "events",
        "key",
        "created",
        "attempts",
        "done",
        "settled",
        "result",
        "error",
    )

    def __init__(self, chain_id: str, events: Sequence[NewEvent], key: str | None = None) -> None:
        self.chain_id = chain_id
        self.events = events
        self.key = key
        self.created = True
        self.attempts = 0
        # A bare lock is the cheapest one-shot signal: acquired now, released by
        # the writer after COMMIT (or on failure), acquired again by the caller.
        self.done = threading.Lock()
        self.done.acquire()
        self.settled = False
        self.result: list[LedgerEvent] = []
        self.error: StorageError | None = None

    def succeed(self, result: list[LedgerEvent]) -> None:
        if not self.settled:
            self.settled = True
            self.result = result
            self.done.release()

    def fail(self, error: StorageError) -> None:
        if not self.settled:
            self.settled = True
            self.error = error
            self.done.release()


_STOP: Final = object()


class _GroupCommitWriter:
    """The single writer thread of a `SqlLedgerStore` (started on first use)."""

    def __init__(self, store: SqlLedgerStore) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._state = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = False  # set by the writer thread when it reads _STOP
        # Heads of recently written chains, touched only by the writer thread. A
        # stale entry (another process appended) cannot fork a chain: its seq+1
        # already exists, the INSERT fails on the primary key and the head is reloaded.
        self._heads: dict[str, _Head] = {}

    def submit(self, chain_id: str, events: Sequence[NewEvent]) -> list[LedgerEvent]:
        return self.submit_pending(chain_id, events, None).result

    def submit_pending(
        self, chain_id: str, events: Sequence[NewEvent], key: str | None
    ) -> _Pending:
        pending = _Pending(chain_id, events, key)
        with self._state:
            if self._closed:
                raise StorageError("the ledger store is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ledger-group-commit", daemon=True
                )
                self._thread.start()
            self._queue.put(pending)
        pending.done.acquire()
        if pending.error is not None:
            raise pending.error
        return pending

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)  # after every request already queued
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        # Callers of a committed batch are woken just before the *next* batch's
        # COMMIT, when there is one: they then run (and queue their next append)
        # while this thread waits in fsync without the GIL, instead of competing
        # with it for the GIL between its BEGIN, INSERT and COMMIT calls.
        committed: list[tuple[_Pending, list[LedgerEvent]]] = []
        retry: list[_Pending] = []
        try:
            while True:
                if retry:
                    batch, retry = retry, []
                    self._collect(batch, block=False)
                else:
                    batch = []
                    self._collect(batch, block=not committed)
                if not batch:
                    _wake(committed)
                    if self._stopping:
                        return
                    continue
                try:
                    retry = self._commit(batch, committed)
                except BaseException as exc:  # the thread must survive and wake everyone
                    _wake(committed)
                    err = StorageError(f"ledger writer failed: {type(exc).__name__}: {exc}")
                    for p in batch:
                        p.fail(err)
                    self._heads.clear()
        finally:
            _wake(committed)

    def _collect(self, batch: list[_Pending], *, block: bool) -> None:
        """Add queued requests to `batch`; wait for one only when `block`."""
        size = sum(len(p.events) for p in batch)
        while size < _MAX_BATCH_EVENTS and not self._stopping:
            try:
                item = self._queue.get() if block and not batch else self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._stopping = True  # nothing can follow it in the queue
                return
            assert isinstance(item, _Pending)
            batch.append(item)
            size += len(item.events)

    def _commit(
        self,
        batch: list[_Pending],
        committed: list[tuple[_Pending, list[LedgerEvent]]],
        *,
        solo: bool = False,
    ) -> list[_Pending]:
        """Write `batch` in one transaction; return the requests to retry.

        `committed` holds earlier requests whose COMMIT is done: they are woken
        before this COMMIT (or on failure), and on success replaced by this batch.
        """
        heads = self._heads
        used: dict[str, _Head] = {}
        results: list[list[LedgerEvent]] = []
        failed: list[_Pending] = []
        refused: dict[str, BrokenChain] = {}
        chain_ids = list({p.chain_id: None for p in batch})
        try:
            with self._store.db.write() as conn:
                # Every chain of the batch, cached or not: a writer that skipped the
                # lock could keep overtaking a locked one, which would then starve.
                _lock_chains(conn, chain_ids)
                missing = [c for c in chain_ids if c not in heads]
                loaded = _load_heads(conn, missing) if missing else {}
                working: dict[str, _Head] = {}
                for chain_id in chain_ids:
                    head = heads.get(chain_id) or loaded.get(chain_id, _GENESIS)
                    used[chain_id] = working[chain_id] = head
                # A broken chain takes no more events (its requests fail, the others go on).
                refused = _refuse_broken(conn, dict(working), self._store.db.is_sqlite)
                rows: list[tuple[Any, ...]] = []
                key_rows: list[tuple[str, str, int]] = []
                keyed = [(p.chain_id, p.key) for p in batch if p.key is not None]
                existing = _existing_keys(conn, keyed) if keyed else {}
                first_of: dict[tuple[str, str], list[LedgerEvent]] = {}
                if existing:
                    refs = list(existing.items())
                    for (found_ref, _), evs in zip(
                        refs, _events_at(conn, [(c, s) for (c, _), s in refs]), strict=True
                    ):
                        first_of[found_ref] = evs
                now = datetime.now(UTC)
                for p in batch:
                    ref = (p.chain_id, p.key) if p.key is not None else None
                    if ref is not None and ref in first_of:
                        # Already appended (earlier, or earlier in this batch).
                        p.created = False
                        results.append(first_of[ref])
                        continue
                    if p.chain_id in refused:
                        results.append([])
                        failed.append(p)
                        continue
                    out, working[p.chain_id] = _build(
                        p.chain_id, working[p.chain_id], p.events, now, rows, self._store.db
                    )
                    results.append(out)
                    if ref is not None:
                        p.created = True
                        first_of[ref] = out[:1]
                        key_rows.append((p.chain_id, ref[1], out[0].seq))
                if rows:
                    _insert(conn, rows)
                if key_rows:
                    _insert_keys(conn, key_rows)
                _wake(committed)
        except Duplicate:
            _wake(committed)
            return self._after_conflict(batch, used, solo)
        except StorageError as exc:
            _wake(committed)
            # The commit may or may not have happened (e.g. connection lost during
            # COMMIT): forget these heads so the next append reloads them.
            for chain_id in used:
                heads.pop(chain_id, None)
            for p in batch:
                p.fail(_copy_error(exc))
            return []
        for chain_id, head in working.items():
            heads.pop(chain_id, None)  # re-insert: most recently used last
            if chain_id not in refused:
                heads[chain_id] = head
        while len(heads) > _HEAD_CACHE_SIZE:
            del heads[next(iter(heads))]
        for p in failed:
            err = refused[p.chain_id]
            p.fail(BrokenChain(err.chain_id, err.seq, err.reason))
        done = set(map(id, failed))
        committed.extend((p, r) for p, r in zip(batch, results, strict=True) if id(p) not in done)
        return []

    def _after_conflict(
        self, batch: list[_Pending], used: dict[str, _Head], solo: bool
    ) -> list[_Pending]:
        heads = self._heads
        for chain_id in used:
            heads.pop(chain_id, None)
        try:
            with self._store.db.read() as conn:
                fresh = _load_heads(conn, list(used))
        except StorageError as exc:
            for p in batch:
                p.fail(_copy_error(exc))
            return []
        stale = {c for c, head in used.items() if not fresh.get(c, _GENESIS).same(head)}
        if not stale:
            # A primary-key failure without a moved head should not happen. Never
            # let one request poison the others: retry each alone once, then fail.
            if solo:
                batch[0].fail(StorageError("ledger insert refused by the database"))
                return []
            retry: list[_Pending] = []
            for p in batch:
                done: list[tuple[_Pending, list[LedgerEvent]]] = []
                retry.extend(self._commit([p], done, solo=True))
                _wake(done)
            return retry
        # The heads stay out of the cache: the retry reads them inside its write
        # transaction (under SQLite's write lock no other writer can move them).
        retry = []
        for p in batch:
            if p.chain_id in stale:
                p.attempts += 1  # this request really lost a race
                if p.attempts > self._store.retries:
                    p.fail(
                        AppendConflict(
                            f"chain {p.chain_id!r}: lost the race for the next seq "
                            f"{p.attempts} times"
                        )
                    )
                    continue
            retry.append(p)
        return retry


def _wake(committed: list[tuple[_Pending, list[LedgerEvent]]]) -> None:
    for p, out in committed:
        p.succeed(out)
    committed.clear()


def _copy_error(exc: StorageError) -> StorageError:
    # Each waiting thread raises its own instance (tracebacks are per raise).
    if isinstance(exc, BrokenChain):
        return BrokenChain(exc.chain_id, exc.seq, exc.reason)
    try:
        copy = type(exc)(*exc.args)
    except Exception:  # pragma: no cover - all our errors take a message
        copy = StorageError(str(exc))
    copy.__cause__ = exc.__cause__
    return copy

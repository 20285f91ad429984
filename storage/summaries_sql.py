"""`SummaryStore` on SQL: per-chain summaries kept beside the ledger (revision 0005).

A summary is whatever a reader folded from a chain (the store does not look inside
`body`), stored under the chain with the seq and hash of the last event it covers
and a `version` naming the code and settings that folded it. Readers list every
chain's head next to its summary and refold only the chains that grew, so a scan of
a large, mostly settled ledger reads one row per chain instead of every event.

The bulk paths use DBAPI cursors directly (hundreds of thousands of rows): no ORM
rows and no time parsing. Head times are compared with `until` in SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from storage.canonical import format_timestamp
from storage.engine import Database
from storage.ledger_sql import linked_columns
from storage.types import LedgerRow
from storage.validate import aware

# chain_id, head seq, head hash, head recorded_at (as the driver returns it), head
# recorded before `until`, summary seq, summary hash, summary recorded before
# `until`, summary body, and its fold state only when the chain has grown past it;
# the summary columns are None when there is none of this version.
ChainSummaryRow = tuple[
    str, int, str, Any, bool, int | None, str | None, bool | None, str | None, str | None
]
# chain_id, seq, hash, recorded_at (as `chains` returned it), body, state
NewSummary = tuple[str, int, str, Any, str, str]

_STREAM_ROWS: Final = 10_000
_IN_CHUNK: Final = 500

_UPSERT_WHERE: Final = (
    "ON CONFLICT (chain_id) DO UPDATE SET version = excluded.version, seq = excluded.seq, "
    "hash = excluded.hash, recorded_at = excluded.recorded_at, body = excluded.body, "
    "state = excluded.state "
    "WHERE chain_summaries.version <> excluded.version OR excluded.seq >= chain_summaries.seq"
)


class SqlSummaryStore:
    """Thread-safe; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _p(self) -> str:
        return "?" if self._db.is_sqlite else "%s"

    def _time(self, at: datetime) -> Any:
        aware(at, "until")
        return format_timestamp(at) if self._db.is_sqlite else at

    def chains(
        self, version: str, until: datetime | None = None
    ) -> Iterator[list[ChainSummaryRow]]:
        """Every chain that has events, by chain_id, with its summary of `version`, in
        batches. `until` only sets the two "recorded before" flags; a summary's fold
        state is read only for chains that have grown past it."""
        p = self._p()
        if until is None:
            before_h, before_s, params = "1 = 1", "1 = 1", (version,)
        else:
            bound = self._time(until)
            before_h, before_s = f"h.recorded_at < {p}", f"s.recorded_at < {p}"
            params = (bound, bound, version)  # type: ignore[assignment]
        sql = (
            f"SELECT h.chain_id, h.seq, h.hash, h.recorded_at, {before_h}, "
            f"s.seq, s.hash, {before_s}, s.body, "
            "CASE WHEN s.seq <> h.seq THEN s.state END "
            "FROM ledger_heads h LEFT JOIN chain_summaries s "
            f"ON s.chain_id = h.chain_id AND s.version = {p} ORDER BY h.chain_id"
        )
        return self._db.stream(sql, params, _STREAM_ROWS)

    def read_chains(
        self,
        after: Sequence[tuple[str, int]],
        until: datetime | None = None,
        *,
        links: bool = False,
    ) -> Iterator[list[LedgerRow]]:
        """Events of the given chains with seq above the given one (recorded before
        `until`), as (chain_id, seq, kind, payload, hash), in (chain_id, seq) order.
        With `links`: as `LinkedRow`s, and from the given seq itself (the event a
        verification resumes from: it checks that this one is still as verified)."""
        p = self._p()
        cols = linked_columns(self._db.is_sqlite) if links else "chain_id, seq, kind, payload, hash"
        gt = ">=" if links else ">"
        wanted = sorted(after)
        cut = "" if until is None else f" AND recorded_at < {p}"
        tail: tuple[Any, ...] = () if until is None else (self._time(until),)
        with self._db.read() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                for i in range(0, len(wanted), _IN_CHUNK):
                    chunk = wanted[i : i + _IN_CHUNK]
                    if self._db.is_sqlite:
                        # In-process: a statement per chain costs microseconds.
                        rows: list[LedgerRow] = []
                        for chain_id, seq in chunk:
                            cursor.execute(
                                f"SELECT {cols} FROM ledger_events "
                                f"WHERE chain_id = ? AND seq {gt} ?{cut} ORDER BY seq",
                                (chain_id, seq, *tail),
                            )
                            rows.extend(cursor.fetchall())
                    else:
                        # One round trip per chunk, not per chain (4,000 grown chains
                        # took seconds one by one).
                        cursor.execute(
                            f"SELECT {cols.replace('chain_id', 'e.chain_id', 1)} "
                            "FROM unnest(%s::text[], %s::bigint[]) AS w(chain_id, after) "
                            "JOIN ledger_events e ON e.chain_id = w.chain_id "
                            f"AND e.seq {gt} w.after"
                            f"{cut.replace('recorded_at', 'e.recorded_at')} "
                            "ORDER BY e.chain_id, e.seq",
                            ([c for c, _ in chunk], [s for _, s in chunk], *tail),
                        )
                        rows = cursor.fetchall()
                    yield rows
            finally:
                cursor.close()

    def put(self, version: str, rows: Sequence[NewSummary]) -> None:
        """Store summaries; one replaces a chain's summary of another version, or of this
        version covering no more events (a slower writer never rolls one back)."""
        if not rows:
            return
        with self._db.write() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if self._db.is_sqlite:
                    cursor.executemany(
                        "INSERT INTO chain_summaries (chain_id, version, seq, hash, "
                        "recorded_at, body, state) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        f"{_UPSERT_WHERE}",
                        [(c, version, s, h, r, b, st) for c, s, h, r, b, st in rows],
                    )
                else:
                    # COPY into a scratch table, then one upsert: many times faster than
                    # row-by-row statements for a first build of 400,000 summaries.
                    cursor.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS chain_summaries_in "
                        "(LIKE chain_summaries) ON COMMIT DELETE ROWS"
                    )
                    with cursor.copy(
                        "COPY chain_summaries_in (chain_id, version, seq, hash, recorded_at, "
                        "body, state) FROM STDIN"
                    ) as copy:
                        for c, s, h, r, b, st in rows:
                            copy.write_row((c, version, s, h, r, b, st))
                    cursor.execute(
                        "INSERT INTO chain_summaries SELECT * FROM chain_summaries_in "
                        f"{_UPSERT_WHERE}"
                    )
            finally:
                cursor.close()

    def clear(self) -> int:
        """Forget every summary (they are rebuilt on the next scan); returns how many."""
        with self._db.write() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute("DELETE FROM chain_summaries")
                return int(cursor.rowcount)
            finally:
                cursor.close()

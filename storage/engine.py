"""Engine creation, per-backend connection set-up and driver error translation.

Nothing here runs at import time; `create_database` builds one engine per call.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from config.settings import DatabaseSettings
from storage.exceptions import (
    Duplicate,
    IntegrityViolation,
    InvalidInput,
    SchemaOutdated,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
)

# A SQLite writer waits this long for the write lock before giving up with
# StorageUnavailable (ledger writes hold it for a few ms per batch).
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_MMAP_BYTES = 1 << 30
SQLITE_FILE_MODE = 0o600  # the database file (and so its -wal and -shm files)
PG_CONNECT_TIMEOUT_S = 5
POOL_SIZE = 10
POOL_MAX_OVERFLOW = 30
POOL_TIMEOUT_S = 30.0


class Database:
    """One engine plus transaction helpers that translate driver errors.

    `read()` opens a deferred transaction; `write()` one that takes the write lock
    at BEGIN on SQLite (BEGIN IMMEDIATE), so a writer never fails half-way on a
    stale read snapshot and concurrent writers queue on `busy_timeout`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction; with `snapshot`, every statement in it sees the same
        state (REPEATABLE READ on PostgreSQL; a SQLite read transaction always does)."""
        with translate_errors(), self.engine.connect() as conn:
            if snapshot and self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def stream(self, sql: str, params: tuple[Any, ...], batch: int) -> Iterator[list[Any]]:
        """Rows of one fixed SQL text (placeholders in the driver's style) as DBAPI
        tuples, in lists of up to `batch`: the bulk reads, without Row objects or
        type processing. PostgreSQL sends rows while the caller works on the last batch."""
        with self.read() as conn:
            dbapi: Any = conn.connection.driver_connection
            cursor = dbapi.cursor()
            try:
                if self.is_sqlite:
                    cursor.execute(sql, params)
                    while rows := cursor.fetchmany(batch):
                        yield rows
                else:
                    it = cursor.stream(sql, params, size=1000)
                    try:
                        while rows := list(islice(it, batch)):
                            yield rows
                    finally:
                        it.close()
            finally:
                cursor.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with translate_errors(), self.engine.connect() as conn:
            conn.execution_options(storage_write=True)
            with conn.begin():
                yield conn

    def ping(self) -> None:
        """Open a connection and run a trivial query; raises `StorageUnavailable`."""
        with self.read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def normalise_url(url: str) -> URL:
    """Parse a SQLAlchemy URL; plain ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StorageConfigError(f"invalid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise StorageConfigError(
            f"unsupported database backend {backend!r}: use sqlite or postgresql+psycopg"
        )
    return parsed


def create_database(settings: DatabaseSettings) -> Database:
    """Build the engine for `settings.url`; creates the SQLite file's folder if missing.

    No connection is opened here. Raises `StorageConfigError` for an unusable URL.
    """
    url = normalise_url(settings.url)
    try:
        if url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url, settings.echo)
        else:
            engine = create_engine(
                url,
                echo=settings.echo,
                pool_pre_ping=True,
                pool_size=POOL_SIZE,
                max_overflow=POOL_MAX_OVERFLOW,
                pool_timeout=POOL_TIMEOUT_S,
                connect_args={
                    "connect_timeout": PG_CONNECT_TIMEOUT_S,
                    # Times come back as UTC; TIMESTAMPTZ stores instants anyway.
                    "options": "-c timezone=UTC",
                },
            )
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise StorageConfigError(f"cannot build a database engine: {exc}") from None
    return Database(engine)


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    database = url.database or ""
    if (
        database in ("", ":memory:")
        or "mode=memory" in database
        or url.query.get("mode") == ("memory")
    ):
        raise StorageConfigError(
            "in-memory SQLite is refused: every pooled connection would see its own empty "
            "database and nothing would be durable; use a file path"
        )
    # The engine first (it connects lazily): a URL naming no usable driver creates no file.
    engine = create_engine(
        url,
        echo=echo,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    if not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            owner_only(Path(database).expanduser())
        except OSError as exc:
            raise StorageUnavailable(f"cannot create the database file {database}: {exc}") from None
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def owner_only(database: Path) -> None:
    """Create the SQLite file 0600 before SQLite does, and take group and other access
    away from one that exists (with its -wal and -shm files): it holds names and full
    ID numbers. SQLite creates the -wal and -shm files with the database file's mode.
    """
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (it would BEGIN lazily
    # and not before DDL); `_sqlite_on_begin` emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enter_wal(cur)
        # FULL: every COMMIT fsyncs the WAL, so an append that returned survives a
        # power cut (NORMAL would only protect against application crashes).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA cache_size=-65536")  # KiB: 64 MiB page cache per connection
        # Reads through a memory map (address space only, shared page cache): chain
        # verification walks the primary-key index and jumps around the table.
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    finally:
        cur.close()


def _enter_wal(cur: Any) -> None:
    """Switch the database file to WAL, retrying while another connection switches it.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at
    once (without the busy handler: it would be a deadlock between two connections
    both holding the shared lock) when several connections open a new file together,
    as several processes do at first start-up. Retry until the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            row = cur.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError as exc:
            # The primary result code (low byte): SQLITE_BUSY or SQLITE_LOCKED.
            code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            continue
        if row is None or str(row[0]).lower() != "wal":
            raise StorageConfigError(
                f"SQLite refused write-ahead logging (journal mode {row!r}); "
                "the database file must be on a local file system"
            )
        return


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("storage_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise any SQLAlchemy or driver error as a `StorageError`."""
    try:
        yield
    except StorageError:
        raise
    except (sa_exc.SQLAlchemyError, sqlite3.Error, psycopg.Error) as exc:
        raise translate(exc) from exc
    except OverflowError:
        # sqlite3 binds Python ints to 64-bit INTEGER and raises this, unwrapped, for
        # a larger one (an id in a URL, say); PostgreSQL reports a DataError instead.
        raise InvalidInput("a number is outside the range the database stores") from None


def translate(exc: BaseException) -> StorageError:
    """The `StorageError` for a SQLAlchemy or driver error.

    Messages carry the driver's message, never the statement parameters (they can
    hold ID numbers, token hashes or ciphertext).
    """
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, StorageError):
        return exc.orig  # raised by our own column types while binding
    orig: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        orig = exc.orig
    message = _first_line(orig)
    if isinstance(exc, sa_exc.TimeoutError):
        return StorageUnavailable(f"no database connection free in the pool: {message}")
    if isinstance(exc, sa_exc.DisconnectionError):
        return StorageUnavailable(f"database connection lost: {message}")
    if isinstance(orig, sqlite3.IntegrityError | psycopg.IntegrityError):
        if constraint_kind(orig) == "unique":
            return Duplicate(message)
        return IntegrityViolation(message)
    if _schema_missing(orig):
        return SchemaOutdated(
            f"database schema is missing or outdated ({message}); run `supervisor migrate`"
        )
    if isinstance(orig, sqlite3.DataError | psycopg.DataError):
        return InvalidInput(message)
    if isinstance(
        orig,
        sqlite3.OperationalError
        | sqlite3.InterfaceError
        | psycopg.OperationalError
        | psycopg.InterfaceError,
    ):
        return StorageUnavailable(f"database unavailable: {message}")
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError):
        return StorageUnavailable(f"database unavailable: {message}")
    return StorageError(f"database error: {type(orig).__name__}: {message}")


def constraint_kind(orig: BaseException) -> str:
    """'unique', 'foreign_key', 'check', 'not_null' or 'other' for an integrity error."""
    if isinstance(orig, psycopg.Error):
        return {
            "23505": "unique",
            "23503": "foreign_key",
            "23514": "check",
            "23502": "not_null",
        }.get(orig.sqlstate or "", "other")
    name = getattr(orig, "sqlite_errorname", "")
    return {
        "SQLITE_CONSTRAINT_UNIQUE": "unique",
        "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
        "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
        "SQLITE_CONSTRAINT_CHECK": "check",
        "SQLITE_CONSTRAINT_NOTNULL": "not_null",
    }.get(name, "other")


def is_unique_violation(exc: BaseException) -> bool:
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) else exc
    return orig is not None and constraint_kind(orig) == "unique"


def _schema_missing(orig: BaseException) -> bool:
    if isinstance(orig, psycopg.Error):
        return orig.sqlstate in ("42P01", "42703")  # undefined table / column
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig)
        return text.startswith("no such table") or text.startswith("no such column")
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

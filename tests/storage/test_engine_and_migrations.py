"""Engine set-up, error translation, the UTC column type and migrations."""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, inspect, select

from config.settings import DatabaseSettings, EvidenceSettings
from storage import Storage, open_storage
from storage.canonical import format_timestamp
from storage.coltypes import UTCDateTime
from storage.engine import create_database
from storage.exceptions import (
    Duplicate,
    IntegrityViolation,
    InvalidInput,
    SchemaOutdated,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
)
from storage.ledger_sql import _PG_TS
from storage.migrate import check_schema, current_revision, head_revision, upgrade
from storage.models import Base
from storage.types import NewEvent
from tests.storage.helpers import TEMPLATE_KEY, raw_rows

TABLES = {
    "institutions",
    "courses",
    "learners",
    "consents",
    "face_templates",
    "api_tokens",
    "study_sessions",
    "flags",
    "evidence",
    "ledger_events",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_upgrade_creates_the_schema_and_is_idempotent(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        assert not Path(db_url.removeprefix("sqlite:///")).parent.exists()
    assert upgrade(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()
    db = create_database(DatabaseSettings(url=db_url))
    try:
        assert current_revision(db) == head_revision()
        check_schema(db)
        assert TABLES <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_migrations_match_the_models(migrated_url: str) -> None:
    db = create_database(DatabaseSettings(url=migrated_url))
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        db.dispose()


def test_concurrent_upgrades_do_not_collide(db_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(db_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_many_first_connections_to_a_new_sqlite_file_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite answers
    # "database is locked" at once to all but one of several connections doing it
    # together (no busy wait: it would deadlock). Seen in CI as a failed concurrent
    # start-up. Each thread has its own engine, as separate processes would. Without
    # the retry, 150 rounds of 8 saw about 8 such failures here; with it, none in 300.
    errors: list[BaseException] = []
    for round_no in range(150):
        url = f"sqlite:///{tmp_path / f'{round_no}.db'}"
        barrier = threading.Barrier(8)

        def connect(url: str = url, barrier: threading.Barrier = barrier) -> None:
            db = create_database(DatabaseSettings(url=url))
            # Hold each new connection until all eight have opened the file, so that
            # they set up (and switch to WAL) together, as processes starting at once do.
            event.listen(db.engine, "connect", lambda *_: barrier.wait(), insert=True)
            try:
                with db.write() as conn:
                    conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.dispose()

        threads = [threading.Thread(target=connect) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        db = create_database(DatabaseSettings(url=url))
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        db.dispose()
    assert errors == []


def test_the_sqlite_file_and_its_wal_files_are_the_owners_only(tmp_path: Path) -> None:
    """The database holds names and full ID numbers: it, its -wal and its -shm are
    created 0600 whatever the umask, and an existing file readable by others is
    narrowed to the owner when the service opens it."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "var" / "supervisor.db"
        db = create_database(DatabaseSettings(url=f"sqlite:///{path}"))
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}
        db.dispose()
        older = tmp_path / "older.db"
        older.touch(mode=0o644)
        os.chmod(older, 0o644)
        db = create_database(DatabaseSettings(url=f"sqlite:///{older}"))
        with db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert older.stat().st_mode & 0o777 == 0o600
        db.dispose()
    finally:
        os.umask(old)


def test_open_storage_refuses_an_unmigrated_database(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaOutdated, match="supervisor migrate"):
        open_storage(
            DatabaseSettings(url=db_url), EvidenceSettings(directory=tmp_path), TEMPLATE_KEY
        )


def test_a_missing_table_is_reported_as_schema_outdated(store: Storage) -> None:
    with store.db.write() as conn:
        conn.exec_driver_sql("DROP TABLE flags")
    with pytest.raises(SchemaOutdated):
        store.registry.list_flags()


@pytest.mark.postgres
def test_postgres_on_a_closed_port_is_unavailable(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
    with pytest.raises(StorageUnavailable):
        upgrade(url)
    with pytest.raises(StorageUnavailable):
        open_storage(DatabaseSettings(url=url), EvidenceSettings(directory=tmp_path), TEMPLATE_KEY)
    # Plain postgresql:// means psycopg 3 as well.
    with pytest.raises(StorageUnavailable):
        upgrade(url.replace("postgresql+psycopg", "postgresql"))


def test_sqlite_in_an_unusable_place_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageUnavailable):
        upgrade(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "sqlite+nosuchdriver:///x"],
)
def test_unusable_urls_are_configuration_errors(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageConfigError):
        open_storage(DatabaseSettings(url=url), EvidenceSettings(directory=tmp_path), TEMPLATE_KEY)
    # Refused before anything was written: no database file where the URL points.
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ=", TEMPLATE_KEY + "AAAA"])
def test_bad_template_keys_are_refused(key: str, migrated_url: str, tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match="template key"):
        open_storage(DatabaseSettings(url=migrated_url), EvidenceSettings(directory=tmp_path), key)


def test_sqlite_connections_are_durable_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = create_database(DatabaseSettings(url=f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}"))
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
    finally:
        db.dispose()
    assert (tmp_path / "a" / "b" / "x.db").is_file()


def test_foreign_keys_are_enforced(store: Storage) -> None:
    with pytest.raises(IntegrityViolation) as caught:
        with store.db.write() as conn:
            conn.exec_driver_sql(
                "INSERT INTO courses (institution_id, name, required_hours, delivery_mode, "
                "created_at) VALUES (999, 'x', 1, 'online', '2026-01-01T00:00:00.000000Z')"
                if store.db.is_sqlite
                else "INSERT INTO courses (institution_id, name, required_hours, delivery_mode, "
                "created_at) VALUES (999, 'x', 1, 'online', now())"
            )
    assert not isinstance(caught.value, Duplicate)


def test_unique_violations_become_duplicate(store: Storage) -> None:
    with pytest.raises(Duplicate):
        with store.db.write() as conn:
            for _ in range(2):
                conn.exec_driver_sql(
                    "INSERT INTO evidence (sha256, size, content_type, stored_at, retain_until) "
                    "VALUES ('"
                    + "a" * 64
                    + "', 1, 'image/jpeg', "
                    + (
                        "'2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')"
                        if store.db.is_sqlite
                        else "now(), now())"
                    )
                )


def test_utc_column_type_refuses_naive_and_returns_aware_utc(store: Storage) -> None:
    table = Table(
        "utc_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime(), nullable=True),
    )
    table.create(store.db.engine)
    plus8 = datetime(2026, 5, 1, 16, 30, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
    with store.db.write() as conn:
        conn.execute(insert(table), [{"id": 1, "at": plus8}, {"id": 2, "at": None}])
    with pytest.raises(InvalidInput, match="naive"):
        with store.db.write() as conn:
            conn.execute(insert(table).values(id=3, at=datetime(2026, 5, 1, 8, 30)))
    with pytest.raises(InvalidInput):
        with store.db.write() as conn:
            conn.execute(insert(table).values(id=4, at="2026-05-01"))
    with store.db.read() as conn:
        rows = conn.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
        later = (
            conn.execute(
                select(table.c.id).where(table.c.at > datetime(2026, 5, 1, 8, 29, tzinfo=UTC))
            )
            .scalars()
            .all()
        )
    assert rows == [datetime(2026, 5, 1, 8, 30, 0, 123456, tzinfo=UTC), None]
    assert rows[0] is not None and rows[0].utcoffset() == timedelta(0)
    assert later == [1]
    if store.db.is_sqlite:
        assert raw_rows(store, "SELECT at FROM utc_probe WHERE id = 1") == [
            ("2026-05-01T08:30:00.123456Z",)
        ]


def test_no_driver_exception_escapes(store: Storage) -> None:
    # Whatever goes wrong below the stores surfaces as a StorageError.
    with pytest.raises(StorageError):
        with store.db.read() as conn:
            conn.exec_driver_sql("SELECT * FROM no_such_table")
    with pytest.raises(StorageError):
        with store.db.read() as conn:
            conn.exec_driver_sql("THIS IS NOT SQL")


def test_storage_is_a_context_manager_that_closes(migrated_url: str, tmp_path: Path) -> None:
    with open_storage(
        DatabaseSettings(url=migrated_url), EvidenceSettings(directory=tmp_path), TEMPLATE_KEY
    ) as store:
        store.ledger.append("c", [])
        store.registry.create_institution("x")
    with pytest.raises(StorageError, match="closed"):
        store.ledger.append("c", [NewEvent("k", "{}")])
    store.close()  # idempotent


@pytest.mark.postgres
def test_postgres_formats_times_exactly_as_they_are_hashed(postgres_url: str) -> None:
    # Verification on PostgreSQL lets the server format recorded_at; it must be
    # byte-identical to format_timestamp or intact chains would look broken.
    values = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    db = create_database(DatabaseSettings(url=postgres_url))
    table = Table(
        "ts_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("recorded_at", UTCDateTime()),
    )
    try:
        table.create(db.engine)
        with db.write() as conn:
            conn.execute(insert(table), [{"id": i, "recorded_at": v} for i, v in enumerate(values)])
        with db.read() as conn:
            formatted = conn.exec_driver_sql(f"SELECT {_PG_TS} FROM ts_probe ORDER BY id")
            assert [r[0] for r in formatted] == [format_timestamp(v) for v in values]
    finally:
        db.dispose()

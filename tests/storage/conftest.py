"""Fixtures of the storage contract suite: every store runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import DatabaseSettings, EvidenceSettings
from storage import Storage, open_storage
from storage.migrate import upgrade
from tests.storage.helpers import TEMPLATE_KEY

OpenStore = Callable[..., Storage]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, empty database on each backend (SQLite in a missing folder)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'supervisor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def migrated_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
def evidence_dir(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


@pytest.fixture
def open_store(migrated_url: str, evidence_dir: Path) -> Iterator[OpenStore]:
    """Open stores on the migrated test database; all are closed at teardown."""
    opened: list[Storage] = []

    def _open(
        *, key: str = TEMPLATE_KEY, append_retries: int = 8, group_commit: bool = True
    ) -> Storage:
        store = open_storage(
            DatabaseSettings(url=migrated_url, append_retries=append_retries),
            EvidenceSettings(directory=evidence_dir),
            key,
            group_commit=group_commit,
        )
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Storage:
    return open_store()

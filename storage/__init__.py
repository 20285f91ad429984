"""Storage: the only writer of the database and the evidence store.

Entry points: `open_storage` (the stores) and `storage.migrate.upgrade` (the schema).
Every error raised is a `storage.exceptions.StorageError`.

`Storage` and `open_storage` are loaded on first use, so importing `storage.types`
or `storage.canonical` (e.g. in verification workers or an offline verifier) does
not import SQLAlchemy, the drivers or Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.facade import Storage, open_storage

__all__ = ["Storage", "open_storage"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from storage import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")

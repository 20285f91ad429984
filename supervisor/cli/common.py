"""What every command group needs: the storage, migrated to head first."""

from __future__ import annotations

from config import Settings
from storage import Storage, open_storage
from storage.migrate import upgrade


def open_migrated(settings: Settings, group_commit: bool = True) -> Storage:
    """Migrate the database to head and open the storage (close it when done)."""
    upgrade(settings.database.url)
    return open_storage(
        settings.database,
        settings.evidence,
        settings.security.template_key.get_secret_value(),
        group_commit=group_commit,
    )

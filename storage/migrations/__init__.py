"""Alembic environment of the storage schema; run through `storage.migrate`."""

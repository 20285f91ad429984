"""Alembic environment. Run through `storage.migrate`, which passes an open connection.

The connection is already inside a write transaction (and, on PostgreSQL, holds an
advisory lock), so concurrent start-ups cannot apply the same revision twice.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from storage.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "storage migrations run only through storage.migrate.upgrade(url) "
        "(or `supervisor migrate`), which supplies the connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables in later revisions.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()

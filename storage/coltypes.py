"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from storage.canonical import format_timestamp
from storage.exceptions import IntegrityViolation, InvalidInput


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC instant. Naive datetimes are refused on bind.

    PostgreSQL stores TIMESTAMPTZ. SQLite stores the 27-character text
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (`storage.canonical.format_timestamp`): fixed
    width, so text order is time order and SQL comparisons work; and it is the
    exact form hashed into ledger events. Loaded values are aware, in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(27))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise InvalidInput(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(f"naive datetime refused (need timezone-aware UTC): {value!r}")
        if dialect.name == "sqlite":
            return format_timestamp(value)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise IntegrityViolation(f"stored time is not timezone-aware: {value!r}")
        return value.astimezone(UTC)

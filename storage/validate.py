"""Input checks shared by the stores (values are refused before reaching SQL)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

from storage.exceptions import InvalidInput

# Chain ids, session ids, event and flag kinds: ASCII, safe in URLs, paths and logs.
IDENT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
IDENT_RULE: Final = "1-64 characters of A-Z a-z 0-9 . _ : - (starting with a letter or digit)"
SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")

E = TypeVar("E", bound=StrEnum)


def ident(value: Any, what: str) -> str:
    if not isinstance(value, str) or not IDENT.fullmatch(value):
        raise InvalidInput(f"{what} must be {IDENT_RULE} (got {value!r})")
    return value


def sha256_hex(value: Any, what: str = "sha256") -> str:
    # fullmatch, not match: `$` would accept a trailing newline.
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise InvalidInput(f"{what} must be 64 lowercase hex characters")
    return value


def aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime (got {value!r})")
    return value


# Control characters other than tab, line feed and carriage return (NUL breaks
# PostgreSQL's text and a spreadsheet file; the others hide in what a clerk reads), and
# the bidirectional overrides and isolates that make text read as other text.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def text(value: Any, what: str, max_len: int) -> str:
    """A non-empty string, stripped, at most `max_len` characters, with no control
    character but tab and line breaks and no bidirectional override."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    value = value.strip()
    if len(value) > max_len:
        raise InvalidInput(f"{what} must be at most {max_len} characters")
    if _HIDDEN.search(value) is not None:
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def enum_value(cls: type[E], value: Any, what: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise InvalidInput(f"{what} must be one of {allowed} (got {value!r})") from None


def row_id(value: Any, what: str) -> int:
    if type(value) is not int:
        raise InvalidInput(f"{what} id must be an int (got {type(value).__name__})")
    return value

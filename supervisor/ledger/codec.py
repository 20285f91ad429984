"""Ledger events to their canonical stored form and back.

`encode` turns an event into a `NewEvent` whose payload is canonical JSON
(storage.canonical): every field, times as ISO 8601 UTC with a trailing Z, floats
rounded to 6 decimals, tuples as arrays, nested records as objects, and fields made
with `events.optional()` left out while None. `decode` turns a stored event back
into its dataclass through the one registry of kinds (`supervisor.ledger.kinds`);
keys a payload lacks take their defaults and keys this code does not know are
ignored, so events written by earlier or later versions still read.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Union, get_args, get_origin, get_type_hints

from storage.canonical import canonical_json
from storage.types import LedgerEvent, NewEvent
from supervisor.ledger.events import OMIT_IF_NONE, Event, iso, parse_iso
from supervisor.ledger.kinds import EVENT_TYPES


def _to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return body_of(value)
    return value


def body_of(record: Any) -> dict[str, Any]:
    """An event's (or a nested record's) payload as JSON values, before canonical text."""
    return {
        f.name: _to_json_value(getattr(record, f.name))
        for f in dataclasses.fields(record)
        if not (f.metadata.get(OMIT_IF_NONE) and getattr(record, f.name) is None)
    }


def encode(event: Event) -> NewEvent:
    """The canonical stored form of an event."""
    return NewEvent(kind=event.KIND, payload=canonical_json(body_of(event)))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _from_json_value(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _from_json_value(inner[0], value) if len(inner) == 1 else value
    if tp is datetime:
        return parse_iso(value)
    if origin is tuple:
        (item,) = get_args(tp)[:1]
        return tuple(_from_json_value(item, v) for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _record(tp, value) if isinstance(value, dict) else None
    return value


def _record(cls: type, body: dict[str, Any]) -> Any:
    hints = _hints(cls)
    return cls(
        **{
            f.name: _from_json_value(hints[f.name], body[f.name])
            for f in dataclasses.fields(cls)
            if f.name in body
        }
    )


def decode(stored: LedgerEvent) -> Event | None:
    """The dataclass of a stored event, or None for a kind this code does not know."""
    cls = EVENT_TYPES.get(stored.kind)
    if cls is None:
        return None
    event: Event = _record(cls, json.loads(stored.payload))
    return event


def decode_all(stored: Iterable[LedgerEvent]) -> list[tuple[LedgerEvent, Event]]:
    out = []
    for s in stored:
        event = decode(s)
        if event is not None:
            out.append((s, event))
    return out


def decode_payload(kind: str, payload: str) -> Event | None:
    """The dataclass of an event given only its kind and canonical payload."""
    stub = LedgerEvent("", 0, datetime.now(UTC), kind, payload, "", "")
    return decode(stub)

"""Ledger event kinds and their payloads.

Each kind is a frozen dataclass. `encode` turns one into a `NewEvent` whose
payload is canonical JSON (storage.canonical); `decode` turns a stored event
back into its dataclass. Times inside payloads are ISO 8601 UTC strings with
microseconds and a trailing Z; they are set by the server, never by a client.

Chains: one per study session (`session:<uuid>`), one per learner for identity
and consent facts (`learner:<id>`), and one per learner per class (classroom).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from storage.canonical import canonical_json
from storage.types import LedgerEvent, NewEvent


def iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime refused; use timezone-aware UTC")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def session_chain(session_id: str) -> str:
    return f"session:{session_id}"


def learner_chain(learner_id: int) -> str:
    return f"learner:{learner_id}"


@dataclass(frozen=True, slots=True)
class Event:
    KIND: ClassVar[str] = ""


# -- session chain -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    KIND: ClassVar[str] = "session_started"
    session_id: str
    learner_id: int
    course_id: int
    institution_id: int
    mode: str  # "upload" or "webrtc"
    at: datetime


@dataclass(frozen=True, slots=True)
class CheckRecorded(Event):
    """One check and its verdict. `passed` drives crediting."""

    KIND: ClassVar[str] = "check"
    check_id: str
    check_kind: str  # presence | identity
    purpose: str  # start | scheduled | retry | submitted
    verdict: str
    passed: bool
    at: datetime  # when the frame reached the server
    distance: float | None
    threshold: float | None
    issues: tuple[str, ...]
    faces: int
    frames: int
    evidence_sha256: str | None
    scheduled_at: datetime | None = None
    # Passive liveness over the check's frames: verdict, reasons, measures.
    liveness: dict[str, Any] | None = None
    # An active challenge answered in these frames: kind, outcome, measures.
    challenge: dict[str, Any] | None = None
    # What the browser reported that raised suspicion (it never clears any).
    suspicion: tuple[str, ...] = ()
    # Why the evidence frame could not be kept (the check counts all the same).
    evidence_error: str | None = None


@dataclass(frozen=True, slots=True)
class CheckMissed(Event):
    """A check the server asked for got no frame within its window."""

    KIND: ClassVar[str] = "check_missed"
    check_id: str
    check_kind: str
    scheduled_at: datetime
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class CheckDeferred(Event):
    """A check the service could not run (overload): never counted against the learner."""

    KIND: ClassVar[str] = "check_deferred"
    check_id: str
    check_kind: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    KIND: ClassVar[str] = "state_changed"
    from_state: str
    to_state: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    KIND: ClassVar[str] = "session_ended"
    reason: str  # learner | failed_windows | consent_withdrawn | operator | expired
    at: datetime


# -- learner chain -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentGiven(Event):
    KIND: ClassVar[str] = "consent_given"
    learner_id: int
    consent_id: int
    text_version: str
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ConsentWithdrawn(Event):
    KIND: ClassVar[str] = "consent_withdrawn"
    learner_id: int
    consent_id: int
    templates_deleted: int
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TemplateEnrolled(Event):
    KIND: ClassVar[str] = "template_enrolled"
    learner_id: int
    template_id: int
    evidence_sha256: str
    face_width_px: int
    recorded_by: str
    at: datetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (
        SessionStarted,
        CheckRecorded,
        CheckMissed,
        CheckDeferred,
        StateChanged,
        SessionEnded,
        ConsentGiven,
        ConsentWithdrawn,
        TemplateEnrolled,
    )
}


def register(cls: type[Event]) -> type[Event]:
    """Add an event kind defined elsewhere in the supervisor (classroom, flags...)."""
    if cls.KIND in EVENT_TYPES and EVENT_TYPES[cls.KIND] is not cls:
        raise ValueError(f"event kind {cls.KIND!r} is already registered")
    EVENT_TYPES[cls.KIND] = cls
    return cls


def _to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def encode(event: Event) -> NewEvent:
    """The canonical stored form of an event."""
    body = {f.name: _to_json_value(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return NewEvent(kind=event.KIND, payload=canonical_json(body))


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
    return value


_HINTS: dict[type[Event], dict[str, Any]] = {}


def decode(stored: LedgerEvent) -> Event | None:
    """The dataclass of a stored event, or None for a kind this code does not know."""
    cls = EVENT_TYPES.get(stored.kind)
    if cls is None:
        return None
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    body = json.loads(stored.payload)
    kwargs = {
        f.name: _from_json_value(hints[f.name], body.get(f.name))
        for f in dataclasses.fields(cls)
        if f.name in body
    }
    return cls(**kwargs)


def decode_all(stored: typing.Iterable[LedgerEvent]) -> list[tuple[LedgerEvent, Event]]:
    out = []
    for s in stored:
        event = decode(s)
        if event is not None:
            out.append((s, event))
    return out


def decode_payload(kind: str, payload: str) -> Event | None:
    """The dataclass of an event given only its kind and canonical payload."""
    from datetime import UTC

    stub = LedgerEvent("", 0, datetime.now(UTC), kind, payload, "", "")
    return decode(stub)

"""Event payloads: canonical, round-trip, refusing naive times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.canonical import canonical_json
from storage.types import LedgerEvent
from supervisor.ledger import events as ev


def _stored(new: ev.Event) -> LedgerEvent:
    encoded = ev.encode(new)
    return LedgerEvent("c", 1, datetime.now(UTC), encoded.kind, encoded.payload, "0" * 64, "0" * 64)


def test_check_event_round_trips_exactly() -> None:
    at = datetime(2026, 11, 25, 9, 30, 1, 123456, tzinfo=UTC)
    check = ev.CheckRecorded(
        "id1",
        "identity",
        "scheduled",
        "match",
        True,
        at,
        0.312345678,
        0.53,
        ("too_dark",),
        1,
        3,
        "ab" * 32,
        at,
    )
    encoded = ev.encode(check)
    assert encoded.payload == canonical_json(__import__("json").loads(encoded.payload))
    assert '"at":"2026-11-25T09:30:01.123456Z"' in encoded.payload
    back = ev.decode(_stored(check))
    assert back == ev.CheckRecorded(
        "id1",
        "identity",
        "scheduled",
        "match",
        True,
        at,
        0.312346,
        0.53,
        ("too_dark",),
        1,
        3,
        "ab" * 32,
        at,
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        ev.encode(ev.SessionEnded("learner", datetime(2026, 1, 1)))


def test_unknown_kinds_decode_to_none() -> None:
    stored = LedgerEvent("c", 1, datetime.now(UTC), "from_the_future", "{}", "0" * 64, "0" * 64)
    assert ev.decode(stored) is None

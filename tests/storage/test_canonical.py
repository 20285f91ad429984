"""Canonical JSON and the chain hash, checked against an independent recomputation."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import storage.canonical
from storage.canonical import (
    GENESIS_HASH,
    ChainVerifier,
    canonical_json,
    event_hash,
    format_timestamp,
    is_canonical_json,
    parse_timestamp,
    verify_events,
)
from storage.exceptions import InvalidInput
from storage.types import LedgerEvent

T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def reference_hash(prev: str, chain_id: str, seq: int, ts: str, kind: str, payload: str) -> str:
    """The module docstring's specification, written independently with json.dumps."""
    envelope = {"chain_id": chain_id, "seq": seq, "recorded_at": ts, "kind": kind}
    envelope["payload"] = payload
    text = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(bytes.fromhex(prev) + text.encode("utf-8")).hexdigest()


def make_chain(chain_id: str, payloads: list[str], start: datetime = T0) -> list[LedgerEvent]:
    events, prev = [], GENESIS_HASH
    for i, payload in enumerate(payloads, start=1):
        at = start + timedelta(seconds=i)
        digest = event_hash(prev, chain_id, i, at, "check", payload)
        events.append(LedgerEvent(chain_id, i, at, "check", payload, prev, digest))
        prev = digest
    return events


def test_canonical_json_sorts_keys_without_whitespace_and_keeps_unicode() -> None:
    value = {"b": [1, 2.5, None, True], "a": {"z": 'é\n"', "y": -0}}
    assert canonical_json(value) == '{"a":{"y":0,"z":"é\\n\\""},"b":[1,2.5,null,true]}'


@pytest.mark.parametrize(
    "bad",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": datetime(2026, 1, 1, tzinfo=UTC)},
        {"x": b"bytes"},
        {"x": (1, 2)},
        {1: "int key"},
        {"x": "\ud800"},
        {"x": {1, 2}},
    ],
)
def test_canonical_json_refuses_non_json_values(bad: object) -> None:
    with pytest.raises(InvalidInput):
        canonical_json(bad)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"a":1,"b":"x"}', True),
        ('{"b":1,"a":2}', False),  # unsorted
        ('{"a": 1}', False),  # whitespace
        ('{"a":NaN}', False),
        ('{"a":1e400}', False),  # parses to infinity
        ('"\\u00e9"', False),  # escaped non-ASCII
        ('"é"', True),
        ("1.00", False),
        ("not json", False),
        ('"\ud800"', False),  # lone surrogate
    ],
)
def test_is_canonical_json(text: str, ok: bool) -> None:
    assert is_canonical_json(text) is ok


def test_timestamps_are_utc_with_microseconds_and_z() -> None:
    at = datetime(2026, 1, 2, 11, 4, 5, 6, tzinfo=timezone(timedelta(hours=8)))
    assert format_timestamp(at) == "2026-01-02T03:04:05.000006Z"
    assert format_timestamp(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000000Z"
    assert parse_timestamp("2026-01-02T03:04:05.000006Z") == T0
    with pytest.raises(InvalidInput):
        format_timestamp(datetime(2026, 1, 2))  # naive
    with pytest.raises(InvalidInput):
        parse_timestamp("2026-01-02T03:04:05Z")


def test_docstring_worked_example_is_true() -> None:
    doc = storage.canonical.__doc__ or ""
    documented = re.search(r'hash {8}= "([0-9a-f]{64})"', doc)
    assert documented is not None
    payload = '{"verdict":"pass"}'
    assert event_hash(GENESIS_HASH, "s-1", 1, T0, "check", payload) == documented.group(1)
    assert reference_hash(
        GENESIS_HASH, "s-1", 1, "2026-01-02T03:04:05.000006Z", "check", payload
    ) == documented.group(1)


@given(
    chain_id=st.text(min_size=1, max_size=20),
    kind=st.text(min_size=1, max_size=20),
    payload=st.text(max_size=200),
    seq=st.integers(min_value=1, max_value=2**53),
    prev=st.binary(min_size=32, max_size=32),
)
def test_event_hash_matches_the_specification(
    chain_id: str, kind: str, payload: str, seq: int, prev: bytes
) -> None:
    # Any text: quotes, backslashes, control characters, non-ASCII (surrogates excluded
    # by st.text's default alphabet), so the fast path's escaping is held to json.dumps.
    ts = format_timestamp(T0)
    expected = reference_hash(prev.hex(), chain_id, seq, ts, kind, payload)
    assert event_hash(prev.hex(), chain_id, seq, T0, kind, payload) == expected
    genesis_hash = reference_hash(GENESIS_HASH, chain_id, 1, ts, kind, payload)
    event = LedgerEvent(chain_id, 1, T0, kind, payload, GENESIS_HASH, genesis_hash)
    assert verify_events([event]) is None
    # The database verifier's inlined fast path must agree as well.
    verifier = ChainVerifier()
    row = (chain_id, 1, ts, kind, payload, GENESIS_HASH, genesis_hash)
    assert verifier.feed_rows([row]) == [] and verifier.events == 1
    tampered = (chain_id, 1, ts, kind, payload + " ", GENESIS_HASH, genesis_hash)
    assert [b.seq for b in ChainVerifier().feed_rows([tampered])] == [1]


def test_event_hash_refuses_bad_arguments() -> None:
    with pytest.raises(InvalidInput):
        event_hash("zz" * 32, "c", 1, T0, "k", "{}")
    with pytest.raises(InvalidInput):
        event_hash(GENESIS_HASH, "c", 0, T0, "k", "{}")
    with pytest.raises(InvalidInput):
        event_hash(GENESIS_HASH, "c", 1, datetime(2026, 1, 1), "k", "{}")


def test_verify_events_accepts_an_intact_chain() -> None:
    assert verify_events(make_chain("c", [f'{{"n":{i}}}' for i in range(10)])) is None
    assert verify_events([]) is None


def test_verify_events_names_an_altered_payload() -> None:
    events = make_chain("c", [f'{{"n":{i}}}' for i in range(10)])
    events[4] = replace(events[4], payload='{"n":999}')
    found = verify_events(events)
    assert found is not None and (found.chain_id, found.seq) == ("c", 5)
    assert "hash" in found.reason


def test_verify_events_names_the_broken_link_after_a_rehashed_event() -> None:
    events = make_chain("c", [f'{{"n":{i}}}' for i in range(10)])
    old = events[4]
    new_hash = event_hash(old.prev_hash, "c", 5, old.recorded_at, old.kind, '{"n":999}')
    events[4] = replace(old, payload='{"n":999}', hash=new_hash)
    found = verify_events(events)
    assert found is not None and found.seq == 6
    assert "prev_hash" in found.reason


def test_verify_events_names_a_missing_event() -> None:
    events = make_chain("c", [f'{{"n":{i}}}' for i in range(10)])
    del events[3]
    found = verify_events(events)
    assert found is not None and found.seq == 4
    assert "missing" in found.reason


def test_verify_events_catches_a_moved_time_and_a_wrong_genesis() -> None:
    events = make_chain("c", ["{}", "{}"])
    moved = [events[0], replace(events[1], recorded_at=events[1].recorded_at + timedelta(1))]
    found = verify_events(moved)
    assert found is not None and found.seq == 2
    bad_genesis = [replace(events[0], prev_hash="1" * 64)]
    found = verify_events(bad_genesis)
    assert found is not None and found.seq == 1


def test_verify_events_refuses_mixed_chains() -> None:
    found = verify_events(make_chain("a", ["{}"]) + make_chain("b", ["{}"]))
    assert found is not None and "another chain" in found.reason

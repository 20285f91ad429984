"""Canonical JSON and the ledger's hash chain.

This docstring is the specification an inspector needs to recompute every hash
offline from an export, with any SHA-256 and any language.

Canonical JSON (`canonical_json`)
---------------------------------
JSON text with object keys sorted by code point, no whitespace at all (separators
``,`` and ``:``), non-ASCII characters written as themselves in UTF-8 (never as
``\\uXXXX``), and these escapes inside strings and nothing else:
``"`` -> ``\\"``, ``\\`` -> ``\\\\``, U+0008 -> ``\\b``, U+0009 -> ``\\t``,
U+000A -> ``\\n``, U+000C -> ``\\f``, U+000D -> ``\\r``, any other U+0000..U+001F ->
``\\u00xx`` (four lowercase hex digits). ``/`` and U+007F are not escaped. Values
are only objects with string keys, arrays, strings, integers that fit in 64 bits
(signed), finite floats (the shortest repr that round-trips), ``true``, ``false`` and
``null``; NaN, Infinity, larger integers, lone surrogates, bytes and datetimes are
refused (pass times as ISO 8601 strings).

Event hash (`event_hash`)
-------------------------
Each event of a chain has ``seq`` 1, 2, 3, ... and stores ``prev_hash`` and ``hash``
as 64 lowercase hex characters. ``prev_hash`` of ``seq`` 1 is 64 zeros (genesis);
``prev_hash`` of every later event is the ``hash`` of the event before it.

    hash = lowercase hex of SHA-256( P || E )

- ``P`` is the 32 bytes whose hex is ``prev_hash``.
- ``E`` is the UTF-8 encoding of this canonical JSON object, exactly these five keys
  in this order (which is the sorted order)::

      {"chain_id":<string>,"kind":<string>,"payload":<string>,"recorded_at":<string>,"seq":<integer>}

  * ``chain_id``, ``kind``: the stored strings.
  * ``payload``: the stored payload text as one JSON *string* (the payload is itself
    canonical JSON, so it appears here escaped, e.g. ``"{\\"a\\":1}"``). The verifier
    never re-serialises the payload, so float formatting does not matter.
  * ``recorded_at``: the UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six
    fraction digits and a literal ``Z``, 27 characters).
  * ``seq``: a decimal integer without sign or leading zeros.

Worked example (checked by the test suite)::

    prev_hash   = "0000000000000000000000000000000000000000000000000000000000000000"
    chain_id    = "s-1"
    seq         = 1
    recorded_at = 2026-01-02T03:04:05.000006Z
    kind        = "check"
    payload     = '{"verdict":"pass"}'
    E = {"chain_id":"s-1","kind":"check","payload":"{\\"verdict\\":\\"pass\\"}",
         "recorded_at":"2026-01-02T03:04:05.000006Z","seq":1}      (one line, no spaces)
    hash        = "fcbffa3e16694c0d042b03cb6ffd9700e93894a89ded557a49dc33e142562066"

Verification walks a chain from ``seq`` 1 and reports the first event whose ``seq``
is not the next number, whose ``prev_hash`` is not the stored ``hash`` of the
previous event, or whose ``hash`` differs from the recomputation. A rewritten event
whose hash was recomputed is therefore named by the *next* event, whose link no
longer matches. Deleting the last events of a chain is not visible from the chain
alone; seals over all chain heads cover that.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring  # the escaping of json.dumps(ensure_ascii=False)
from typing import Any

from storage.exceptions import InvalidInput
from storage.types import ChainBreak, LedgerEvent

GENESIS_HASH = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def canonical_json(obj: object) -> str:
    """Serialise `obj` as canonical JSON (see the module docstring).

    Raises `InvalidInput` for NaN/Infinity, integers past 64 bits, non-string keys,
    lone surrogates and any value that is not a JSON type (datetimes must already be
    strings).
    """
    _check_json_value(obj, "$")
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def is_canonical_json(text: str) -> bool:
    """True when `text` is exactly the canonical JSON of the value it encodes."""
    try:
        text.encode("utf-8")  # refuses lone surrogates, which json.loads keeps
        value = json.loads(text, parse_constant=_refuse_constant)
        # Parsed JSON has only str keys, lists and dicts, so the type walk of
        # canonical_json is not needed; NaN/Infinity fail in dumps (allow_nan=False).
        return (
            json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
            == text
        )
    except (ValueError, RecursionError, UnicodeEncodeError):
        return False


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def format_timestamp(at: datetime) -> str:
    """The hashed form of a time: ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Raises `InvalidInput` for a naive datetime.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"naive datetime refused (need timezone-aware UTC): {at!r}")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """Inverse of `format_timestamp`; refuses any other spelling."""
    if not _TIMESTAMP.fullmatch(text):
        raise InvalidInput(f"not a YYYY-MM-DDTHH:MM:SS.ffffffZ timestamp: {text!r}")
    return datetime.fromisoformat(text)


def event_hash(
    prev_hash: str, chain_id: str, seq: int, recorded_at: datetime, kind: str, payload: str
) -> str:
    """SHA-256 chain hash of one event, as specified in the module docstring."""
    if not _HEX64.fullmatch(prev_hash):
        raise InvalidInput(f"prev_hash must be 64 lowercase hex characters: {prev_hash!r}")
    if type(seq) is not int or seq < 1:
        raise InvalidInput(f"seq must be an integer >= 1: {seq!r}")
    return hash_event_fields(
        bytes.fromhex(prev_hash),
        encode_basestring(chain_id),
        seq,
        format_timestamp(recorded_at),
        kind,
        payload,
    )


def hash_event_fields(
    prev: bytes, chain_json: str, seq: int, ts: str, kind: str, payload: str
) -> str:
    """`event_hash` from prepared parts: raw prev hash, JSON-escaped chain id, hashed time text."""
    # Builds the same bytes as canonical_json({...}) for the five fixed keys, without
    # a dict and a sort per event (verification speed); tests assert the equality.
    # `chain_json` is the already-escaped chain id, cached by callers per chain.
    text = (
        f'{{"chain_id":{chain_json},"kind":{encode_basestring(kind)},'
        f'"payload":{encode_basestring(payload)},"recorded_at":"{ts}","seq":{seq}}}'
    )
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("event text contains a lone surrogate (not valid UTF-8)") from exc
    return hashlib.sha256(prev + data).hexdigest()


class ChainVerifier:
    """Streaming verifier of one or more chains, each given in seq order.

    Feed events chain after chain; `feed` returns the first break of the current
    chain once (later events of a broken chain are skipped). Used by `verify_events`
    and by the database verifier, so both apply the same rules.
    """

    __slots__ = (
        "chains",
        "events",
        "intact_heads",
        "_chain",
        "_chain_json",
        "_next_seq",
        "_prev",
        "_broken",
    )

    def __init__(self) -> None:
        self.chains = 0
        self.events = 0
        # (seq, hash) of the last event of every chain found intact so far; the
        # current chain's is added by `finish`.
        self.intact_heads: dict[str, tuple[int, str]] = {}
        self._chain: str | None = None
        self._chain_json = ""
        self._next_seq = 1
        self._prev = GENESIS_HASH
        self._broken = False

    def feed(
        self, chain_id: str, seq: int, ts: str, kind: str, payload: str, prev_hash: str, hash_: str
    ) -> ChainBreak | None:
        """Check one event; `ts` is the `format_timestamp` form of recorded_at."""
        if chain_id != self._chain:
            self.finish()
            self._chain = chain_id
            self._chain_json = encode_basestring(chain_id)
            self._next_seq = 1
            self._prev = GENESIS_HASH
            self._broken = False
            self.chains += 1
        self.events += 1
        if self._broken:
            return None
        expected = self._next_seq
        if seq != expected:
            self._broken = True
            if seq > expected:
                return ChainBreak(
                    chain_id,
                    expected,
                    f"event {expected} is missing (the next stored event is {seq})",
                )
            return ChainBreak(chain_id, seq, f"seq {seq} is out of order (expected {expected})")
        if prev_hash != self._prev:
            self._broken = True
            what = "genesis (64 zeros)" if seq == 1 else f"the stored hash of event {seq - 1}"
            return ChainBreak(
                chain_id,
                seq,
                f"prev_hash does not match {what}: an earlier event was rewritten "
                "or this link was altered",
            )
        try:
            recomputed = hash_event_fields(
                bytes.fromhex(prev_hash), self._chain_json, seq, ts, kind, payload
            )
        except (InvalidInput, ValueError) as exc:
            self._broken = True
            return ChainBreak(chain_id, seq, f"event cannot be hashed: {exc}")
        if recomputed != hash_:
            self._broken = True
            return ChainBreak(
                chain_id,
                seq,
                "hash does not match the recomputation: its fields or payload were altered",
            )
        self._next_seq = seq + 1
        self._prev = hash_
        return None

    def resume(self, chain_id: str, seq: int, hash_: str) -> None:
        """Go on verifying `chain_id` after an event already verified: its `seq` and
        `hash` (seq 0 and the genesis hash: from the start). Incremental verification
        of a chain that grew since it was last verified re-hashes only the new events;
        the events up to `seq` are covered by `hash`, which was verified then."""
        self.finish()
        self._chain = chain_id
        self._chain_json = encode_basestring(chain_id)
        self._next_seq = seq + 1
        self._prev = hash_
        self._broken = False
        self.chains += 1

    def finish(self) -> None:
        """Record the current chain's head if it is intact (call after the last event)."""
        if self._chain is not None and not self._broken and self._next_seq > 1:
            self.intact_heads[self._chain] = (self._next_seq - 1, self._prev)

    def feed_rows(
        self, rows: Iterable[tuple[str, int, str, str, str, str, str]]
    ) -> list[ChainBreak]:
        """`feed` for many (chain_id, seq, ts, kind, payload, prev_hash, hash) rows.

        Intact events take an inlined path (verification speed); anything else goes
        through `feed`, so the rules live in one place.
        """
        breaks: list[ChainBreak] = []
        sha256 = hashlib.sha256
        fromhex = bytes.fromhex
        enc = encode_basestring
        kinds: dict[str, str] = {}
        for chain_id, seq, ts, kind, payload, prev_hash, hash_ in rows:
            if (
                chain_id == self._chain
                and seq == self._next_seq
                and prev_hash == self._prev
                and not self._broken
            ):
                kind_json = kinds.get(kind)
                if kind_json is None:
                    kind_json = kinds[kind] = enc(kind)
                # Same text as hash_event_fields (tests hold both to canonical_json).
                text = (
                    f'{{"chain_id":{self._chain_json},"kind":{kind_json},'
                    f'"payload":{enc(payload)},"recorded_at":"{ts}","seq":{seq}}}'
                )
                try:
                    digest = sha256(fromhex(prev_hash))
                    digest.update(text.encode("utf-8"))
                    ok = digest.hexdigest() == hash_
                except UnicodeEncodeError:
                    ok = False
                if ok:
                    self.events += 1
                    self._next_seq = seq + 1
                    self._prev = hash_
                    continue
            found = self.feed(chain_id, seq, ts, kind, payload, prev_hash, hash_)
            if found is not None:
                breaks.append(found)
        return breaks


def verify_linked(
    chain_id: str,
    seq: int,
    hash_: str,
    rows: Sequence[Sequence[Any]],
    upto: int | None = None,
) -> tuple[ChainBreak | None, int, str]:
    """Verify one chain's rows from a verified point: incremental verification.

    `rows` are `storage.types.LinkedRow`s of the chain, (chain_id, seq, kind, payload,
    hash, prev_hash, recorded_at text), in seq order from `seq` itself when `seq` > 0
    (the event verified before: it must still be there with `hash_` and still
    recompute to it) or from 1 (`seq` 0, `hash_` the genesis hash); rows past `upto`
    are ignored. Returns the first break (None: intact) and the last verified
    (seq, hash). The rules are `ChainVerifier`'s.
    """
    if upto is not None and rows and rows[-1][1] > upto:
        rows = [r for r in rows if r[1] <= upto]
    i = 0
    if seq > 0:
        if not rows or rows[0][1] != seq:
            why = f"event {seq}, verified before, is missing: the chain was cut"
            return ChainBreak(chain_id, seq, why), 0, GENESIS_HASH
        r = rows[0]
        try:
            again = hash_event_fields(
                bytes.fromhex(r[5]), encode_basestring(chain_id), seq, r[6], r[2], r[3]
            )
        except (InvalidInput, ValueError):
            again = ""
        if r[4] != hash_ or again != hash_:
            why = f"event {seq}, verified before, was altered since"
            return ChainBreak(chain_id, seq, why), 0, GENESIS_HASH
        i = 1
    sha256 = hashlib.sha256
    fromhex = bytes.fromhex
    enc = encode_basestring
    chain_json = enc(chain_id)
    prev, expected = hash_, seq + 1
    kinds: dict[str, str] = {}
    for n in range(i, len(rows)):
        r = rows[n]
        if r[1] != expected or r[5] != prev:
            break
        kind_json = kinds.get(r[2])
        if kind_json is None:
            kind_json = kinds[r[2]] = enc(r[2])
        text = (
            f'{{"chain_id":{chain_json},"kind":{kind_json},'
            f'"payload":{enc(r[3])},"recorded_at":"{r[6]}","seq":{expected}}}'
        )
        try:
            digest = sha256(fromhex(prev))
            digest.update(text.encode("utf-8"))
        except UnicodeEncodeError:
            break
        if digest.hexdigest() != r[4]:
            break
        prev, expected = r[4], expected + 1
    else:
        return None, expected - 1, prev
    # The first bad row: name it as `ChainVerifier` does.
    verifier = ChainVerifier()
    verifier.resume(chain_id, expected - 1, prev)
    r = rows[n]
    found = verifier.feed(chain_id, r[1], r[6], r[2], r[3], r[5], r[4])
    if found is None:  # pragma: no cover - the loop above and `feed` agree
        found = ChainBreak(chain_id, expected, "event does not verify")
    return found, expected - 1, prev


def verify_events(events: Iterable[LedgerEvent]) -> ChainBreak | None:
    """Verify one chain's events, given in seq order from 1; return its first break.

    Pure and offline: needs only the events (e.g. parsed from an export). Events of
    another chain after the first one are reported as a break.
    """
    verifier = ChainVerifier()
    first: str | None = None
    for ev in events:
        if first is None:
            first = ev.chain_id
        elif ev.chain_id != first:
            return ChainBreak(first, ev.seq, f"event of another chain ({ev.chain_id!r}) mixed in")
        try:
            ts = format_timestamp(ev.recorded_at)
        except InvalidInput as exc:
            return ChainBreak(ev.chain_id, ev.seq, str(exc))
        found = verifier.feed(ev.chain_id, ev.seq, ts, ev.kind, ev.payload, ev.prev_hash, ev.hash)
        if found is not None:
            return found
    return None


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _check_json_value(value: object, path: str) -> None:
    # Explicit walk because json.dumps silently turns int keys and tuples into
    # strings and lists, and would accept str subclasses with custom behaviour.
    if value is None or type(value) is bool:
        return
    if type(value) is int:
        # Many JSON readers (JavaScript, orjson, databases' JSON types) cannot hold
        # more; an exported ledger must read back with the same values everywhere.
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidInput(f"{path}: integer {value} does not fit in 64 bits")
        return
    if type(value) is float:
        if not math.isfinite(value):
            raise InvalidInput(f"{path}: NaN and Infinity are not JSON")
        return
    if type(value) is str:
        _check_text(value, path)
        return
    if type(value) is list:
        for i, item in enumerate(value):
            _check_json_value(item, f"{path}[{i}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidInput(f"{path}: object key {key!r} is not a string")
            _check_text(key, path)
            _check_json_value(item, f"{path}.{key}")
        return
    raise InvalidInput(
        f"{path}: {type(value).__name__} is not a JSON type "
        "(use str, int, float, bool, None, list, dict; times as ISO 8601 strings)"
    )


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{path}: string contains a lone surrogate") from exc

"""Reading the ledger for eligibility, claims, reports and fraud signals.

Two readers feed the same pure functions of `supervisor.eligibility`:

- `learner_snapshot` reads the few chains of one learner (what the API does for
  one eligibility answer);
- `scan` streams every event once, in (chain, seq) order, and folds each chain
  into a small summary as soon as the chain ends, so memory grows with the
  number of chains, not of events (what claims, reports, fraud scans and the
  benchmark use).

`until` cuts the ledger at a moment (events recorded before it): a report or a
claim list for a past period can be recomputed later with the same answer.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, get_args, get_origin, get_type_hints

import orjson

from config import Settings
from storage import Storage
from storage.subsidy_sql import LedgerRow
from storage.types import LedgerEvent
from supervisor import events as ev
from supervisor import subsidy_events as se
from supervisor.classroom_events import learner_class_chain
from supervisor.crediting import Credit, Interval
from supervisor.eligibility import (
    START_CHECKS,
    CourseTerms,
    Eligibility,
    FlagSummary,
    LearnerSummary,
    SessionSummary,
    course_terms,
    evaluate,
    median_or_none,
    summarise_class_chain,
    summarise_flag,
    summarise_learner,
    summarise_session,
)

_CLASS_LEARNER = re.compile(r"class:(\d+):learner:(\d+)")


@dataclass(frozen=True, slots=True)
class Gaps:
    online: timedelta
    classroom: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Gaps:
        return cls(
            timedelta(seconds=settings.policy.max_credited_gap_s),
            timedelta(seconds=settings.classroom.max_credited_gap_s),
        )


@dataclass
class Snapshot:
    """What the ledger says, chain by chain, folded into summaries."""

    until: datetime | None
    terms: dict[int, CourseTerms] = field(default_factory=dict)
    learners: dict[int, LearnerSummary] = field(default_factory=dict)
    sessions: dict[int, list[SessionSummary]] = field(default_factory=dict)  # by learner
    flags: list[FlagSummary] = field(default_factory=list)
    registered: dict[int, int] = field(default_factory=dict)  # learner -> institution
    events: int = 0
    chains: int = 0

    def flags_of(self, learner_id: int) -> list[FlagSummary]:
        return [f for f in self.flags if learner_id in f.learner_ids]

    def eligibility(self, learner_id: int, course_id: int) -> Eligibility:
        summary = self.learners.get(learner_id) or summarise_learner(learner_id, ())
        return evaluate(
            self.terms.get(course_id),
            course_id,
            learner_id in self.registered,
            summary,
            self.sessions.get(learner_id, ()),
            self._flag_index().get(learner_id, ()),
        )

    def _flag_index(self) -> dict[int, list[FlagSummary]]:
        index: dict[int, list[FlagSummary]] | None = getattr(self, "_index", None)
        if index is None or getattr(self, "_index_n", -1) != len(self.flags):
            index = {}
            for f in self.flags:
                for lid in f.learner_ids:
                    index.setdefault(lid, []).append(f)
            self._index = index
            self._index_n = len(self.flags)
        return index

    def all_sessions(self) -> Iterator[SessionSummary]:
        for found in self.sessions.values():
            yield from found


# -- a fast decoder: the same values as `events.decode`, several times faster ----------

_Plan = tuple[type[ev.Event], tuple[tuple[str, int], ...], frozenset[str]] | None
_PLANS: dict[str, _Plan] = {}
_PLAIN, _TIME, _TUPLE = 0, 1, 2


def _plan(kind: str) -> _Plan:
    """How to build each field of a kind from parsed JSON, or None when a field needs
    the general decoder (nested times in tuples)."""
    if kind in _PLANS:
        return _PLANS[kind]
    cls = ev.EVENT_TYPES.get(kind)
    plan: _Plan = None
    if cls is not None:
        hints = get_type_hints(cls)
        fields: list[tuple[str, int]] = []
        ok = True
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            args = [a for a in get_args(tp) if a is not type(None)]
            if tp is datetime or (len(args) == 1 and args[0] is datetime):
                fields.append((f.name, _TIME))
            elif get_origin(tp) is tuple:
                if any(a is datetime or get_args(a) for a in get_args(tp)):
                    ok = False
                fields.append((f.name, _TUPLE))
            else:
                fields.append((f.name, _PLAIN))
        plan = (cls, tuple(fields), frozenset(n for n, _ in fields)) if ok else None
    _PLANS[kind] = plan
    return plan


def fast_decode(kind: str, payload: str) -> ev.Event | None:
    """`events.decode_payload(kind, payload)`, without per-value type introspection."""
    plan = _plan(kind)
    if plan is None:
        return ev.decode_payload(kind, payload)
    cls, fields, _names = plan
    body = _loads(payload)
    kwargs: dict[str, Any] = {}
    for name, how in fields:
        if name not in body:
            continue
        value = body[name]
        if value is not None:
            if how == _TIME:
                value = ev.parse_iso(value) if len(value) != 27 else _fromiso(value)
            elif how == _TUPLE:
                value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _loads(text: str) -> Any:
    """`json.loads`, about three times faster (orjson), with the same values on every
    payload the ledger can hold: orjson reads an integer past 64 bits as a float,
    and the ledger refuses those at append (`storage.canonical`); what orjson
    refuses (NaN, which the ledger refuses too) goes to `json.loads`."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _loads_all(texts: list[str]) -> list[Any]:
    """`_loads` of each text: one orjson pass over a chain's payloads, and the
    general path for the whole chain only when orjson refuses one of them."""
    try:
        return [orjson.loads(t) for t in texts]
    except orjson.JSONDecodeError:
        return [_loads(t) for t in texts]


def _fromiso(text: str) -> datetime:
    # "YYYY-MM-DDTHH:MM:SS.ffffffZ": fromisoformat (C, reads "Z" since Python 3.11)
    # gives the same aware UTC value as `events.parse_iso`, eight times faster.
    return datetime.fromisoformat(text)


def _decoded(rows: Iterable[LedgerRow]) -> list[ev.Event]:
    out = []
    for row in rows:
        e = fast_decode(row[2], row[3])
        if e is not None:
            out.append(e)
    return out


def rows_of(stored: Iterable[LedgerEvent]) -> list[LedgerRow]:
    return [(e.chain_id, e.seq, e.kind, e.payload, e.hash) for e in stored]


# -- the hot path: online session chains folded straight from JSON ------------------

_SESSION_KINDS = frozenset(
    ("session_started", "check", "check_missed", "check_deferred", "state_changed", "session_ended")
)


def fast_session_summary(
    chain_id: str, rows: list[LedgerRow], max_gap: timedelta
) -> SessionSummary | None:
    """`summarise_session` (with `credit`) computed on parsed JSON, without building
    event objects: the same value (tests compare the two on generated ledgers).
    Falls back to the reference for chains with kinds it does not know."""
    if not _SESSION_KINDS.issuperset([r[2] for r in rows]):
        return summarise_session(chain_id, _decoded(rows), max_gap, _row_ref(rows[0]))
    if rows[0][2] != "session_started":
        return None
    # The hot loop of every eligibility scan: C functions bound to locals, payloads
    # parsed in one pass, the credited total summed as `credit` sums it (in order).
    fromiso = datetime.fromisoformat  # what `_fromiso` calls
    bodies = _loads_all([r[3] for r in rows])
    start = bodies[0]
    started_at = fromiso(start["at"])
    total = 0.0
    last_pass: datetime | None = None
    paused = False
    intervals: list[Interval] = []
    passed = failed = missed = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    check_times: list[datetime] = []
    gaps: list[float] = []  # between consecutive checks, as `_median_gap` takes them
    distances: list[float] = []
    start_ok: bool | None = None
    zero = timedelta(0)
    for row, body in zip(rows, bodies, strict=True):
        kind = row[2]
        text = body.get("at")
        at = fromiso(text) if text is not None else None
        if at is not None:
            if first_at is None or at < first_at:
                first_at = at
            if last_at is None or at > last_at:
                last_at = at
        if kind == "check":
            assert at is not None
            ok = body["passed"]
            if check_times:
                gaps.append((at - check_times[-1]).total_seconds())
            check_times.append(at)
            if start_ok is None:
                start_ok = bool(
                    body["purpose"] == "start" and body["check_kind"] in START_CHECKS and ok
                )
            if ok:
                passed += 1
                if body["check_kind"] == "identity" and body.get("distance") is not None:
                    distances.append(body["distance"])
                if paused:
                    continue
                if last_pass is not None:
                    step = at - last_pass
                    if zero < step <= max_gap:
                        intervals.append(Interval(last_pass, at))
                        total += step.total_seconds()
                last_pass = at if last_pass is None else max(last_pass, at)
            else:
                failed += 1
                last_pass = None
        elif kind == "check_missed":
            missed += 1
            last_pass = None
        elif kind == "state_changed":
            assert at is not None
            if body["to_state"] == "active":
                paused = False
                last_pass = at
            else:
                paused = True
                last_pass = None
        elif kind == "session_ended":
            last_pass = None
    c = Credit(round(total, 6), tuple(intervals), passed, failed, missed, first_at, last_at)
    return SessionSummary(
        chain_id,
        "online",
        start["learner_id"],
        start["course_id"],
        start["institution_id"],
        started_at,
        c.last_at or started_at,
        c,
        bool(start_ok),
        len(check_times),
        passed,
        median_or_none(gaps),
        tuple(distances),
        (),
        _row_ref(rows[0]),
    )


def _row_ref(row: LedgerRow) -> tuple[str, int, str]:
    return (row[0], row[1], row[4])


def fold_chain(
    snap: Snapshot,
    chain_id: str,
    stored: list[LedgerRow],
    gaps: Gaps,
    classes: dict[int, tuple[int, int]],
) -> None:
    """Fold one chain's events into the snapshot."""
    snap.chains += 1
    snap.events += len(stored)
    if not stored:
        return
    if chain_id.startswith("session:"):
        s = fast_session_summary(chain_id, stored, gaps.online)
        if s is not None:
            snap.sessions.setdefault(s.learner_id, []).append(s)
    elif chain_id.startswith("learner:"):
        learner_id = int(chain_id.split(":", 1)[1])
        snap.learners[learner_id] = summarise_learner(learner_id, _decoded(stored))
    elif chain_id.startswith("class:"):
        m = _CLASS_LEARNER.fullmatch(chain_id)
        if m is None:
            return
        class_id, learner_id = int(m.group(1)), int(m.group(2))
        course = classes.get(class_id)
        if course is None:
            return
        s = summarise_class_chain(
            chain_id,
            learner_id,
            course[0],
            course[1],
            _decoded(stored),
            gaps.classroom,
            _row_ref(stored[0]),
        )
        if s is not None:
            snap.sessions.setdefault(learner_id, []).append(s)
    elif chain_id.startswith("course:"):
        terms = course_terms(_decoded(stored))
        if terms is not None:
            snap.terms[terms.course_id] = terms
    elif chain_id.startswith("flag:"):
        f = summarise_flag(_decoded(stored))
        if f is not None:
            snap.flags.append(f)


def class_courses(storage: Storage) -> dict[int, tuple[int, int]]:
    """class id -> (course id, institution id)."""
    return {c.id: (c.course_id, c.institution_id) for c in storage.classroom.list_classes()}


def scan(storage: Storage, settings: Settings, until: datetime | None = None) -> Snapshot:
    """Every chain of the ledger folded once (blocking; run it in a thread)."""
    gaps = Gaps.of(settings)
    classes = class_courses(storage)
    snap = Snapshot(until)
    snap.registered = {lr.id: lr.institution_id for lr in storage.registry.list_learners()}
    pending: list[LedgerRow] = []
    for batch in storage.subsidy.stream_ledger(until):
        for row in batch:
            if pending and row[0] != pending[0][0]:
                fold_chain(snap, pending[0][0], pending, gaps, classes)
                pending = []
            pending.append(row)
    if pending:
        fold_chain(snap, pending[0][0], pending, gaps, classes)
    return snap


def learner_snapshot(
    storage: Storage,
    settings: Settings,
    learner_id: int,
    course_id: int,
    until: datetime | None = None,
) -> Snapshot:
    """Only the chains one eligibility decision reads (blocking)."""
    gaps = Gaps.of(settings)
    snap = Snapshot(until)
    try:
        learner = storage.registry.get_learner(learner_id)
        snap.registered[learner.id] = learner.institution_id
    except Exception:  # noqa: BLE001 - an unknown learner is simply not registered
        pass
    chains = [ev.learner_chain(learner_id), se.course_chain(course_id)]
    chains += [s.chain_id for s in storage.registry.list_sessions(None, learner_id, False)]
    classes = {
        c.id: (c.course_id, c.institution_id)
        for c in storage.classroom.list_classes(course_id=course_id)
    }
    chains += [learner_class_chain(cid, learner_id) for cid in classes]
    chains += [se.flag_chain(f.id) for f in storage.subsidy.find_flags(learner_id=learner_id)]
    for chain_id in chains:
        stored = storage.ledger.read_chain(chain_id)
        if until is not None:
            stored = [e for e in stored if e.recorded_at < until]
        fold_chain(snap, chain_id, rows_of(stored), gaps, classes)
    return snap

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

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from config import Settings
from storage import Storage
from storage.types import LedgerEvent
from supervisor import events as ev
from supervisor import subsidy_events as se
from supervisor.classroom_events import learner_class_chain
from supervisor.eligibility import (
    CourseTerms,
    Eligibility,
    FlagSummary,
    LearnerSummary,
    SessionSummary,
    course_terms,
    evaluate,
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


def _ref(first: LedgerEvent) -> tuple[str, int, str]:
    return (first.chain_id, first.seq, first.hash)


def _decoded(stored: Iterable[LedgerEvent]) -> list[ev.Event]:
    return [e for _, e in ev.decode_all(stored)]


def fold_chain(
    snap: Snapshot,
    chain_id: str,
    stored: list[LedgerEvent],
    gaps: Gaps,
    classes: dict[int, tuple[int, int]],
) -> None:
    """Fold one chain's events into the snapshot."""
    snap.chains += 1
    snap.events += len(stored)
    if not stored:
        return
    if chain_id.startswith("session:"):
        s = summarise_session(chain_id, _decoded(stored), gaps.online, _ref(stored[0]))
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
            _ref(stored[0]),
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
    stream = storage.ledger.iter_events(until=until)
    for chain_id, group in groupby(stream, key=lambda e: e.chain_id):
        fold_chain(snap, chain_id, list(group), gaps, classes)
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
        fold_chain(snap, chain_id, stored, gaps, classes)
    return snap

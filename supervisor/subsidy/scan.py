"""Reading the ledger for eligibility, claims, reports and fraud signals.

Two readers feed the same pure functions of `supervisor.rules.eligibility`:

- `learner_snapshot` reads the few chains of one learner (what the API does for
  one eligibility answer);
- `scan` covers every chain of the ledger (what claims, reports, fraud scans and
  the benchmark use). Each chain is folded into a small JSON body (a summary),
  which is stored beside the ledger under the seq and hash of the chain's last
  event (`storage.summaries`); the next scan reads the body of every chain that
  has not grown and folds only the ones that have, a session from where its
  summary stopped. A first scan, or one after a change of the fold's code or
  settings (`summary_version`), streams every event once in (chain, seq) order.

The summaries are a cache: `scan(..., use_summaries=False)` folds every chain
from its events and gives the same snapshot (the tests hold the two equal).

`until` cuts the ledger at a moment (events recorded before it): a report or a
claim list for a past period can be recomputed later with the same answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args, get_origin, get_type_hints

import orjson

from config import Settings
from storage import Storage
from storage.canonical import GENESIS_HASH, verify_events, verify_linked
from storage.types import BrokenRecord, ChainBreak, LedgerEvent, LedgerRow
from supervisor.checks.integrity import owner, report_breaks
from supervisor.ledger import codec, kinds
from supervisor.ledger import events as ev
from supervisor.ledger import subsidy as se
from supervisor.ledger.appeals import appeal_chain
from supervisor.ledger.classroom import learner_class_chain
from supervisor.metrics import Metrics
from supervisor.rules.appeals import AppealSummary, credited_back, overrides, summarise_appeal
from supervisor.rules.dispatch import (
    ClaimFact,
    CourseClass,
    summarise_claim,
    summarise_course_class,
)
from supervisor.rules.eligibility import (
    CourseTerms,
    Eligibility,
    FlagSummary,
    LearnerSummary,
    SessionFold,
    SessionSummary,
    Standing,
    course_terms,
    evaluate,
    session_summary,
    summarise_class_chain,
    summarise_flag,
    summarise_learner,
    summarise_standing,
)
from supervisor.rules.months import MonthSplitter
from supervisor.runtime.gc_pause import gc_paused

log = logging.getLogger(__name__)

_CLASS_LEARNER = re.compile(r"class:(\d+):learner:(\d+)")


@dataclass
class Snapshot:
    """What the ledger says, chain by chain, folded into summaries."""

    until: datetime | None
    terms: dict[int, CourseTerms] = field(default_factory=dict)
    learners: dict[int, LearnerSummary] = field(default_factory=dict)
    sessions: dict[int, list[SessionSummary]] = field(default_factory=dict)  # by learner
    flags: list[FlagSummary] = field(default_factory=list)
    registered: dict[int, int] = field(default_factory=dict)  # learner -> institution
    standings: dict[int, Standing] = field(default_factory=dict)  # by institution
    # The dispatch report's facts: courses' classification, claims' money.
    classified: dict[int, CourseClass] = field(default_factory=dict)  # by course
    claims: dict[int, ClaimFact] = field(default_factory=dict)  # by claim
    events: int = 0
    chains: int = 0
    # Chains found broken (by this scan, an earlier one, a seal): chain -> (first bad
    # seq, reason). Nothing of them is in the summaries above.
    broken: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The broken chains by whose decisions they hold up (`attribute_broken`).
    broken_learners: dict[int, list[str]] = field(default_factory=dict)
    broken_courses: dict[int, list[str]] = field(default_factory=dict)
    broken_institutions: dict[int, list[str]] = field(default_factory=dict)
    # chain -> (seq, hash) of its last event verified by the scan (before `until`): the
    # heads a claim line is frozen on (`supervisor.subsidy.claims`). Filled by `scan`.
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Learners' appeals; the upheld ones on checks and roll calls are already applied to
    # the sessions above (`apply_appeals`).
    appeals: list[AppealSummary] = field(default_factory=list)

    def flags_of(self, learner_id: int) -> list[FlagSummary]:
        return [f for f in self.flags if learner_id in f.learner_ids]

    def eligibility(
        self, learner_id: int, course_id: int, as_of: datetime | None = None
    ) -> Eligibility:
        """One decision; `as_of` (a claim's period end) dates the institution's status."""
        summary = self.learners.get(learner_id) or summarise_learner(learner_id, ())
        terms = self.terms.get(course_id)
        return evaluate(
            terms,
            course_id,
            learner_id in self.registered,
            summary,
            self.sessions.get(learner_id, ()),
            self._flag_index().get(learner_id, ()),
            self.standings.get(terms.institution_id) if terms is not None else None,
            as_of or self.until,
            self.broken_for(learner_id, course_id, terms),
        )

    def broken_for(
        self, learner_id: int, course_id: int, terms: CourseTerms | None = None
    ) -> list[str]:
        """The broken chains one decision reads: the learner's own (identity, sessions,
        classes, flags), the course's rules and the institution's standing."""
        if not self.broken:
            return []
        found = list(self.broken_learners.get(learner_id, ()))
        found += self.broken_courses.get(course_id, ())
        if terms is not None:
            found += self.broken_institutions.get(terms.institution_id, ())
        return found

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
    cls = kinds.EVENT_TYPES.get(kind)
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
        return codec.decode_payload(kind, payload)
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


def _decoded_with_seqs(rows: Iterable[LedgerRow]) -> list[tuple[int, ev.Event]]:
    out = []
    for row in rows:
        e = fast_decode(row[2], row[3])
        if e is not None:
            out.append((row[1], e))
    return out


def _decoded(rows: Iterable[LedgerRow]) -> list[ev.Event]:
    out = []
    for row in rows:
        e = fast_decode(row[2], row[3])
        if e is not None:
            out.append(e)
    return out


def rows_of(stored: Iterable[LedgerEvent]) -> list[LedgerRow]:
    return [(e.chain_id, e.seq, e.kind, e.payload, e.hash) for e in stored]


def _time_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _row_ref(row: LedgerRow) -> tuple[str, int, str]:
    return (row[0], row[1], row[4])


# -- summaries of every kind of chain, as JSON bodies ----------------------------------

# Bump when a body's meaning changes: summaries of another version are refolded.
# 2: session folds keep the crediting clock's own state; 3: flags say whom they hold up;
# 4: institutions' standing; 5: the dispatch report's facts (learners' key groups and
# certificates, courses' classification, institutions' division, claims' money).
SUMMARY_FORMAT = 5


def summary_version(settings: Settings) -> str:
    """Names the code and the settings a summary was folded with."""
    key = "|".join(
        (
            str(SUMMARY_FORMAT),
            str(settings.policy.max_credited_gap_s),
            str(settings.classroom.max_credited_gap_s),
            settings.subsidy.timezone,
        )
    )
    return f"{SUMMARY_FORMAT}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


@dataclass(frozen=True, slots=True)
class FoldRules:
    """What folding a chain depends on besides its events (part of `summary_version`)."""

    online_gap: timedelta
    classroom_gap: timedelta
    tz_name: str

    @classmethod
    def of(cls, settings: Settings) -> FoldRules:
        return cls(
            timedelta(seconds=settings.policy.max_credited_gap_s),
            timedelta(seconds=settings.classroom.max_credited_gap_s),
            settings.subsidy.timezone,
        )


_NONE: dict[str, Any] = {"k": "none"}


def fold_chain(
    chain_id: str,
    rows: list[LedgerRow],
    state: dict[str, Any] | None,
    rules: FoldRules,
    months: MonthSplitter,
    upheld: frozenset[int] = frozenset(),
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The summary body of a chain from its rows, and the state to fold more from (for
    session chains, whose fold resumes from `state`; other chains are short and always
    folded whole: their state is None).

    `upheld`: seqs of failures overturned on appeal (`supervisor.rules.appeals`), read
    as passed checks; the chain is then folded whole from its events, and the body is
    not a summary of the chain alone (never store it)."""
    if upheld:
        events = credited_back(_decoded_with_seqs(rows), upheld)
        if chain_id.startswith("session:"):
            fold = SessionFold(rules.online_gap, months)
            fold.feed(events, _row_ref(rows[0]) if rows else None)
            return fold.summary(), None
        return _fold_whole(chain_id, rows, rules, events), None
    if chain_id.startswith("session:"):
        fold = (
            SessionFold.from_state(state, rules.online_gap, months)
            if state is not None
            else SessionFold(rules.online_gap, months)
        )
        fold.feed_rows(rows, _loads_all([r[3] for r in rows]))
        return fold.summary(), fold.state()
    return _fold_whole(chain_id, rows, rules), None


def _fold_whole(
    chain_id: str,
    rows: list[LedgerRow],
    rules: FoldRules,
    events: list[ev.Event] | None = None,
) -> dict[str, Any]:
    """`events`: the rows decoded (and overridden on appeal), when the caller has them."""
    if not rows:
        return _NONE
    if chain_id.startswith("learner:"):
        learner = summarise_learner(int(chain_id.split(":", 1)[1]), _decoded(rows))
        return {
            "k": "learner",
            "consent": learner.consent,
            "face": learner.face_enrolled,
            "courses": sorted(learner.courses),
            "assessments": learner.assessments,
            "alternative": learner.alternative,
            "groups": [[g, since, removed] for g, since, removed in learner.groups],
            "certs": [list(c) for c in learner.certificates],
        }
    if chain_id.startswith("class:"):
        m = _CLASS_LEARNER.fullmatch(chain_id)
        if m is None:
            return _NONE
        class_id, learner_id = int(m.group(1)), int(m.group(2))
        # Course and institution come from the class (the registry) when read.
        c = summarise_class_chain(
            chain_id, learner_id, 0, 0, events if events is not None else _decoded(rows),
            rules.classroom_gap, rules.tz_name, _row_ref(rows[0]),
        )  # fmt: skip
        if c is None:
            return _NONE
        return {
            "k": "class",
            "ids": (class_id, learner_id),
            "times": (c.started_at, c.last_at),
            "credited": c.credited_seconds,
            "monthly": c.monthly,
            "counts": (c.checks, c.passed_checks),
            "interval": c.check_interval_s,
            "present": c.present_at,
            "ref": c.ref,
        }
    if chain_id.startswith("course:"):
        decoded = _decoded(rows)
        terms = course_terms(decoded)
        classified = summarise_course_class(decoded)
        if terms is None and classified is None:
            return _NONE
        return {
            "k": "course",
            "terms": None if terms is None else _fields(terms),
            "class": None if classified is None else _fields(classified),
        }
    if chain_id.startswith("claim:"):
        claim = summarise_claim(_decoded(rows))
        if claim is None:
            return _NONE
        return {"k": "claim", **_fields(claim)}
    if chain_id.startswith("flag:"):
        flag = summarise_flag(_decoded(rows))
        return _NONE if flag is None else {"k": "flag", **_fields(flag)}
    if chain_id.startswith("institution:"):
        standing = summarise_standing(int(chain_id.split(":", 1)[1]), _decoded(rows))
        return {
            "k": "institution",
            "changes": [[at, s] for at, s in standing.changes],
            "division": standing.division,
        }
    if chain_id.startswith("appeal:"):
        # No stored summary of an `appeal:` chain predates this branch (no code wrote
        # one), so the summary format needs no new version for it.
        appeal = summarise_appeal(_decoded(rows))
        return _NONE if appeal is None else {"k": "appeal", **_fields(appeal)}
    return _NONE


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _roundtrip(body: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(body))
    return parsed


def _absorb_body(
    snap: Snapshot,
    chain_id: str,
    body: dict[str, Any],
    classes: dict[int, tuple[int, int]],
    events: int,
) -> object | None:
    """Put a chain's summary (a parsed JSON body) into the snapshot; returns it."""
    snap.chains += 1
    snap.events += events
    kind = body["k"]
    fromiso = datetime.fromisoformat
    if kind == "broken":
        snap.broken[chain_id] = (int(body["seq"]), str(body["reason"]))
        return snap.broken[chain_id]
    if kind == "online":
        s = session_summary(chain_id, body)
        if s is not None:
            snap.sessions.setdefault(s.learner_id, []).append(s)
        return s
    if kind == "learner":
        learner_id = int(chain_id.split(":", 1)[1])
        summary = LearnerSummary(
            learner_id,
            body["consent"],
            body["face"],
            frozenset(body["courses"]),
            tuple((c, p, fromiso(at)) for c, p, at in body["assessments"]),
            body["alternative"],
            tuple(
                (g, since, fromiso(removed) if removed is not None else None)
                for g, since, removed in body["groups"]
            ),
            tuple((c, lv, occ, on) for c, lv, occ, on in body["certs"]),
        )
        snap.learners[learner_id] = summary
        return summary
    if kind == "class":
        class_id, learner_id = body["ids"]
        course = classes.get(class_id)
        if course is None:
            return None
        checks, passed = body["counts"]
        first, last = body["times"]
        s = SessionSummary(
            chain_id,
            "classroom",
            learner_id,
            course[0],
            course[1],
            fromiso(first),
            fromiso(last),
            body["credited"],
            tuple(map(tuple, body["monthly"])),
            True,
            checks,
            passed,
            body["interval"],
            (),
            tuple(fromiso(t) for t in body["present"]),
            tuple(body["ref"]),
        )
        snap.sessions.setdefault(learner_id, []).append(s)
        return s
    if kind == "course":
        found = body["class"]
        if found is not None:
            snap.classified[found["course_id"]] = CourseClass(
                found["course_id"],
                found["institution_id"],
                found["occupation_code"],
                found["skill_level"],
            )
        body = body["terms"]
        if body is None:
            return snap.classified[found["course_id"]]
        terms = CourseTerms(
            body["course_id"],
            body["institution_id"],
            body["name"],
            body["delivery_mode"],
            body["required_hours"],
            body["subsidy_kind"],
            body["subsidy_amount"],
            body["subsidy_cap"],
            _time_or_none(body["valid_from"]),
            _time_or_none(body["valid_until"]),
            body["published"],
        )
        snap.terms[terms.course_id] = terms
        return terms
    if kind == "flag":
        flag = FlagSummary(
            body["flag_id"],
            body["kind"],
            body["institution_id"],
            tuple(body["learner_ids"]),
            body["status"],
            fromiso(body["raised_at"]),
            tuple(body["blocks"]),
        )
        snap.flags.append(flag)
        return flag
    if kind == "institution":
        institution_id = int(chain_id.split(":", 1)[1])
        standing = Standing(
            institution_id,
            tuple((fromiso(at), s) for at, s in body["changes"]),
            body["division"],
        )
        snap.standings[institution_id] = standing
        return standing
    if kind == "appeal":
        decided = body["decided_at"]
        appeal = AppealSummary(
            body["appeal_id"],
            body["learner_id"],
            body["subject"],
            body["flag_id"],
            body["chain_id"],
            body["seq"],
            body["status"],
            fromiso(body["filed_at"]),
            fromiso(decided) if decided is not None else None,
        )
        snap.appeals.append(appeal)
        return appeal
    if kind == "claim":
        claim = ClaimFact(
            body["claim_id"],
            body["institution_id"],
            fromiso(body["submitted_at"]),
            body["amount"],
            _time_or_none(body["decided_at"]),
            body["status"],
            body["approved"],
            tuple((fromiso(at), amount) for at, amount in body["paid"]),
        )
        snap.claims[claim.claim_id] = claim
        return claim
    return None


def class_courses(storage: Storage) -> dict[int, tuple[int, int]]:
    """class id -> (course id, institution id)."""
    return {c.id: (c.course_id, c.institution_id) for c in storage.classroom.list_classes()}


# A scan that must refold more than this share of the chains reads the whole ledger in
# one ordered pass; fewer are read chain by chain.
_BULK_SHARE = 0.2
_PUT_BATCH = 10_000


NewRow = tuple[str, int, str, Any, str, str]  # `storage.summaries_sql.NewSummary`


@dataclass(slots=True)
class _Todo:
    after: int  # the seq the stored fold state covers (0: fold from the start)
    state: dict[str, Any] | None
    head: tuple[int, str, Any] | None  # (seq, hash, recorded_at) to store under; None: don't
    # The hash of event `after`, verified when its summary was folded: verification
    # resumes from there (the genesis hash when `after` is 0).
    after_hash: str = GENESIS_HASH


@gc_paused
def scan(
    storage: Storage,
    settings: Settings,
    until: datetime | None = None,
    *,
    use_summaries: bool = True,
    metrics: Metrics | None = None,
) -> Snapshot:
    """Every chain of the ledger (events recorded before `until`) folded into a snapshot
    (blocking; run it in a thread).

    Every chain folded is verified first, incrementally: from the event its stored
    summary covers (whose hash was verified when it was folded) to its head, or from
    its first event. A broken chain, one registered broken (`LedgerStore.broken`), or
    one shorter than or different from its summary, is left out of the summaries and
    listed in `Snapshot.broken`; those found now raise the integrity alarm.

    Chains whose stored summary (`storage.summaries`, of this `summary_version`) covers
    their head are read from it; the others are folded, session chains from where
    their summary stopped, and their new summaries stored for the next scan. With
    `use_summaries=False` every chain is folded from its events and nothing is read
    from or written to the summaries: an inspector's independent recomputation, which
    the tests hold equal to the summarised one.
    """
    snap = Snapshot(until)
    snap.registered = storage.registry.learner_institutions()
    _walk(storage, settings, until, use_summaries, snap, metrics)
    apply_appeals(storage, settings, snap, None, metrics)
    attribute_broken(storage, snap)
    return _ordered(snap)


def apply_appeals(
    storage: Storage,
    settings: Settings,
    snap: Snapshot,
    classes: dict[int, tuple[int, int]] | None,
    metrics: Metrics | None = None,
) -> None:
    """Fold again, from their events, the chains in which upheld appeals overturned a
    failed check or a missed roll call, reading those as passed
    (`supervisor.rules.appeals`), and put their summaries in place of the stored ones
    (blocking; a few chains: only those with an upheld appeal). `classes`: class id ->
    (course, institution), read from the registry when None. Each chain is verified
    whole as it is read; one found broken is left out like any broken chain."""
    found = overrides(snap.appeals)
    if not found:
        return
    if classes is None:
        classes = class_courses(storage)
    rules = FoldRules.of(settings)
    months = MonthSplitter(rules.tz_name)
    breaks: list[BrokenRecord] = []
    for chain_id, seqs in sorted(found.items()):
        if chain_id in snap.broken:
            continue
        stored = storage.ledger.read_chain(chain_id)
        if snap.until is not None:
            stored = [e for e in stored if e.recorded_at < snap.until]
        if not stored:
            continue
        bad = verify_events(stored)
        if bad is not None:
            snap.broken[chain_id] = (bad.seq, bad.reason)
            breaks.append(BrokenRecord(chain_id, bad.seq, bad.reason, datetime.now(UTC), "scan"))
            _drop_session(snap, chain_id)
            continue
        body, _ = fold_chain(chain_id, rows_of(stored), None, rules, months, seqs)
        alone = Snapshot(snap.until)
        summary = _absorb_body(alone, chain_id, _roundtrip(body), classes, len(stored))
        if not isinstance(summary, SessionSummary):
            continue
        _drop_session(snap, chain_id)
        snap.sessions.setdefault(summary.learner_id, []).append(summary)
    report_breaks(storage, breaks, datetime.now(UTC), metrics=metrics)


def _drop_session(snap: Snapshot, chain_id: str) -> None:
    for found in snap.sessions.values():
        if any(s.chain_id == chain_id for s in found):
            found[:] = [s for s in found if s.chain_id != chain_id]


@dataclass(frozen=True, slots=True)
class RefreshReport:
    chains: int  # chains in the ledger
    refolded: int  # chains folded (and stored) because they were new or had grown
    events: int  # events read to fold them
    broken: int = 0  # chains found broken by this pass


@gc_paused
def refresh_summaries(
    storage: Storage, settings: Settings, metrics: Metrics | None = None
) -> RefreshReport:
    """Bring the stored summary of every chain up to date (blocking): what a scan would
    store, without building a snapshot. The service runs it periodically, so that a
    report finds only the last minutes' chains to fold (and verify)."""
    return _walk(storage, settings, None, True, None, metrics)


def _walk(
    storage: Storage,
    settings: Settings,
    until: datetime | None,
    use_summaries: bool,
    snap: Snapshot | None,
    metrics: Metrics | None = None,
) -> RefreshReport:
    rules = FoldRules.of(settings)
    months = MonthSplitter(rules.tz_name)
    version = summary_version(settings)
    classes = class_courses(storage)
    registered = storage.ledger.broken()
    now = datetime.now(UTC)
    found: list[BrokenRecord] = []
    todo: dict[str, _Todo] = {}
    loads = orjson.loads
    heads = refolded = events_read = 0

    def broken(chain_id: str, seq: int, reason: str, new: bool) -> None:
        if snap is not None:
            snap.broken[chain_id] = (seq, reason)
        if new:
            found.append(BrokenRecord(chain_id, seq, reason, now, "scan"))

    for batch in storage.summaries.chains(version, until):
        heads += len(batch)
        for cid, hseq, hhash, hrec, complete, sseq, shash, usable, body, state in batch:
            known = registered.get(cid)
            if known is not None:
                broken(cid, known.seq, known.reason, False)
                continue
            if use_summaries and sseq is not None and sseq > hseq:
                broken(cid, hseq + 1, f"the chain ends at event {hseq}, shorter than "
                       f"verified before ({sseq})", True)  # fmt: skip
                continue
            if use_summaries and sseq == hseq and shash != hhash:
                broken(cid, hseq, f"event {hseq}, verified before, was replaced", True)
                continue
            head = (hseq, hhash, hrec) if complete and use_summaries else None
            if use_summaries and complete and sseq == hseq and shash == hhash and body:
                if snap is None or _absorbed(snap, cid, body, classes, hseq):
                    if snap is not None:
                        snap.heads[cid] = (hseq, hhash)
                    continue
                todo[cid] = _Todo(0, None, head)  # unreadable: refold it and store anew
                continue
            resume = _state_or_none(state) if use_summaries and usable and state else None
            if resume is not None and sseq is not None and shash is not None and sseq < hseq:
                todo[cid] = _Todo(sseq, resume, head, shash)
            else:
                todo[cid] = _Todo(0, None, head)
    if not todo:
        report_breaks(storage, found, now, metrics=metrics)
        return RefreshReport(heads, 0, 0, len(found))
    batches: Iterable[list[Any]]
    if len(todo) > _BULK_SHARE * heads:
        batches = storage.ledger.stream_rows(until, links=True)
    else:
        batches = storage.summaries.read_chains(
            [(c, t.after) for c, t in todo.items()], until, links=True
        )
    new: list[NewRow] = []

    def fold(chain_id: str, rows: list[LedgerRow]) -> None:
        nonlocal refolded, events_read
        t = todo.pop(chain_id, None)
        if t is None:
            return  # a chain that began after the heads were read
        limit = t.head[0] if t.head is not None else None
        # Verify from the point the summary covers (its event is read again, to check
        # that it is still the one verified then) up to the head stored under.
        if t.after > 0 and rows and rows[0][1] < t.after:
            rows = [r for r in rows if r[1] >= t.after]
        bad, seq, hash_ = verify_linked(chain_id, t.after, t.after_hash, rows, limit)
        if bad is None and t.head is not None and (seq, hash_) != t.head[:2]:
            bad = ChainBreak(
                chain_id,
                seq + 1,
                f"the head index names event {t.head[0]}, but the chain ends at event {seq}",
            )
        events_read += len(rows)
        if bad is not None:
            broken(chain_id, bad.seq, bad.reason, True)
            if t.head is not None:
                body = {"k": "broken", "seq": bad.seq, "reason": bad.reason}
                new.append((chain_id, *t.head[:3], orjson.dumps(body).decode(), ""))
            return
        if rows and (rows[0][1] <= t.after or (limit is not None and rows[-1][1] > limit)):
            rows = [r for r in rows if t.after < r[1] and (limit is None or r[1] <= limit)]
        covered = rows[-1][1] if rows else t.after
        if covered == 0:
            return  # no event before `until`
        refolded += 1
        if snap is not None:
            snap.heads[chain_id] = (seq, hash_)
        body, state = fold_chain(chain_id, rows, t.state, rules, months)
        text = orjson.dumps(body)
        if snap is not None:
            _absorb_body(snap, chain_id, loads(text), classes, covered)
        if t.head is not None and covered == t.head[0]:
            state_text = orjson.dumps(state).decode() if state is not None else ""
            new.append((chain_id, t.head[0], t.head[1], t.head[2], text.decode(), state_text))
            if len(new) >= _PUT_BATCH:
                _store(storage, version, new)

    pending: list[Any] = []
    for events in batches:
        for row in events:
            if pending and row[0] != pending[0][0]:
                fold(pending[0][0], pending)
                pending = []
            pending.append(row)
    if pending:
        fold(pending[0][0], pending)
    for chain_id in list(todo):  # summarised chains with nothing new before `until`
        fold(chain_id, [])
    _store(storage, version, new)
    report_breaks(storage, found, now, metrics=metrics)
    return RefreshReport(heads, refolded, events_read, len(found))


def attribute_broken(storage: Storage, snap: Snapshot) -> None:
    """File each broken chain under the decisions it holds up (blocking; a few registry
    reads per broken chain). Whose chain it is comes from the registry, never from the
    chain itself."""
    for chain_id in sorted(snap.broken):
        if chain_id.startswith("course:"):
            snap.broken_courses.setdefault(int(chain_id.split(":", 1)[1]), []).append(chain_id)
            continue
        if chain_id.startswith("institution:"):
            institution = int(chain_id.split(":", 1)[1])
            snap.broken_institutions.setdefault(institution, []).append(chain_id)
            continue
        learner_id, _ = owner(storage, chain_id)
        if learner_id is not None:
            snap.broken_learners.setdefault(learner_id, []).append(chain_id)


def _absorbed(
    snap: Snapshot, chain_id: str, body: str, classes: dict[int, tuple[int, int]], seq: int
) -> bool:
    """Absorb a stored summary; False (nothing absorbed) when it cannot be read: the
    summaries are a cache beside the ledger, and one damaged or of an unknown shape
    must cost a refold of its chain, not the answer."""
    snap_chains, snap_events = snap.chains, snap.events
    try:
        parsed = orjson.loads(body)
        _absorb_body(snap, chain_id, parsed, classes, seq)
        return True
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        log.warning("stored summary of %s is unreadable; folding the chain again", chain_id)
        snap.chains, snap.events = snap_chains, snap_events
        return False


def _state_or_none(state: str) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(state)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _store(storage: Storage, version: str, new: list[NewRow]) -> None:
    """Store new summaries, then forget them. A failure (a lock held past the busy
    timeout, a lost connection) is logged and costs only the next scan a refold: the
    answer being computed does not depend on the cache write."""
    try:
        storage.summaries.put(version, new)
    except Exception:  # noqa: BLE001 - a cache write never fails the reader
        log.warning("could not store %d chain summaries", len(new), exc_info=True)
    new.clear()


def _ordered(snap: Snapshot) -> Snapshot:
    """The same snapshot whichever chains came from summaries: lists in id order."""
    for found in snap.sessions.values():
        found.sort(key=lambda s: s.chain_id)
    snap.flags.sort(key=lambda f: f.flag_id)
    snap.appeals.sort(key=lambda a: a.appeal_id)
    return snap


def learner_snapshot(
    storage: Storage,
    settings: Settings,
    learner_id: int,
    course_id: int,
    until: datetime | None = None,
    metrics: Metrics | None = None,
) -> Snapshot:
    """Only the chains one eligibility decision reads, verified and folded from their
    events (blocking). A broken one is left out and listed in `Snapshot.broken`."""
    rules = FoldRules.of(settings)
    months = MonthSplitter(rules.tz_name)
    snap = Snapshot(until)
    try:
        learner = storage.registry.get_learner(learner_id)
        snap.registered[learner.id] = learner.institution_id
    except Exception:  # noqa: BLE001 - an unknown learner is simply not registered
        pass
    chains = [ev.learner_chain(learner_id), se.course_chain(course_id)]
    try:
        chains.append(se.institution_chain(storage.registry.get_course(course_id).institution_id))
    except Exception:  # noqa: BLE001 - an unknown course has no institution to read
        pass
    chains += [s.chain_id for s in storage.registry.list_sessions(None, learner_id, False)]
    classes = {
        c.id: (c.course_id, c.institution_id)
        for c in storage.classroom.list_classes(course_id=course_id)
    }
    chains += [learner_class_chain(cid, learner_id) for cid in classes]
    chains += [se.flag_chain(f.id) for f in storage.subsidy.find_flags(learner_id=learner_id)]
    chains += [appeal_chain(a.id) for a in storage.appeals.find(learner_id=learner_id)]
    registered = storage.ledger.broken(chains)
    found: list[BrokenRecord] = []
    for chain_id in chains:
        if chain_id in registered:
            snap.broken[chain_id] = (registered[chain_id].seq, registered[chain_id].reason)
            continue
        stored = storage.ledger.read_chain(chain_id)
        head = storage.ledger.head(chain_id)
        bad = None
        if head is not None and (
            not stored or (stored[-1].seq, stored[-1].hash) != (head.seq, head.hash)
        ):
            last = stored[-1].seq if stored else 0
            bad = ChainBreak(
                chain_id,
                last + 1,
                f"the head index names event {head.seq}, but the chain ends at event {last}",
            )
        if until is not None:
            stored = [e for e in stored if e.recorded_at < until]
        # Every chain read is verified whole (a few chains: the cheap, strict way).
        bad = bad or verify_events(stored)
        if bad is not None:
            snap.broken[chain_id] = (bad.seq, bad.reason)
            found.append(BrokenRecord(chain_id, bad.seq, bad.reason, datetime.now(UTC), "scan"))
            continue
        if stored:
            body, _ = fold_chain(chain_id, rows_of(stored), None, rules, months)
            _absorb_body(snap, chain_id, _roundtrip(body), classes, len(stored))
    report_breaks(storage, found, datetime.now(UTC), metrics=metrics)
    apply_appeals(storage, settings, snap, classes, metrics)
    attribute_broken(storage, snap)
    return _ordered(snap)

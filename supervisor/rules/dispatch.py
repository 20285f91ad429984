"""The monthly dispatch report (三(五)): pure functions of ledger summaries.

A report covers a period (a month `YYYY-MM`, a quarter `YYYY-Qn` or a year `YYYY`, in
the local time of `subsidy.timezone`) and a region (a GB/T 2260 code at province,
city or county level, or the whole country), and gives one row per region of the
tree under it (county -> city -> province -> country), each with its figures and
their breakdowns by key group, occupation code, skill level and delivery mode.

What counts, and where (every figure is of the ledger as cut at the report's
`as_of`; a region is the institution's `division_code`, `institution:<id>`):

- a **training** (培训人次) is a learner in a course with credited time in the period,
  or with a session (or class chain) started in it; **learners** are the distinct
  people among them (a person training in two counties counts once in the province);
  **credited hours** are those falling in the period; **checks** and the pass rate are
  those of the sessions started in it;
- a **completion** is a passed latest assessment taken in the period;
- a **certificate** is one issued in the period (`issued_on`), under its own
  occupation code and skill level;
- **key groups**: a learner counts in each group they belonged to at some time in
  the period (several groups: counted in each, so the group rows do not add up to
  the total; a learner in none is under `none`);
- **subsidy claimed / approved / paid**: claims submitted, approved (latest decision)
  and paid in the period, by the claiming institution's region (claims are per
  institution: they have no group, occupation or level breakdown);
- **flags** raised in the period by the institution's region, and of those the ones
  confirmed; **institutions suspended / expelled**: status changes effective in the
  period;
- **headline indicators**: the share of trainings at a high skill level (level 3 and
  above, `skill_level <= 3`, `supervisor.ledger.records`), the share of certificates at
  one, and the share of learners in at least one key group.

Roll-up: every additive figure of a region is the sum of its child regions' figures
plus those of institutions whose code names the region itself (a city-level code);
`learners` (distinct people) is the exception noted above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from supervisor.ledger import claims as cl
from supervisor.ledger import events as ev
from supervisor.ledger import records as rec
from supervisor.ledger.events import iso
from supervisor.rules.divisions import DivisionCodeError, parse_division
from supervisor.rules.eligibility import FlagSummary, LearnerSummary, SessionSummary, Standing

REPORT_FORMAT = "dispatch-report/1"
NATIONWIDE = ""  # the root row's code
UNASSIGNED = "unassigned"  # institutions with no division recorded (nationwide only)
NO_GROUP = "none"
UNCLASSIFIED = "unclassified"
UNKNOWN_LEVEL = "unknown"

# -- periods -------------------------------------------------------------------------

_PERIOD = re.compile(r"(\d{4})(?:-(\d{2})|-Q([1-4]))?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # 'YYYY-MM', 'YYYY-Qn' or 'YYYY'
    kind: str  # month | quarter | year
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    months: tuple[str, ...]  # the local months it covers, 'YYYY-MM'
    first_day: str  # local 'YYYY-MM-DD', inclusive
    end_day: str  # local 'YYYY-MM-DD' of `end`, exclusive


def parse_period(text: str, tz_name: str) -> Period:
    """A period in `tz_name`; raises ValueError naming what is wrong."""
    found = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f"a period is YYYY-MM, YYYY-Qn or YYYY (got {text!r})")
    year = int(found.group(1))
    if not 2000 <= year <= 2200:
        raise ValueError(f"year out of range (got {year})")
    if found.group(2) is not None:
        first = int(found.group(2))
        if not 1 <= first <= 12:
            raise ValueError(f"month out of range (got {text!r})")
        kind, count = "month", 1
    elif found.group(3) is not None:
        kind, first, count = "quarter", 3 * int(found.group(3)) - 2, 3
    else:
        kind, first, count = "year", 1, 12
    tz = ZoneInfo(tz_name)
    start = datetime(year, first, 1, tzinfo=tz)
    last = first + count - 1
    end = datetime(year + (last == 12), last % 12 + 1, 1, tzinfo=tz)
    months = tuple(f"{year:04d}-{m:02d}" for m in range(first, last + 1))
    return Period(
        text,
        kind,
        start.astimezone(UTC),
        end.astimezone(UTC),
        months,
        start.date().isoformat(),
        end.date().isoformat(),
    )


# -- regions (GB/T 2260) -----------------------------------------------------------------


def _valid_division(code: str) -> bool:
    try:
        parse_division(code)
    except DivisionCodeError:
        return False
    return True


def region_level(code: str) -> str:
    """province | city | county of a GB/T 2260 code, as the records validate it
    (`supervisor.rules.divisions`); raises `DivisionCodeError` (a ValueError) otherwise."""
    return parse_division(code).level


def region_path(code: str) -> tuple[str, ...]:
    """The regions a division lies in, from the province down to the code itself."""
    out: list[str] = []
    for part in (code[:2] + "0000", code[:4] + "00", code):
        if part not in out:
            out.append(part)
    return tuple(out)


def region_chain_key(region: str | None) -> str:
    return region or "all"


# -- facts the report reads that eligibility does not --------------------------------------


@dataclass(frozen=True, slots=True)
class CourseClass:
    """A course's classification (`course_classified`, the latest recorded)."""

    course_id: int
    institution_id: int
    occupation_code: str
    skill_level: int


def summarise_course_class(events: Iterable[ev.Event]) -> CourseClass | None:
    found: CourseClass | None = None
    for e in events:
        if isinstance(e, rec.CourseClassified):
            found = CourseClass(e.course_id, e.institution_id, e.occupation_code, e.skill_level)
    return found


@dataclass(frozen=True, slots=True)
class ClaimFact:
    """The money of one claim chain (`claim:<id>`): when it was submitted and for how
    much, its latest decision, and its payments."""

    claim_id: int
    institution_id: int
    submitted_at: datetime
    amount: float
    decided_at: datetime | None = None
    status: str | None = None  # approved | rejected (the latest decision)
    approved: float = 0.0
    paid: tuple[tuple[datetime, float], ...] = ()


def summarise_claim(events: Iterable[ev.Event]) -> ClaimFact | None:
    found: ClaimFact | None = None
    paid: list[tuple[datetime, float]] = []
    decided: cl.ClaimDecided | None = None
    withdrawn = 0.0  # taken out of the approved amount by upheld objections
    for e in events:
        if isinstance(e, cl.ClaimSubmitted):
            found = ClaimFact(e.claim_id, e.institution_id, e.at, e.amount)
        elif isinstance(e, cl.ClaimDecided):
            decided = e
        elif isinstance(e, cl.ClaimObjectionDecided) and e.upheld:
            withdrawn += e.amount_withdrawn or 0.0
        elif isinstance(e, cl.ClaimPaid):
            paid.append((e.at, e.amount))
    if found is None:
        return None
    approved = 0.0
    status = decided.status if decided is not None else None
    if decided is not None and decided.status == "approved":
        approved = round(max(0.0, decided.amount_approved - withdrawn), 2)
        if approved == 0.0 and withdrawn > 0.0:
            status = "rejected"  # nothing left of it after the objections
    return ClaimFact(
        found.claim_id,
        found.institution_id,
        found.submitted_at,
        found.amount,
        decided.at if decided is not None else None,
        status,
        approved,
        tuple(paid),
    )


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """What the report needs of a course: whose it is, how it is delivered, and its
    classification (None: not classified in the ledger)."""

    course_id: int
    institution_id: int
    delivery_mode: str
    occupation_code: str | None
    skill_level: int | None


# -- the aggregation -----------------------------------------------------------------------

DIMENSIONS = ("by_group", "by_occupation", "by_skill_level", "by_delivery_mode")


class _Cell:
    __slots__ = (
        "learners",
        "key_learners",
        "trainings",
        "hs_trainings",
        "leveled_trainings",
        "seconds",
        "completions",
        "certificates",
        "hs_certificates",
        "leveled_certificates",
        "checks",
        "passed",
    )

    def __init__(self) -> None:
        self.learners: set[int] = set()
        self.key_learners: set[int] = set()
        self.trainings = self.hs_trainings = self.leveled_trainings = 0
        self.seconds = 0.0
        self.completions = self.certificates = 0
        self.hs_certificates = self.leveled_certificates = 0
        self.checks = self.passed = 0

    def training(
        self, lid: int, keyed: bool, level: int | None, sec: float, chk: int, ok: int
    ) -> None:
        self.learners.add(lid)
        if keyed:
            self.key_learners.add(lid)
        self.trainings += 1
        if level is not None:
            self.leveled_trainings += 1
            self.hs_trainings += level <= rec.HIGH_SKILL_MAX_LEVEL
        self.seconds += sec
        self.checks += chk
        self.passed += ok

    def merge(self, other: _Cell) -> None:
        self.learners |= other.learners
        self.key_learners |= other.key_learners
        self.trainings += other.trainings
        self.hs_trainings += other.hs_trainings
        self.leveled_trainings += other.leveled_trainings
        self.seconds += other.seconds
        self.completions += other.completions
        self.certificates += other.certificates
        self.hs_certificates += other.hs_certificates
        self.leveled_certificates += other.leveled_certificates
        self.checks += other.checks
        self.passed += other.passed

    def certificate(self, level: int) -> None:
        self.certificates += 1
        self.leveled_certificates += 1
        self.hs_certificates += level <= rec.HIGH_SKILL_MAX_LEVEL

    def figures(self) -> dict[str, Any]:
        return {
            "learners": len(self.learners),
            "key_group_learners": len(self.key_learners),
            "trainings": self.trainings,
            "high_skill_trainings": self.hs_trainings,
            "credited_hours": round(self.seconds / 3600, 4),
            "completions": self.completions,
            "certificates": self.certificates,
            "high_skill_certificates": self.hs_certificates,
            "checks": self.checks,
            "passed_checks": self.passed,
            "pass_rate": _share(self.passed, self.checks),
        }


class _Row:
    __slots__ = ("code", "level", "parent", "total", "dims", "money", "flags", "standing")

    def __init__(self, code: str, level: str, parent: str | None) -> None:
        self.code, self.level, self.parent = code, level, parent
        self.total = _Cell()
        self.dims: dict[str, dict[str, _Cell]] = {d: {} for d in DIMENSIONS}
        self.money = {"claimed": 0.0, "approved": 0.0, "paid": 0.0}
        self.flags = {"raised": 0, "confirmed": 0}
        self.standing: dict[str, set[int]] = {"suspended": set(), "expelled": set()}

    def cell(self, dim: str, key: str) -> _Cell:
        found = self.dims[dim].get(key)
        if found is None:
            found = self.dims[dim][key] = _Cell()
        return found

    def out(self) -> dict[str, Any]:
        t = self.total
        figures = t.figures()
        figures.update(
            {
                "subsidy_claimed": round(self.money["claimed"], 2),
                "subsidy_approved": round(self.money["approved"], 2),
                "subsidy_paid": round(self.money["paid"], 2),
                "flags_raised": self.flags["raised"],
                "flags_confirmed": self.flags["confirmed"],
                "institutions_suspended": len(self.standing["suspended"]),
                "institutions_expelled": len(self.standing["expelled"]),
            }
        )
        return {
            "code": self.code,
            "level": self.level,
            "parent": self.parent,
            "figures": figures,
            "headline": {
                "high_skill_training_share": _share(t.hs_trainings, t.leveled_trainings),
                "high_skill_certificate_share": _share(t.hs_certificates, t.leveled_certificates),
                "key_group_learner_share": _share(len(t.key_learners), len(t.learners)),
            },
            **{
                dim: {k: c.figures() for k, c in sorted(cells.items(), key=_dim_order(dim))}
                for dim, cells in self.dims.items()
            },
        }


def _dim_order(dim: str) -> Any:
    if dim != "by_group":
        return lambda kv: kv[0]
    order = {g: n for n, g in enumerate((*rec.KEY_GROUPS, NO_GROUP))}
    return lambda kv: (order.get(kv[0], len(order)), kv[0])


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def groups_in(learner: LearnerSummary | None, period: Period) -> tuple[str, ...]:
    """The key groups a learner belonged to at some time in the period."""
    if learner is None:
        return ()
    out: list[str] = []
    for group, since, removed in learner.groups:
        if since >= period.end_day or (removed is not None and removed < period.start):
            continue
        if group not in out:
            out.append(group)
    return tuple(out)


def dispatch_report(
    period: Period,
    region: str | None,
    tz_name: str,
    as_of: datetime,
    courses: Mapping[int, CourseFacts],
    standings: Mapping[int, Standing],
    learners: Mapping[int, LearnerSummary],
    sessions: Iterable[SessionSummary],
    flags: Iterable[FlagSummary],
    claims: Iterable[ClaimFact],
    ledger: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """The report of `period` for `region` (None: the whole country). Pure: every input
    is a frozen value folded from the ledger as cut at `as_of`; `ledger` is (chains,
    events) read, for the record."""
    root_level = "nationwide" if region is None else region_level(region)
    rows: dict[str, _Row] = {}
    root = rows[region or NATIONWIDE] = _Row(region or NATIONWIDE, root_level, None)
    paths: dict[int, tuple[_Row, ...] | None] = {}

    def path_of(institution_id: int) -> tuple[_Row, ...] | None:
        if institution_id in paths:
            return paths[institution_id]
        standing = standings.get(institution_id)
        code = standing.division if standing is not None else None
        found: tuple[_Row, ...] | None
        if code is None or not _valid_division(code):
            found = (
                (root, _row(rows, UNASSIGNED, "unassigned", NATIONWIDE)) if region is None else None
            )
        else:
            codes = region_path(code)
            if region is not None:
                codes = codes[codes.index(region) + 1 :] if region in codes else None  # type: ignore[assignment]
            if codes is None:
                found = None
            else:
                chain = [root]
                for c in codes:
                    chain.append(_row(rows, c, region_level(c), chain[-1].code))
                found = tuple(chain)
        paths[institution_id] = found
        return found

    months = set(period.months)
    start, end = period.start, period.end
    # The courses of institutions in the region: the rest is skipped before any work.
    inside = {cid for cid, c in courses.items() if path_of(c.institution_id) is not None}
    # (learner, course) -> [credited seconds, checks, passed, trained]
    pairs: dict[tuple[int, int], list[Any]] = {}
    for s in sessions:
        if s.course_id not in inside:
            continue
        seconds = 0.0
        for m, v in s.monthly:
            if m in months:
                seconds += v
        started = start <= s.started_at < end
        if not started and seconds <= 0:
            continue
        key = (s.learner_id, s.course_id)
        p = pairs.get(key)
        if p is None:
            p = pairs[key] = [0.0, 0, 0, False, 0]
        p[0] += seconds
        p[3] = True
        if started:
            p[1] += s.checks
            p[2] += s.passed_checks
    certificates: list[tuple[int, int, int, str]] = []
    for lid, learner in learners.items():
        for cid, passed, at in learner.assessments:
            if passed and start <= at < end and cid in inside:
                p = pairs.get((lid, cid))
                if p is None:
                    p = pairs[(lid, cid)] = [0.0, 0, 0, False, 0]
                p[4] += 1
        for cid, level, occupation, issued_on in learner.certificates:
            if period.first_day <= issued_on < period.end_day and cid in inside:
                certificates.append((lid, cid, level, occupation))
    group_cache: dict[int, tuple[str, ...]] = {}

    def groups_of(lid: int) -> tuple[str, ...]:
        found = group_cache.get(lid)
        if found is None:
            found = group_cache[lid] = groups_in(learners.get(lid), period)
        return found

    for (lid, cid), (seconds, checks, passed, trained, completed) in sorted(pairs.items()):
        course = courses.get(cid)
        if course is None:
            continue
        chain = path_of(course.institution_id)
        if chain is None:
            continue
        groups = groups_of(lid)
        keys = (
            ("by_group", groups or (NO_GROUP,)),
            ("by_occupation", (course.occupation_code or UNCLASSIFIED,)),
            ("by_skill_level", (_level(course.skill_level),)),
            ("by_delivery_mode", (course.delivery_mode,)),
        )
        # Into the deepest region only: the regions above get it from `_roll_up`.
        row = chain[-1]
        cells = [row.total] + [row.cell(d, k) for d, ks in keys for k in ks]
        for c in cells:
            if trained:
                c.training(lid, bool(groups), course.skill_level, seconds, checks, passed)
            c.completions += completed
    for lid, cid, level, occupation in certificates:
        course = courses.get(cid)
        if course is None:
            continue
        chain = path_of(course.institution_id)
        if chain is None:
            continue
        groups = groups_of(lid)
        row = chain[-1]
        row.total.certificate(level)
        for g in groups or (NO_GROUP,):
            row.cell("by_group", g).certificate(level)
        row.cell("by_occupation", occupation or UNCLASSIFIED).certificate(level)
        row.cell("by_skill_level", _level(level)).certificate(level)
        row.cell("by_delivery_mode", course.delivery_mode).certificate(level)
    _roll_up(rows)
    for claim in claims:
        chain = path_of(claim.institution_id)
        if chain is None:
            continue
        claimed = claim.amount if start <= claim.submitted_at < end else 0.0
        approved = 0.0
        if claim.status == "approved" and claim.decided_at is not None:
            approved = claim.approved if start <= claim.decided_at < end else 0.0
        paid = sum(amount for at, amount in claim.paid if start <= at < end)
        for row in chain:
            row.money["claimed"] += claimed
            row.money["approved"] += approved
            row.money["paid"] += paid
    for f in flags:
        if f.institution_id is None or not start <= f.raised_at < end:
            continue
        chain = path_of(f.institution_id)
        if chain is None:
            continue
        for row in chain:
            row.flags["raised"] += 1
            row.flags["confirmed"] += f.status == "confirmed"
    for institution_id, standing in standings.items():
        for effective, status in standing.changes:
            if status not in ("suspended", "expelled") or not start <= effective < end:
                continue
            chain = path_of(institution_id)
            for row in chain or ():
                row.standing[status].add(institution_id)
    return {
        "format": REPORT_FORMAT,
        "period": period.key,
        "period_kind": period.kind,
        "timezone": tz_name,
        "from": iso(period.start),
        "until": iso(period.end),
        "as_of": iso(as_of),
        "region": {"code": region, "level": root_level},
        "ledger": {"chains": ledger[0], "events": ledger[1]},
        "regions": [rows[c].out() for c in sorted(rows, key=_region_order)],
    }


def _roll_up(rows: dict[str, _Row]) -> None:
    """Add every region's training cells into its parent's, deepest regions first (money,
    flags and standing are added along the whole path where they are counted)."""

    def depth(row: _Row) -> int:
        n = 0
        while row.parent is not None and row.parent in rows:
            row, n = rows[row.parent], n + 1
        return n

    for row in sorted(rows.values(), key=depth, reverse=True):
        if row.parent is None or row.parent not in rows:
            continue
        parent = rows[row.parent]
        parent.total.merge(row.total)
        for dim, cells in row.dims.items():
            for key, cell in cells.items():
                parent.cell(dim, key).merge(cell)


def _row(rows: dict[str, _Row], code: str, level: str, parent: str) -> _Row:
    found = rows.get(code)
    if found is None:
        found = rows[code] = _Row(code, level, parent)
    return found


def _region_order(code: str) -> tuple[int, str]:
    return (0 if code == NATIONWIDE else 2 if code == UNASSIGNED else 1, code)


def _level(level: int | None) -> str:
    return UNKNOWN_LEVEL if level is None else str(level)


# -- corrections ---------------------------------------------------------------------------


def flatten(report: Mapping[str, Any]) -> dict[str, Any]:
    """Every figure of a report under a dotted key: `regions.<code>.<section>.<name>`
    (`<code>` is `all` for the whole country), for naming what a correction changed."""
    out: dict[str, Any] = {}
    for row in report.get("regions", ()):
        base = f"regions.{row['code'] or 'all'}"
        for section in ("figures", "headline"):
            for k, v in row[section].items():
                out[f"{base}.{section}.{k}"] = v
        for dim in DIMENSIONS:
            for key, cell in row[dim].items():
                for k, v in cell.items():
                    out[f"{base}.{dim}.{key}.{k}"] = v
    return out


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What changed from one report to the next, key by key (`flatten`), sorted by key;
    a figure absent on one side is null there."""
    a, b = flatten(before), flatten(after)
    return [
        {"key": k, "before": a.get(k), "after": b.get(k)}
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    ]

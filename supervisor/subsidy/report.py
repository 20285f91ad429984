"""Claim lists and the monthly report, computed from a ledger `Snapshot`.

Periods are months (or [from, until) ranges) in local time of `subsidy.timezone`,
turned into UTC instants. Rules:

- a **claim** belongs to the period in which the learner's latest assessment
  for the course was recorded as taken (`assessed_at`), and is decided on the
  ledger as it stood at the end of the period; every row lists the chains
  (sessions, class chains) its hours come from;
- the report counts **sessions** (online sessions, and learners' class chains)
  that started in the month, their checks and passed checks, and the **credited
  hours** of credited intervals that fall in the month (clipped at its edges);
  **learners** are those with such a session or credited time; **flags** are
  those raised in the month, by kind and current status; **eligible learners**
  and the **subsidy total** are the claims of the month.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.types import Course, Institution, Learner
from supervisor.i18n import Language, Speech
from supervisor.ledger.events import iso
from supervisor.registry.identity import mask_id_number
from supervisor.rules.eligibility import Eligibility
from supervisor.runtime.gc_pause import gc_paused
from supervisor.subsidy.scan import Snapshot
from supervisor.web import WEB_DIR


@dataclass(frozen=True, slots=True)
class ClaimRow:
    institution_id: int
    course_id: int
    course_name: str
    learner_id: int
    learner_name: str
    id_number_masked: str
    eligibility: Eligibility

    def as_dict(self) -> dict[str, Any]:
        e = self.eligibility
        return {
            "institution_id": self.institution_id,
            "course_id": self.course_id,
            "course_name": self.course_name,
            "learner_id": self.learner_id,
            "learner_name": self.learner_name,
            "id_number": self.id_number_masked,
            "eligible": e.eligible,
            "amount": e.amount,
            "reasons": list(e.reasons),
            "credited_hours": e.credited_hours,
            "online_hours": round(e.online_seconds / 3600, 6),
            "classroom_hours": round(e.classroom_seconds / 3600, 6),
            "required_hours": e.required_hours,
            "assessed_at": iso(e.assessed_at) if e.assessed_at else None,
            "flags": list(e.flags),
            "sessions": [
                {
                    "chain_id": s.chain_id,
                    "kind": s.kind,
                    "credited_seconds": s.credited_seconds,
                    "start_check_passed": s.start_check_passed,
                }
                for s in e.sessions
            ],
        }


def claimed(
    snap: Snapshot,
    courses: dict[int, Course],
    institution_id: int | None,
    start: datetime,
    end: datetime,
) -> Iterator[tuple[int, Course]]:
    """(learner id, course) of every claim of the period: enrolments whose latest
    assessment falls in [start, end), by learner id."""
    for learner_id in sorted(snap.learners):
        for course_id, _passed, assessed_at in snap.learners[learner_id].assessments:
            if not start <= assessed_at < end:
                continue
            course = courses.get(course_id)
            if course is None:
                continue
            if institution_id is not None and course.institution_id != institution_id:
                continue
            yield learner_id, course


@gc_paused
def claims(
    snap: Snapshot,
    courses: dict[int, Course],
    learners: dict[int, Learner],
    institution_id: int | None,
    start: datetime,
    end: datetime,
) -> list[ClaimRow]:
    """Claims of the period, each with the learner's name and masked ID number."""
    rows: list[ClaimRow] = []
    for learner_id, course in claimed(snap, courses, institution_id, start, end):
        learner = learners.get(learner_id)
        rows.append(
            ClaimRow(
                course.institution_id,
                course.id,
                course.name,
                learner_id,
                learner.full_name if learner else "",
                mask_id_number(learner.id_number) if learner else "",
                # As of the period's end: an institution suspended or expelled before it
                # is held (`institution_suspended`, `institution_expelled`).
                snap.eligibility(learner_id, course.id, end),
            )
        )
    return rows


# -- the monthly report ---------------------------------------------------------------


@gc_paused
def monthly_report(
    snap: Snapshot,
    institutions: Iterable[Institution],
    courses: dict[int, Course],
    month: str,
    start: datetime,
    end: datetime,
    tz_name: str,
    institution_id: int | None = None,
) -> dict[str, Any]:
    wanted = [i for i in institutions if institution_id is None or i.id == institution_id]
    per_course: dict[int, dict[str, Any]] = {}

    def row(course_id: int) -> dict[str, Any]:
        found = per_course.get(course_id)
        if found is None:
            course = courses[course_id]
            found = per_course[course_id] = {
                "course_id": course_id,
                "course_name": course.name,
                "delivery_mode": course.delivery_mode.value,
                "learners": set(),
                "sessions": 0,
                "classroom_chains": 0,
                "credited_hours": 0.0,
                "checks": 0,
                "passed_checks": 0,
                "claims": 0,
                "eligible_learners": 0,
                "subsidy_total": 0.0,
            }
        return found

    for s in snap.all_sessions():
        if s.course_id not in courses:
            continue
        credited = 0.0
        for m, seconds in s.monthly:
            if m == month:
                credited = seconds
        started_in = start <= s.started_at < end
        if not started_in and credited <= 0:
            continue
        r = row(s.course_id)
        r["learners"].add(s.learner_id)
        r["credited_hours"] += credited / 3600
        if started_in:
            r["sessions" if s.kind == "online" else "classroom_chains"] += 1
            r["checks"] += s.checks
            r["passed_checks"] += s.passed_checks
    # Counts only: no learner's name or ID number is read for the report.
    for learner_id, course in claimed(snap, courses, institution_id, start, end):
        r = row(course.id)
        r["claims"] += 1
        decided = snap.eligibility(learner_id, course.id)
        if decided.eligible:
            r["eligible_learners"] += 1
            r["subsidy_total"] += decided.amount
    flags: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    for f in snap.flags:
        if f.institution_id is None or not start <= f.raised_at < end:
            continue
        by_status = flags[f.institution_id].setdefault(
            f.kind, {"open": 0, "confirmed": 0, "dismissed": 0}
        )
        by_status[f.status] = by_status.get(f.status, 0) + 1
    out = []
    for inst in wanted:
        rows = []
        for course_id in sorted(c for c in per_course if courses[c].institution_id == inst.id):
            r = dict(per_course[course_id])
            r["learners"] = len(r["learners"])
            r["credited_hours"] = round(r["credited_hours"], 3)
            r["pass_rate"] = round(r["passed_checks"] / r["checks"], 4) if r["checks"] else None
            r["subsidy_total"] = round(r["subsidy_total"], 2)
            rows.append(r)
        out.append(
            {
                "institution_id": inst.id,
                "name": inst.name,
                "status": inst.status.value,
                "courses": rows,
                "flags": dict(sorted(flags.get(inst.id, {}).items())),
                "totals": {
                    "learners": sum(r["learners"] for r in rows),
                    "sessions": sum(r["sessions"] for r in rows),
                    "credited_hours": round(sum(r["credited_hours"] for r in rows), 3),
                    "checks": sum(r["checks"] for r in rows),
                    "passed_checks": sum(r["passed_checks"] for r in rows),
                    "eligible_learners": sum(r["eligible_learners"] for r in rows),
                    "subsidy_total": round(sum(r["subsidy_total"] for r in rows), 2),
                },
            }
        )
    return {
        "month": month,
        "timezone": tz_name,
        "from": iso(start),
        "until": iso(end),
        "ledger": {"chains": snap.chains, "events": snap.events},
        "institutions": out,
    }


# -- HTML: server-rendered, charts as inline SVG, no script, no external assets ------

_TEMPLATE = WEB_DIR / "templates" / "monthly_report.html"


def _bars(rows: list[dict[str, Any]], key: str, title: str, unit: str) -> str:
    """A horizontal bar chart as inline SVG (escaped text, no script); `unit` is `pct`
    (values are fractions, shown as percentages) or the unit after each value."""
    from markupsafe import Markup, escape

    values = [(str(r["course_name"]), float(r[key] or 0.0)) for r in rows]
    top = max((v for _, v in values), default=0.0) or 1.0
    if unit == "pct":
        top = 1.0
    bar_h, label_w, width = 22, 220, 640
    height = bar_h * len(values) + 30
    parts = [
        f"<figure><figcaption>{escape(title)}</figcaption>"
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for n, (name, v) in enumerate(values):
        y = 10 + n * bar_h
        w = max(0.0, (width - label_w - 80) * v / top)
        text = f"{v * 100:.1f}%" if unit == "pct" else f"{v:.1f} {unit}"
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(name[:30])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 6}" fill="#3b7dd8"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{escape(text)}</text>'
        )
    parts.append("</svg></figure>")
    return Markup("".join(parts))


def report_html(report: dict[str, Any], speech: Speech, language: Language) -> str:
    """The report as a page in `language`: month bounds and times in the display zone."""
    return speech.render(
        language,
        _TEMPLATE.name,
        r=report,
        bars=_bars,
        start=datetime.fromisoformat(report["from"]),
        end=datetime.fromisoformat(report["until"]),
    )


def report_csp() -> str:
    """The page's Content-Security-Policy: the service's strict policy, except that the
    page's one inline style block (kept inline so that the HTML also stands alone as a
    file from the CLI) is allowed by its hash. No script at all."""
    import base64
    import hashlib
    import re

    style = re.search(r"<style>(.*?)</style>", _TEMPLATE.read_text(encoding="utf-8"), re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    return (
        "default-src 'none'; script-src 'none'; "
        f"style-src 'sha256-{digest}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )

"""The dispatch report as a spreadsheet and as a page with charts (Chinese first).

The spreadsheet goes through `supervisor.subsidy.exports.Writer`, so every text cell
is neutralised (`safe_text`); the page is rendered on the server with inline SVG bars
(`report._bars`), no script, and its one style block allowed by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from markupsafe import Markup

from supervisor.i18n import N_, Language, LocalTime, Speech, Translator
from supervisor.i18n.labels import label
from supervisor.rules.dispatch import DIMENSIONS
from supervisor.subsidy.exports import COUNT, HOURS, PERCENT, YUAN, Column, Table
from supervisor.subsidy.report import _bars
from supervisor.web import WEB_DIR

_TEMPLATE = WEB_DIR / "templates" / "dispatch_report.html"

KEY_GROUP_NAMES = {
    "rural_migrant_worker": N_("rural migrant workers"),
    "school_leaver": N_("school leavers"),
    "unemployed": N_("laid-off and unemployed people"),
    "veteran": N_("veterans"),
    "employment_difficulty": N_("people with employment difficulties"),
    "poverty_risk": N_("people at risk of returning to poverty"),
    "enterprise_staff": N_("enterprise staff"),
    "none": N_("in no key group"),
}
LEVEL_NAMES = {
    "1": N_("level 1 (senior technician)"),
    "2": N_("level 2 (technician)"),
    "3": N_("level 3 (senior worker)"),
    "4": N_("level 4 (intermediate worker)"),
    "5": N_("level 5 (junior worker)"),
    "unknown": N_("level not classified"),
}
DIMENSION_NAMES = {
    "by_group": N_("Key group"),
    "by_occupation": N_("Occupation code"),
    "by_skill_level": N_("Skill level"),
    "by_delivery_mode": N_("Delivery mode"),
}
REGION_LEVELS = {
    "nationwide": N_("nationwide"),
    "province": N_("province"),
    "city": N_("city"),
    "county": N_("county"),
    "unassigned": N_("no division recorded"),
}


def key_name(t: Translator, dim: str, key: str) -> str:
    """A breakdown's key for a person: a group's or a level's name, a delivery mode's
    label; occupation codes stay codes."""
    if dim == "by_group" and key in KEY_GROUP_NAMES:
        return t.gettext(KEY_GROUP_NAMES[key])
    if dim == "by_skill_level" and key in LEVEL_NAMES:
        return t.gettext(LEVEL_NAMES[key])
    if dim == "by_delivery_mode":
        return label(t, "delivery_mode", key)
    if dim == "by_occupation" and key == "unclassified":
        return t.gettext(N_("not classified"))
    return key


def region_name(t: Translator, row: dict[str, Any]) -> str:
    level = t.gettext(REGION_LEVELS.get(row["level"], row["level"]))
    return f"{row['code']} ({level})" if row["code"] else level


# -- the spreadsheet ---------------------------------------------------------------------

CELL_COLUMNS = (
    ("learners", Column(N_("Learners trained"), COUNT)),
    ("trainings", Column(N_("Trainings (person-times)"), COUNT)),
    ("credited_hours", Column(N_("Credited hours"), HOURS)),
    ("completions", Column(N_("Completions"), COUNT)),
    ("certificates", Column(N_("Certificates issued"), COUNT)),
    ("high_skill_certificates", Column(N_("High-skill certificates"), COUNT)),
    ("checks", Column(N_("Checks"), COUNT)),
    ("pass_rate", Column(N_("Pass rate"), PERCENT)),
)
REGION_COLUMNS = (
    ("subsidy_claimed", Column(N_("Subsidy claimed (yuan)"), YUAN)),
    ("subsidy_approved", Column(N_("Subsidy approved (yuan)"), YUAN)),
    ("subsidy_paid", Column(N_("Subsidy paid (yuan)"), YUAN)),
    ("flags_raised", Column(N_("Flags raised"), COUNT)),
    ("flags_confirmed", Column(N_("Flags confirmed"), COUNT)),
    ("institutions_suspended", Column(N_("Institutions suspended"), COUNT)),
    ("institutions_expelled", Column(N_("Institutions expelled"), COUNT)),
)
HEADLINE_COLUMNS = (
    ("high_skill_training_share", Column(N_("High-skill training share"), PERCENT)),
    ("high_skill_certificate_share", Column(N_("High-skill certificate share"), PERCENT)),
    ("key_group_learner_share", Column(N_("Key-group learner share"), PERCENT)),
)


def dispatch_tables(served: dict[str, Any], t: Translator, clock: LocalTime) -> list[Table]:
    """Regions (one row each, with every figure), breakdowns (region x dimension x
    key), the figures a correction changed, and what the report covers."""
    r = served["report"]
    region_rows = tuple(
        (
            row["code"] or "",
            t.gettext(REGION_LEVELS.get(row["level"], row["level"])),
            row["parent"] or "",
            *(row["figures"][k] for k, _ in CELL_COLUMNS + REGION_COLUMNS),
            *(row["headline"][k] for k, _ in HEADLINE_COLUMNS),
        )
        for row in r["regions"]
    )
    regions = Table(
        N_("Regions"),
        (
            Column(N_("Region code")),
            Column(N_("Level")),
            Column(N_("Part of")),
            *(c for _, c in CELL_COLUMNS + REGION_COLUMNS + HEADLINE_COLUMNS),
        ),
        region_rows,
    )
    breakdown_rows = tuple(
        (
            row["code"] or "",
            t.gettext(DIMENSION_NAMES[dim]),
            key_name(t, dim, key),
            *(cell[k] for k, _ in CELL_COLUMNS),
        )
        for row in r["regions"]
        for dim in DIMENSIONS
        for key, cell in row[dim].items()
    )
    breakdown = Table(
        N_("Breakdowns"),
        (
            Column(N_("Region code")),
            Column(N_("Breakdown")),
            Column(N_("Item")),
            *(c for _, c in CELL_COLUMNS),
        ),
        breakdown_rows,
    )
    changes = Table(
        N_("Changes"),
        (Column(N_("Figure")), Column(N_("Before")), Column(N_("After"))),
        tuple((c["key"], c["before"], c["after"]) for c in served["changes"]),
    )
    about_rows: list[tuple[Any, ...]] = [
        (t(N_("Period")), r["period"]),
        (t(N_("Periods are counted in")), r["timezone"]),
        (t(N_("From")), clock.format(datetime.fromisoformat(r["from"]))),
        (t(N_("Until (exclusive)")), clock.format(datetime.fromisoformat(r["until"]))),
        (t(N_("Ledger as of")), clock.format(datetime.fromisoformat(r["as_of"]))),
        (t(N_("Status")), t(N_("closed")) if served["status"] == "closed" else t(N_("open"))),
        (t(N_("Version")), served["version"]),
        (t(N_("Reason")), served["reason"]),
        ("SHA-256", served["sha256"]),
        (t(N_("Ledger events read")), r["ledger"]["events"]),
        (
            t(N_("Note")),
            t(
                N_(
                    "A learner counts in each key group they belong to: the group rows "
                    "do not add up to the total."
                )
            ),
        ),
    ]
    about = Table(N_("About"), (Column(N_("Item")), Column(N_("Value"))), tuple(about_rows))
    return [regions, breakdown, changes, about]


# -- the page ------------------------------------------------------------------------------


def _chart_rows(cells: dict[str, Any], dim: str, key: str, t: Translator) -> list[dict[str, Any]]:
    return [{"course_name": key_name(t, dim, k), key: v.get(key) or 0} for k, v in cells.items()]


def dispatch_html(served: dict[str, Any], speech: Speech, language: Language) -> str:
    t = speech.translator(language)

    def chart(cells: dict[str, Any], dim: str, key: str, title: str, unit: str) -> Markup:
        return Markup(_bars(_chart_rows(cells, dim, key, t), key, title, unit))

    def region_chart(rows: list[dict[str, Any]], key: str, title: str, unit: str) -> Markup:
        shown = [
            {"course_name": region_name(t, row), key: row["figures"][key] or 0} for row in rows
        ]
        return Markup(_bars(shown, key, title, unit))

    r = served["report"]
    return speech.render(
        language,
        _TEMPLATE.name,
        s=served,
        r=r,
        chart=chart,
        region_chart=region_chart,
        kname=lambda dim, key: key_name(t, dim, key),
        rname=lambda row: region_name(t, row),
        dims=[(d, t.gettext(DIMENSION_NAMES[d])) for d in DIMENSIONS],
        start=datetime.fromisoformat(r["from"]),
        end=datetime.fromisoformat(r["until"]),
        as_of=datetime.fromisoformat(r["as_of"]),
    )


def dispatch_csp(read: Callable[[], str] | None = None) -> str:
    """The page's Content-Security-Policy: no script at all; the one inline style block
    allowed by its hash."""
    text = (read or (lambda: _TEMPLATE.read_text(encoding="utf-8")))()
    style = re.search(r"<style>(.*?)</style>", text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    return (
        "default-src 'none'; script-src 'none'; "
        f"style-src 'sha256-{digest}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )

"""Claims and the monthly report as files the bureau opens: `.xlsx` (openpyxl) and CSV
(UTF-8 with a byte-order mark, so that Excel on a Chinese Windows reads it as UTF-8),
with headers in the reader's language, 是/否 for yes and no, local times and totals.

Every text cell of every export goes through `safe_text`: a spreadsheet program runs
a cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage return before one)
as a formula, so a course named `=HYPERLINK(...)` or a learner named
`=cmd|' /C calc'!A0` would run on the clerk's machine. Such text gets a leading `'`,
and xlsx cells are stored as text whatever they hold.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from supervisor.i18n import N_, LocalTime, Translator
from supervisor.i18n.labels import label
from supervisor.subsidy.report import ClaimRow

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CSV_BOM = "\ufeff"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Number formats of spreadsheet cells.
YUAN = "#,##0.00"
HOURS = "0.00"
PERCENT = "0.0%"
COUNT = "0"
DATETIME = "yyyy-mm-dd hh:mm"


# What a spreadsheet file cannot hold (openpyxl refuses it): control characters but tab
# and line breaks. Storage refuses them in new text; rows written before are cleaned here.
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def safe_text(value: str) -> str:
    """`value`, with a leading `'` when a spreadsheet would read it as a formula, and
    without the control characters a spreadsheet cannot hold."""
    value = _UNWRITABLE.sub("", value)
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


@dataclass(frozen=True, slots=True)
class Column:
    """One column of an export: its header (an English message id) and the number
    format of its cells in a spreadsheet (None: text)."""

    header: str
    number_format: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """What an export holds, before it becomes CSV or a sheet: `rows` of values (str,
    int, float, bool, datetime or None) under `columns`, and a totals row whose empty
    cells are None."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    totals: tuple[Any, ...] | None = None


class Writer:
    """Turns tables into CSV or xlsx in one language and zone."""

    def __init__(self, t: Translator, clock: LocalTime) -> None:
        self.t = t
        self.clock = clock

    def headers(self, table: Table) -> list[str]:
        return [safe_text(self.t(c.header, zone=self.clock.zone_label())) for c in table.columns]

    def text(self, value: Any) -> str:
        """A value as CSV text: yes/no in the language, local times without offset (the
        header names the zone), numbers as Python writes them."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return self.t.gettext(N_("yes") if value else N_("no"))
        if isinstance(value, datetime):
            return self.clock.format(value, offset=False)
        return safe_text(str(value))

    def csv(self, table: Table) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(self.headers(table))
        for row in table.rows:
            w.writerow([self.text(v) for v in row])
        if table.totals is not None:
            w.writerow([self.text(v) for v in table.totals])
        return CSV_BOM + out.getvalue()

    def sheet(self, ws: Worksheet, table: Table) -> None:
        ws.title = safe_text(self.t.gettext(table.title))[:31]
        bold = Font(bold=True)
        fill = PatternFill("solid", fgColor="DDEBF7")
        for n, header in enumerate(self.headers(table), start=1):
            cell = ws.cell(row=1, column=n, value=header)
            cell.font, cell.fill = bold, fill
            cell.alignment = Alignment(wrap_text=True, vertical="center")
            ws.column_dimensions[get_column_letter(n)].width = max(10, min(40, len(header) * 2))
        for r, row in enumerate(table.rows, start=2):
            for n, (value, column) in enumerate(zip(row, table.columns, strict=True), start=1):
                self._cell(ws.cell(row=r, column=n), value, column)
        if table.totals is not None:
            r = len(table.rows) + 2
            for n, (value, column) in enumerate(
                zip(table.totals, table.columns, strict=True), start=1
            ):
                total = ws.cell(row=r, column=n)
                self._cell(total, value, column)
                total.font = bold
        ws.freeze_panes = "A2"

    def _cell(self, cell: Cell | MergedCell, value: Any, column: Column) -> None:
        if value is None or isinstance(cell, MergedCell):
            return
        if isinstance(value, bool):
            cell.value = self.t.gettext(N_("yes") if value else N_("no"))
        elif isinstance(value, datetime):
            cell.value = self.clock.wall(value)
            cell.number_format = DATETIME
        elif isinstance(value, int | float):
            cell.value = value
            if column.number_format:
                cell.number_format = column.number_format
        else:
            cell.value = safe_text(str(value))
            # Text stays text: openpyxl would otherwise store a leading `=` as a formula.
            cell.data_type = "s"

    def xlsx(self, tables: Sequence[Table]) -> bytes:
        wb = Workbook()
        first = True
        for table in tables:
            ws = wb.active if first else wb.create_sheet()
            assert isinstance(ws, Worksheet)
            self.sheet(ws, table)
            first = False
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()


# -- claims ----------------------------------------------------------------------------

CLAIM_COLUMNS = (
    Column(N_("Institution id"), COUNT),
    Column(N_("Course id"), COUNT),
    Column(N_("Course")),
    Column(N_("Learner id"), COUNT),
    Column(N_("Name")),
    Column(N_("ID number (masked)")),
    Column(N_("Eligible for subsidy")),
    Column(N_("Subsidy (yuan)"), YUAN),
    Column(N_("Why not eligible")),
    Column(N_("Credited hours"), HOURS),
    Column(N_("Online hours"), HOURS),
    Column(N_("Classroom hours"), HOURS),
    Column(N_("Required hours"), HOURS),
    Column(N_("Assessed at ({zone})")),
    Column(N_("Flags")),
    Column(N_("Study records")),
)


def claims_table(rows: Sequence[ClaimRow], t: Translator) -> Table:
    """One row per claim, then the totals: claims, eligible learners, subsidy, hours."""
    out = []
    for r in rows:
        e = r.eligibility
        out.append(
            (
                r.institution_id,
                r.course_id,
                r.course_name,
                r.learner_id,
                r.learner_name,
                r.id_number_masked,
                e.eligible,
                e.amount,
                "; ".join(label(t, "eligibility", x) for x in e.reasons),
                round(e.credited_hours, 2),
                round(e.online_seconds / 3600, 2),
                round(e.classroom_seconds / 3600, 2),
                e.required_hours,
                e.assessed_at,
                "; ".join(str(f) for f in e.flags),
                "; ".join(s.chain_id for s in e.sessions),
            )
        )
    eligible = sum(1 for r in rows if r.eligibility.eligible)
    totals = (
        t(N_("Total")),
        None,
        t(N_("{n} claims"), n=len(rows)),
        None,
        None,
        None,
        t(N_("{n} eligible"), n=eligible),
        round(sum(r.eligibility.amount for r in rows if r.eligibility.eligible), 2),
        None,
        round(sum(r.eligibility.credited_hours for r in rows), 2),
        round(sum(r.eligibility.online_seconds for r in rows) / 3600, 2),
        round(sum(r.eligibility.classroom_seconds for r in rows) / 3600, 2),
        None,
        None,
        None,
        None,
    )
    return Table(N_("Subsidy claims"), CLAIM_COLUMNS, tuple(out), totals)


# -- the monthly report ------------------------------------------------------------------

REPORT_COLUMNS = (
    Column(N_("Month")),
    Column(N_("Institution id"), COUNT),
    Column(N_("Institution")),
    Column(N_("Institution status")),
    Column(N_("Course id"), COUNT),
    Column(N_("Course")),
    Column(N_("Delivery mode")),
    Column(N_("Learners"), COUNT),
    Column(N_("Online sessions"), COUNT),
    Column(N_("Class records"), COUNT),
    Column(N_("Credited hours"), HOURS),
    Column(N_("Checks"), COUNT),
    Column(N_("Checks passed"), COUNT),
    Column(N_("Pass rate"), PERCENT),
    Column(N_("Claims"), COUNT),
    Column(N_("Eligible learners"), COUNT),
    Column(N_("Subsidy (yuan)"), YUAN),
    Column(N_("Open flags (institution)"), COUNT),
    Column(N_("Confirmed flags (institution)"), COUNT),
    Column(N_("Dismissed flags (institution)"), COUNT),
)

FLAG_COLUMNS = (
    Column(N_("Institution id"), COUNT),
    Column(N_("Institution")),
    Column(N_("Flag")),
    Column(N_("Open"), COUNT),
    Column(N_("Confirmed"), COUNT),
    Column(N_("Dismissed"), COUNT),
)


def _flag_counts(inst: dict[str, Any]) -> dict[str, int]:
    counts = {"open": 0, "confirmed": 0, "dismissed": 0}
    for by_status in inst["flags"].values():
        for k, v in by_status.items():
            counts[k] = counts.get(k, 0) + v
    return counts


def report_table(report: dict[str, Any], t: Translator) -> Table:
    """One row per institution and course (the institution's flag counts repeat on
    each), then the totals of the month."""
    rows = []
    for inst in report["institutions"]:
        counts = _flag_counts(inst)
        for c in inst["courses"]:
            rows.append(
                (
                    report["month"],
                    inst["institution_id"],
                    inst["name"],
                    label(t, "institution_status", inst["status"]),
                    c["course_id"],
                    c["course_name"],
                    label(t, "delivery_mode", c["delivery_mode"]),
                    c["learners"],
                    c["sessions"],
                    c["classroom_chains"],
                    c["credited_hours"],
                    c["checks"],
                    c["passed_checks"],
                    c["pass_rate"],
                    c["claims"],
                    c["eligible_learners"],
                    c["subsidy_total"],
                    counts["open"],
                    counts["confirmed"],
                    counts["dismissed"],
                )
            )
    courses = [c for inst in report["institutions"] for c in inst["courses"]]
    checks = sum(c["checks"] for c in courses)
    passed = sum(c["passed_checks"] for c in courses)
    flags = [_flag_counts(inst) for inst in report["institutions"]]
    totals = (
        t(N_("Total")),
        None,
        None,
        None,
        None,
        None,
        None,
        sum(c["learners"] for c in courses),
        sum(c["sessions"] for c in courses),
        sum(c["classroom_chains"] for c in courses),
        round(sum(c["credited_hours"] for c in courses), 3),
        checks,
        passed,
        round(passed / checks, 4) if checks else None,
        sum(c["claims"] for c in courses),
        sum(c["eligible_learners"] for c in courses),
        round(sum(c["subsidy_total"] for c in courses), 2),
        sum(f["open"] for f in flags),
        sum(f["confirmed"] for f in flags),
        sum(f["dismissed"] for f in flags),
    )
    return Table(N_("Monthly report"), REPORT_COLUMNS, tuple(rows), totals)


def flags_table(report: dict[str, Any], t: Translator) -> Table:
    rows = tuple(
        (
            inst["institution_id"],
            inst["name"],
            label(t, "flag", kind),
            s.get("open", 0),
            s.get("confirmed", 0),
            s.get("dismissed", 0),
        )
        for inst in report["institutions"]
        for kind, s in inst["flags"].items()
    )
    return Table(N_("Flags raised"), FLAG_COLUMNS, rows)


def about_table(report: dict[str, Any], t: Translator, clock: LocalTime) -> Table:
    """What the report covers: the month's bounds in local time, the ledger read."""
    start = datetime.fromisoformat(report["from"])
    end = datetime.fromisoformat(report["until"])
    rows = (
        (t(N_("Month")), report["month"]),
        (t(N_("Months are counted in")), report["timezone"]),
        (t(N_("From")), clock.format(start)),
        (t(N_("Until (exclusive)")), clock.format(end)),
        (t(N_("Ledger events read")), report["ledger"]["events"]),
        (t(N_("Ledger chains read")), report["ledger"]["chains"]),
    )
    return Table(N_("About"), (Column(N_("Item")), Column(N_("Value"))), rows)


def report_tables(report: dict[str, Any], t: Translator, clock: LocalTime) -> list[Table]:
    return [report_table(report, t), flags_table(report, t), about_table(report, t, clock)]

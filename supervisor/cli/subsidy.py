"""`supervisor report`, `supervisor claims`, `supervisor eligibility`, `supervisor
fraud scan`: the same computations as the API, read straight from the database
(an inspector with a copy of the ledger recomputes them offline)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config import Settings
from supervisor.cli.common import open_migrated
from supervisor.i18n import Language, LocalTime, Speech


def _write(text: str | bytes, output: Path | None) -> None:
    if isinstance(text, bytes):
        if output is None:
            sys.stdout.buffer.write(text)
        else:
            output.write_bytes(text)
    elif output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text, encoding="utf-8")


def _speech(settings: Settings, args: argparse.Namespace) -> tuple[Speech, Language]:
    """The language of the files (`--lang`, else `web.default_language`) and the zone
    their times are shown in (`web.timezone`)."""
    language = Language(args.lang or settings.web.default_language)
    return Speech(language, LocalTime(settings.web.timezone)), language


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone (e.g. +08:00)")
    return value


def _courses(storage: Any) -> dict[int, Any]:
    return {c.id: c for c in storage.registry.list_courses(None)}


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.rules.months import month_bounds
    from supervisor.subsidy.exports import Writer, report_tables
    from supervisor.subsidy.report import monthly_report, report_html
    from supervisor.subsidy.scan import scan

    tz = settings.subsidy.timezone
    try:
        start, end = month_bounds(args.month, tz)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open_migrated(settings) as storage:
        courses, institutions = _courses(storage), storage.registry.list_institutions()
        snap = scan(storage, settings, end, use_summaries=not args.recompute)
        report = monthly_report(
            snap, institutions, courses, args.month, start, end, tz, args.institution
        )
    speech, language = _speech(settings, args)
    writer = Writer(speech.translator(language), speech.clock)
    if args.format == "csv":
        _write(writer.csv(report_tables(report, writer.t, speech.clock)[0]), args.output)
    elif args.format == "xlsx":
        _write(writer.xlsx(report_tables(report, writer.t, speech.clock)), args.output)
    elif args.format == "html":
        _write(report_html(report, speech, language), args.output)
    else:
        _write(json.dumps(report, ensure_ascii=False, indent=1), args.output)
    return 0


def _claims(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.subsidy.exports import Writer, claims_table
    from supervisor.subsidy.report import claims
    from supervisor.subsidy.scan import scan

    if args.until <= args.start:
        print("error: --until must be after --from", file=sys.stderr)
        return 2
    with open_migrated(settings) as storage:
        courses = _courses(storage)
        learners = {lr.id: lr for lr in storage.registry.list_learners(None)}
        snap = scan(storage, settings, args.until, use_summaries=not args.recompute)
        rows = claims(snap, courses, learners, args.institution, args.start, args.until)
    speech, language = _speech(settings, args)
    writer = Writer(speech.translator(language), speech.clock)
    if args.format == "csv":
        _write(writer.csv(claims_table(rows, writer.t)), args.output)
    elif args.format == "xlsx":
        _write(writer.xlsx([claims_table(rows, writer.t)]), args.output)
    else:
        _write(json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=1), args.output)
    return 0


def _eligibility(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.subsidy.report import ClaimRow
    from supervisor.subsidy.scan import learner_snapshot

    with open_migrated(settings) as storage:
        snap = learner_snapshot(storage, settings, args.learner, args.course)
        e = snap.eligibility(args.learner, args.course)
    row = ClaimRow(0, args.course, "", args.learner, "", "", e).as_dict()
    for k in ("institution_id", "course_name", "learner_name", "id_number"):
        row.pop(k)
    print(json.dumps(row, ensure_ascii=False))
    return 0 if e.eligible else 1


def _fraud_scan(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.rules.flags import view
    from supervisor.rules.months import month_bounds
    from supervisor.subsidy.service import fraud_scan

    if args.month is not None:
        try:
            month_bounds(args.month, settings.subsidy.timezone)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    with open_migrated(settings) as storage:
        raised = fraud_scan(storage, settings, args.month, datetime.now(UTC))
    for f in raised:
        v = view(f)
        print(json.dumps({"flag_id": f.id, "kind": f.kind, "summary": v.summary}))
    print(json.dumps({"raised": len(raised)}))
    return 0


def _summaries(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.subsidy.scan import refresh_summaries

    with open_migrated(settings) as storage:
        if args.summaries_command == "clear":
            print(json.dumps({"cleared": storage.summaries.clear()}))
            return 0
        started = time.monotonic()
        done = refresh_summaries(storage, settings)
    out = {
        "chains": done.chains,
        "refolded": done.refolded,
        "events_read": done.events,
        "seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(out))
    return 0


_LANG = (
    "language of csv, xlsx and html output (default: web.default_language); times are "
    "shown in web.timezone"
)
_RECOMPUTE = (
    "fold every chain from its events, ignoring the stored chain summaries (an "
    "independent recomputation; slower)"
)


def add_subsidy_parsers(sub: Any) -> None:
    """Add `report`, `claims`, `eligibility`, `fraud` and `summaries` to the top-level
    subparsers."""
    report = sub.add_parser("report", help="reports computed from the ledger").add_subparsers(
        dest="report_command", required=True, metavar="ACTION"
    )
    p = report.add_parser("monthly", help="per institution and course, for a month")
    p.add_argument("--month", required=True, help="YYYY-MM (in subsidy.timezone)")
    p.add_argument("--institution", type=int, default=None)
    p.add_argument("--format", choices=("json", "csv", "xlsx", "html"), default="json")
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--lang", choices=[x.value for x in Language], default=None, help=_LANG)
    p.add_argument("--recompute", action="store_true", help=_RECOMPUTE)
    p.set_defaults(handler=_report)

    p = sub.add_parser("claims", help="subsidy claims of a period, each traceable to sessions")
    p.add_argument("--from", dest="start", type=_aware, required=True, help="ISO 8601, aware")
    p.add_argument("--until", type=_aware, required=True, help="ISO 8601, aware, exclusive")
    p.add_argument("--institution", type=int, default=None)
    p.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--lang", choices=[x.value for x in Language], default=None, help=_LANG)
    p.add_argument("--recompute", action="store_true", help=_RECOMPUTE)
    p.set_defaults(handler=_claims)

    p = sub.add_parser("eligibility", help="one learner's eligibility for a course (exit 1: no)")
    p.add_argument("learner", type=int)
    p.add_argument("course", type=int)
    p.set_defaults(handler=_eligibility)

    fraud = sub.add_parser("fraud", help="fraud signals").add_subparsers(
        dest="fraud_command", required=True, metavar="ACTION"
    )
    p = fraud.add_parser("scan", help="find fraud signals in the ledger; raise new flags")
    p.add_argument("--month", default=None, help="YYYY-MM; default: the whole ledger")
    p.set_defaults(handler=_fraud_scan)

    summaries = sub.add_parser(
        "summaries", help="the chain summaries that eligibility, claims and reports read"
    ).add_subparsers(dest="summaries_command", required=True, metavar="ACTION")
    p = summaries.add_parser("refresh", help="fold the chains that grew; store their summaries")
    p.set_defaults(handler=_summaries)
    p = summaries.add_parser("clear", help="forget every summary (the next scan rebuilds them)")
    p.set_defaults(handler=_summaries)

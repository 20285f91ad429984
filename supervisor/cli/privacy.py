"""`supervisor privacy record` (the data-processing record from the settings in force)
and `supervisor purge` (retention of every kind of personal data)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from config import Settings
from supervisor.privacy.record import record_html, record_markdown


def add_privacy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmds = sub.add_parser("privacy", help="personal data: the data-processing record")
    actions = cmds.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    p = actions.add_parser("record", help="print what is collected, why, where, how long")
    p.add_argument("--html", action="store_true", help="as an HTML page instead of Markdown")
    p.set_defaults(handler=_cmd_record)
    p = sub.add_parser(
        "purge",
        help="apply retention: expired evidence frames, templates after course end, "
        "old access-log entries",
    )
    p.set_defaults(handler=_cmd_purge)


def _cmd_record(settings: Settings, args: argparse.Namespace) -> int:
    print(record_html(settings) if args.html else record_markdown(settings), end="")
    return 0


def _cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.common import open_migrated
    from supervisor.privacy.retention import purge

    with open_migrated(settings) as storage:
        report = purge(storage, settings, datetime.now(UTC))
    print(
        json.dumps(
            {
                "evidence_frames": report.evidence_frames,
                "templates": {str(k): v for k, v in report.templates.items()},
                "access_log_entries": report.access_log_entries,
                "session_clients": report.session_clients,
                "frame_signatures": report.frame_signatures,
            }
        )
    )
    return 0

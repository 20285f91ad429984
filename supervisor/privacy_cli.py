"""`supervisor privacy record`: the data-processing record from the settings in force."""

from __future__ import annotations

import argparse

from config import Settings
from supervisor.privacy import record_html, record_markdown


def add_privacy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmds = sub.add_parser("privacy", help="personal data: the data-processing record")
    actions = cmds.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    p = actions.add_parser("record", help="print what is collected, why, where, how long")
    p.add_argument("--html", action="store_true", help="as an HTML page instead of Markdown")
    p.set_defaults(handler=_cmd_record)


def _cmd_record(settings: Settings, args: argparse.Namespace) -> int:
    print(record_html(settings) if args.html else record_markdown(settings), end="")
    return 0

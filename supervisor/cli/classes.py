"""`supervisor class ...`: classes, rosters, cameras, filing and supervision, for operators.

The commands call the running service's API (so the same rules, checks and
ledger events apply as for any other client) with an operator's or an admin's
token, read from `--token-file` or the environment variable `SUPERVISOR_TOKEN`
(never from the command line, where other users of the machine could see it).
Each command prints the API's answer as JSON; a refusal prints the reason to
standard error and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from config import Settings

TOKEN_ENV = "SUPERVISOR_TOKEN"


def add_class_parser(sub: Any) -> None:
    """Add the `class` command group to the top-level subparsers."""
    group = sub.add_parser("class", help="classroom classes and their supervision (via the API)")
    group.add_argument("--server", default=None, help="service URL (server.public_url)")
    group.add_argument(
        "--token-file", type=Path, default=None, help=f"file holding the token (or ${TOKEN_ENV})"
    )
    actions = group.add_subparsers(dest="class_command", required=True, metavar="ACTION")

    p = actions.add_parser("create", help="create a class of a course")
    p.add_argument("--course", type=int, required=True, help="course id")
    p.add_argument("--name", required=True)
    p.add_argument("--start", required=True, help="ISO 8601 with a time zone")
    p.add_argument("--end", required=True, help="ISO 8601 with a time zone")
    p.add_argument("--mode", choices=("training", "assessment"), default="training")
    p.set_defaults(call=_create)

    p = actions.add_parser("list", help="list classes")
    p.add_argument("--course", type=int, default=None)
    p.set_defaults(call=lambda a: ("GET", "/classes", _query(course_id=a.course), None))

    p = actions.add_parser("show", help="a class")
    p.add_argument("class_id", type=int)
    p.set_defaults(call=lambda a: ("GET", f"/classes/{a.class_id}", None, None))

    roster = actions.add_parser("roster", help="the roster").add_subparsers(
        dest="roster_command", required=True, metavar="ACTION"
    )
    p = roster.add_parser("add", help="enrol learners (all or none)")
    p.add_argument("class_id", type=int)
    p.add_argument("learners", type=int, nargs="+", metavar="LEARNER")
    p.set_defaults(
        call=lambda a: (
            "POST",
            f"/classes/{a.class_id}/roster",
            None,
            {"learner_ids": a.learners},
        )
    )
    p = roster.add_parser("remove", help="take a learner off the roster")
    p.add_argument("class_id", type=int)
    p.add_argument("learner", type=int)
    p.set_defaults(
        call=lambda a: ("DELETE", f"/classes/{a.class_id}/roster/{a.learner}", None, None)
    )
    p = roster.add_parser("list", help="the roster")
    p.add_argument("class_id", type=int)
    p.set_defaults(call=lambda a: ("GET", f"/classes/{a.class_id}/roster", None, None))

    camera = actions.add_parser("camera", help="camera sources").add_subparsers(
        dest="camera_command", required=True, metavar="ACTION"
    )
    p = camera.add_parser("add", help="add a camera (rtsp://, http(s):// MJPEG, file://)")
    p.add_argument("class_id", type=int)
    p.add_argument("url")
    p.add_argument("--label", default="camera")
    p.set_defaults(
        call=lambda a: (
            "POST",
            f"/classes/{a.class_id}/cameras",
            None,
            {"url": a.url, "label": a.label},
        )
    )
    p = camera.add_parser("list", help="the cameras (URLs without credentials)")
    p.add_argument("class_id", type=int)
    p.set_defaults(call=lambda a: ("GET", f"/classes/{a.class_id}/cameras", None, None))

    p = actions.add_parser("file", help="file the class before training")
    p.add_argument("class_id", type=int)
    p.add_argument("--teacher", required=True)
    p.add_argument("--teaching-plan", type=Path, required=True, help="text file")
    p.add_argument("--assessment-plan", type=Path, required=True, help="text file")
    p.set_defaults(call=_file)

    for name, helptext in (
        ("start", "start supervising the class"),
        ("stop", "stop supervising (a last roll call is held)"),
    ):
        p = actions.add_parser(name, help=helptext)
        p.add_argument("class_id", type=int)
        p.set_defaults(
            call=lambda a, name=name: (
                "POST",
                f"/classes/{a.class_id}/supervision/{name}",
                None,
                None,
            )
        )
    p = actions.add_parser("status", help="supervision status and live headcount")
    p.add_argument("class_id", type=int)
    p.set_defaults(call=lambda a: ("GET", f"/classes/{a.class_id}/supervision", None, None))
    p = actions.add_parser("attendance", help="credited time and timeline of each learner")
    p.add_argument("class_id", type=int)
    p.set_defaults(call=lambda a: ("GET", f"/classes/{a.class_id}/attendance", None, None))

    group.set_defaults(handler=run_class_command)


def _query(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _create(a: argparse.Namespace) -> tuple[str, str, Any, Any]:
    body = {
        "course_id": a.course,
        "name": a.name,
        "mode": a.mode,
        "starts_at": a.start,
        "ends_at": a.end,
    }
    return "POST", "/classes", None, body


def _file(a: argparse.Namespace) -> tuple[str, str, Any, Any]:
    body = {
        "teacher": a.teacher,
        "teaching_plan": a.teaching_plan.read_text(encoding="utf-8"),
        "assessment_plan": a.assessment_plan.read_text(encoding="utf-8"),
    }
    return "POST", f"/classes/{a.class_id}/filing", None, body


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        return str(args.token_file.read_text(encoding="utf-8").strip())
    return os.environ.get(TOKEN_ENV) or None


def run_class_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `supervisor class` command against the service; print its JSON answer."""
    import httpx

    try:
        token = _token(args)
        method, path, params, body = args.call(args)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not token:
        print(f"error: give a token with --token-file or ${TOKEN_ENV}", file=sys.stderr)
        return 2
    base = (args.server or settings.server.public_url).rstrip("/")
    try:
        response = httpx.request(
            method,
            f"{base}/api/v1{path}",
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=180,
        )
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the service at {base}: {exc}", file=sys.stderr)
        return 1
    if response.status_code >= 400:
        try:
            error = response.json()
            reason, message = error.get("reason"), error.get("message")
        except ValueError:
            reason, message = "http_error", response.text[:200]
        print(f"refused ({response.status_code} {reason}): {message}", file=sys.stderr)
        return 1
    if response.status_code != 204:
        print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    return 0

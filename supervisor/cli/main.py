"""The `supervisor` command line. Settings are loaded here and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from config import Settings, SettingsError, load_settings, settings_table
from config.settings import FaceEngineName
from supervisor.cli.backup import add_backup_parser
from supervisor.cli.classes import add_class_parser
from supervisor.cli.inspect import add_evidence_commands, add_ledger_commands
from supervisor.cli.privacy import add_privacy_parser
from supervisor.cli.subsidy import add_subsidy_parsers
from supervisor.cli.templates import add_templates_parser

Handler = Callable[[Settings, argparse.Namespace], int]


def _cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.face import face_settings_with_threshold, run_verify

    if args.threshold is not None:
        settings = settings.model_copy(
            update={"face": face_settings_with_threshold(settings.face, args.threshold)}
        )
    return run_verify(settings, args.reference, args.probes)


def _cmd_calibrate(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.face import run_calibrate

    if args.jitters is not None:
        face = settings.face.model_copy(update={"enrol_jitters": args.jitters})
        settings = settings.model_copy(update={"face": face})
    engine = FaceEngineName(args.engine) if args.engine else None
    return run_calibrate(
        settings, args.dataset, args.threshold, args.target_fmr, args.processes, engine
    )


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.admin import run_serve

    if args.host or args.port:
        server = settings.server.model_copy(
            update={k: v for k, v in (("host", args.host), ("port", args.port)) if v}
        )
        settings = settings.model_copy(update={"server": server})
    return run_serve(settings)


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.admin import run_migrate

    return run_migrate(settings)


def _cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.admin import run_token_create

    return run_token_create(settings, args.role, args.institution, args.learner, args.label)


def _cmd_ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.admin import run_ledger_verify

    return run_ledger_verify(settings, args.chain)


def _cmd_evidence_purge(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.cli.admin import run_evidence_purge

    return run_evidence_purge(settings)


def _cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import logging

    from supervisor.checks.worker import run_worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_worker(settings, args.name, args.redis_url)


def _cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    rows = settings_table()
    if args.markdown:
        print("| setting | environment variable | default | meaning |")
        print("|---|---|---|---|")
        for name, default, desc in rows:
            env = "SUPERVISOR_" + name.upper().replace(".", "__")
            print(f"| `{name}` | `{env}` | `{default}` | {desc} |")
    else:
        print(settings.model_dump_json(indent=2, exclude={"security"}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supervisor", description="Supervision of subsidised vocational training."
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML settings file ($SUPERVISOR_CONFIG_FILE)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verify", help="1:1 check of probe images against a reference photo")
    p.add_argument("reference", type=Path, help="enrolment photo of the learner")
    p.add_argument("probes", type=Path, nargs="+", help="images to check")
    p.add_argument("--threshold", type=float, default=None, help="match threshold override")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("calibrate", help="error rates over thresholds on a labelled dataset")
    p.add_argument("--dataset", type=Path, required=True, help="folder with manifest.csv")
    p.add_argument("--threshold", type=float, default=None, help="threshold in force")
    p.add_argument(
        "--target-fmr", type=float, default=0.0005, help="false match rate to recommend for"
    )
    p.add_argument("--processes", type=int, default=None, help="encoding processes")
    p.add_argument("--jitters", type=int, default=None, help="template jitters override")
    p.add_argument(
        "--engine",
        choices=[e.value for e in FaceEngineName],
        default=None,
        help="measure this engine instead of the configured one (face.engine)",
    )
    p.set_defaults(handler=_cmd_calibrate)

    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default=None, help="bind address (server.host)")
    p.add_argument("--port", type=int, default=None, help="port (server.port)")
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("worker", help="run a verification worker (Redis Stream consumer)")
    p.add_argument("--name", default=None, help="consumer name (default: host-pid)")
    p.add_argument(
        "--redis-url", default=None, help="Redis URL (default: redis.url from the settings)"
    )
    p.set_defaults(handler=_cmd_worker)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(handler=_cmd_migrate)

    token = sub.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    p = token.add_parser("create", help="create a token and print its secret once")
    p.add_argument("--role", required=True, help="admin, operator, inspector or learner")
    p.add_argument("--institution", type=int, default=None, help="institution id (operator)")
    p.add_argument("--learner", type=int, default=None, help="learner id (learner)")
    p.add_argument("--label", default=None, help="who the token is for")
    p.set_defaults(handler=_cmd_token_create)

    ledger = sub.add_parser("ledger", help="the learning-process ledger").add_subparsers(
        dest="ledger_command", required=True, metavar="ACTION"
    )
    p = ledger.add_parser("verify", help="recompute hash chains; name the first bad event")
    p.add_argument("--chain", action="append", default=None, help="only this chain (repeatable)")
    p.set_defaults(handler=_cmd_ledger_verify)
    add_ledger_commands(ledger)

    evidence = sub.add_parser("evidence", help="evidence frames").add_subparsers(
        dest="evidence_command", required=True, metavar="ACTION"
    )
    p = evidence.add_parser("purge", help="delete frames past retention; keep their hashes")
    p.set_defaults(handler=_cmd_evidence_purge)
    add_evidence_commands(evidence)

    p = sub.add_parser("settings", help="print the settings in force (secrets hidden)")
    p.add_argument("--markdown", action="store_true", help="defaults table for the README")
    p.set_defaults(handler=_cmd_settings)
    add_class_parser(sub)
    add_backup_parser(sub)
    add_privacy_parser(sub)
    add_templates_parser(sub)
    add_subsidy_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    return handler(settings, args)

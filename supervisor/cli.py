"""The `supervisor` command line. Settings are loaded here and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from config import Settings, SettingsError, load_settings, settings_table

Handler = Callable[[Settings, argparse.Namespace], int]


def _cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.face_cli import face_settings_with_threshold, run_verify

    if args.threshold is not None:
        settings = settings.model_copy(
            update={"face": face_settings_with_threshold(settings.face, args.threshold)}
        )
    return run_verify(settings, args.reference, args.probes)


def _cmd_calibrate(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.face_cli import run_calibrate

    if args.jitters is not None:
        face = settings.face.model_copy(update={"enrol_jitters": args.jitters})
        settings = settings.model_copy(update={"face": face})
    return run_calibrate(settings, args.dataset, args.threshold, args.target_fmr, args.processes)


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
    p.set_defaults(handler=_cmd_calibrate)

    p = sub.add_parser("settings", help="print the settings in force (secrets hidden)")
    p.add_argument("--markdown", action="store_true", help="defaults table for the README")
    p.set_defaults(handler=_cmd_settings)
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


if __name__ == "__main__":
    sys.exit(main())

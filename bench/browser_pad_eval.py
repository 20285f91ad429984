"""Presentation attacks through the real browser path: APCER per attack, BPCER, credit.

    taskset -c 1 .venv/bin/python bench/browser_pad_eval.py [--n 4] [--faces ../shared/faces]
        [--window 40] [--only rigid,tilt,...] [--liveness-json '{...}']

Each session is the learner's page (supervisor/web/static/learner.js) in Debian's
headless Chromium, its camera sent with VP8 over WebRTC to aiortc in the real service
(SQLite, embedded Redis, the verification process pool; as the browser tests run it),
with the production liveness settings: passive liveness, replay detection, and a
challenge on the first check of a session (only turns are asked: the honest
recordings cannot look up). See tests/browser_attacks.py for how each kind of
session is made:

- `rigid`: a photo of the enrolled learner moved, rotated and zoomed in front of a
  webcam (Chromium's fake camera playing a .y4m);
- `tilt`: the same, also tilted up to 30 degrees (perspective);
- `still_then_moved`: held still for 5 s (the sign-in), then moved as `rigid`;
- `replay`: the learner's talking-head recording played through the camera (looped);
- `honest`: the learner's talking-head recording, with the learner turning as asked
  when the page shows a challenge (the side the recording never turns to is its real
  turn seen in a mirror: the switch between the recording and its mirror image is a
  jump no head makes, so this kind measures the simulation as much as the service);
- `honest_real`: the same learner, but the service asks each person only for the turn
  their recording really makes (`challenge_kinds` = that turn alone, one service per
  person), so every answer is real, unmirrored motion (no mirrored frame is even
  loaded): the turn's start pose held for the reaction time, the turn, and the
  recording's own way back, then the recording goes on from there. With one kind the
  two rounds ask the same turn twice; the second is judged against the pose before the
  first as well;
- `replay_real`: `replay` against the `honest_real` services (each person asked only
  the turn their recording contains): the worst case for replay detection;
- `honest_passive`: the `honest_real` learner on services where the passive stage
  alone decides (`challenge_first_check` false, `challenge_probability` 0,
  `challenge_when_doubtful` true): a challenge comes only when a check's passive
  liveness is doubtful (or spoof, or the browser's signals are suspicious); the
  report counts the sessions escalated so.

Attack sessions use the photos and clips of both talking-head people in turn (photos
taken from their videos at different moments, never the enrolment photo itself).

A session runs until it is stopped (paused after a response window with nothing
passed, or ended) or `--window` seconds after the sign-in. A session whose last check
at the end of the window is a failed challenge counts as stopped too (its clock stands
still; the pause after the response window had not come yet). An attack is
**accepted** if it was not stopped or earned more than one check interval of credit
(the session's own first interval: from its sign-in to its first check); APCER is
the share accepted. An honest session is **rejected** if its sign-in was refused (all
of its attempts) or it was stopped; BPCER is the share rejected. The table also gives the
credited seconds when the session was stopped (or at the end of the window), and what
stopped it. `--baseline` kinds run again, in the same invocation, with one challenge
round (`challenge_rounds = 1`: the service before rounds were added).

The per-person kinds (`honest_real`, `replay_real`, `honest_passive`) run on services of
their own, one per person (the settings are service-wide): session i uses person
i % 2 as the other kinds do, and the sessions of a person of `honest_real` and
`replay_real` share that person's service. `--liveness-json` applies to them too
(under their own overrides).

    taskset -c 1 .venv/bin/python bench/browser_pad_eval.py --n 6 \
        --only honest_real,replay_real --baseline ""
    taskset -c 1 .venv/bin/python bench/browser_pad_eval.py --n 6 \
        --only honest_passive --baseline ""
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import FaceSettings  # noqa: E402
from tests import browser_attacks as ba  # noqa: E402
from tests.supervisor.conftest import Service, _service, chromium_path  # noqa: E402
from verification.engines import make_engine  # noqa: E402

KINDS = (
    "rigid",
    "tilt",
    "still_then_moved",
    "replay",
    "honest",
    "replay_real",
    "honest_real",
    "honest_passive",
)
LABELS = {
    "rigid": "photo moved and zoomed",
    "tilt": "photo tilted",
    "still_then_moved": "photo held still to sign in, then moved",
    "replay": "replayed clip of the learner",
    "honest": "honest talking head (answers challenges)",
    "replay_real": "replayed clip, asked only its real turn",
    "honest_real": "honest talking head, asked only its real turn (no mirror)",
    "honest_passive": "honest talking head, passive stage only (challenge if doubtful)",
}
# Kinds whose service asks each person only for the turn their recording makes.
PER_PERSON = ("replay_real", "honest_real", "honest_passive")
# The passive stage alone: no first-check or random challenge, one when doubtful.
PASSIVE_ONLY: dict[str, Any] = {
    "challenge_first_check": False,
    "challenge_probability": 0.0,
    "challenge_when_doubtful": True,
}
# Supervision at bench speed: a check every 5-7 s (as the browser tests run it).
POLICY = {
    "presence_interval_min_s": 5.0,
    "presence_interval_mean_s": 6.0,
    "presence_interval_max_s": 7.0,
    "identity_interval_min_s": 11.0,
    "identity_interval_mean_s": 12.0,
    "identity_interval_max_s": 13.0,
    "response_window_s": 6,
    "retry_interval_s": 2.0,
    "capture_timeout_s": 6.0,
    "live_lock_ttl_s": 6.0,
    "max_failed_windows": 3,
}
# A persistent attacker presses the start button again after a refused sign-in.
SIGNIN_ATTEMPTS = 3
WEBRTC = {"heartbeat_timeout_s": 6.0, "frame_spacing_s": 0.4}
# Production liveness (config/liveness.py defaults) but for the kinds of challenge:
# the honest recordings hold a turn each way and no look up.
LIVENESS: dict[str, Any] = {"challenge_kinds": ["turn_left", "turn_right"]}
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Row:
    kind: str
    clip: str
    signin_refused: str | None = None  # every attempt refused: the last reason
    signin_refusals: int = 0
    stopped: bool = False
    stop_reason: str | None = None
    stopped_after_s: float | None = None
    credited_s: float = 0.0
    first_interval_s: float | None = None
    # At the end of the window the last check was a challenge that failed: the clock
    # stands still (a pause after the response window may not have come yet).
    halted: bool = False
    first_failure: str | None = None
    challenges: list[str] = field(default_factory=list)
    passive: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    # Each challenge: its pose figures (baseline yaw at the prompt, the yaw changes).
    challenge_poses: list[str] = field(default_factory=list)
    challenge_kinds: list[str] = field(default_factory=list)  # what the service asked
    verdicts: list[str] = field(default_factory=list)  # every check: purpose:verdict

    @property
    def attack(self) -> bool:
        return not self.kind.startswith("honest")

    def more_than_one_interval(self) -> bool:
        if self.credited_s == 0:
            return False
        return self.first_interval_s is None or self.credited_s > self.first_interval_s + 1e-3

    def accepted(self) -> bool:
        if self.signin_refused is not None:
            return False
        return not (self.stopped or self.halted) or self.more_than_one_interval()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Row:
        """A row printed by an earlier run (`--report-from`)."""
        row = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        if "halted" not in d:
            last_check = d["passive"][-1] if d.get("passive") else ""
            last_challenge = d["challenges"][-1] if d.get("challenges") else ""
            row.halted = last_check.startswith("challenge:") and ":passed" not in last_challenge
        return row

    def stopped_by(self) -> str:
        if self.signin_refused is not None:
            return f"sign-in refused ({self.signin_refused[:40]})"
        if not self.stopped and not self.halted:
            return "not stopped"
        return self.first_failure or "?"


def session(
    svc: Service,
    pw: Any,
    kind: str,
    clip: ba.Clip,
    i: int,
    engine: Any,
    tmp: Path,
    window: float,
) -> Row:
    row = Row(kind, clip.name)
    y4m = tmp / f"{kind}-{i}.y4m"
    row.challenge_kinds = list(svc.settings.liveness.challenge_kinds)
    honest = kind.startswith("honest")
    real_only = kind in ("honest_real", "honest_passive")  # never a mirrored frame
    photo_at = 1.0 + 1.7 * (i // 2)  # a different photo of the learner per session
    if kind in ("rigid", "tilt"):
        ba.photo_y4m(y4m, engine, ba.learner_photo(clip, photo_at), kind, 100 + i)
    elif kind == "still_then_moved":
        ba.photo_y4m(y4m, engine, ba.learner_photo(clip, photo_at), "rigid", 100 + i, still_s=5.0)
    elif kind in ("replay", "replay_real"):
        ba.replay_y4m(y4m, clip, start_s=0.8 * i)
    svc.forget_faces()
    w = svc.world(photo=clip.enrolled)
    browser = pw.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        # The honest page's camera is its canvas: the fake camera's file is not used.
        args=[*CHROMIUM_ARGS] + ([] if honest else [f"--use-file-for-fake-video-capture={y4m}"]),
    )
    started = time.monotonic()
    try:
        context = browser.new_context(viewport={"width": 1000, "height": 800})
        context.add_init_script(ba.camera_script(clip if honest else None, real_only=real_only))
        page = context.new_page()
        if honest:
            ba.serve_clip(page, clip, mirrored=not real_only)
        sid, errors = ba.start_session(svc.url, page, w.learner, attempts=SIGNIN_ATTEMPTS)
        row.signin_refusals = len(errors)
        if sid is None:
            row.signin_refused = errors[-1] if errors else "?"
            return row

        def get(path: str) -> Any:
            r = svc.call("GET", path, w.learner)
            r.raise_for_status()
            return r.json()

        t0 = time.monotonic()
        o = ba.read_outcome(get, sid)
        while time.monotonic() - t0 < window:
            o = ba.read_outcome(get, sid)
            if o.stopped:
                row.stopped_after_s = round(time.monotonic() - t0, 1)
                break
            time.sleep(1.0)
        # Read before the session is ended here (that end is not a stop).
        row.stopped, row.stop_reason, row.credited_s = o.stopped, o.stop_reason, o.credited_s
        row.first_interval_s = o.first_interval_s
        last = o.checks[-1] if o.checks else {}
        row.halted = bool(last.get("challenge")) and not last.get("passed")
        if honest:
            row.answers = list(page.evaluate("window.__answers || []"))
        svc.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
        f = o.first_failure
        if f is not None:
            ch = f.get("challenge") or {}
            extra = f" {ch.get('kind')} {ch.get('outcome')}" if ch else ""
            reasons = ",".join(ch.get("reasons") or ())
            row.first_failure = f"{f['purpose']} {f['verdict']}{extra}" + (
                f" ({reasons})" if reasons else ""
            )
        row.challenges = [
            f"{c['challenge']['kind']}:{c['challenge']['outcome']}"
            + (f"({','.join(c['challenge'].get('reasons') or ())})" if not c["passed"] else "")
            for c in o.challenges
        ]
        row.challenge_poses = [
            f"{c['challenge']['kind']}:{c['challenge']['outcome']}"
            f" base={c['challenge'].get('baseline_yaw_deg')}"
            f" peak={c['challenge'].get('peak_yaw_change_deg')}"
            f" trough={c['challenge'].get('trough_yaw_change_deg')}"
            f" t={c.get('at', '')[11:19]}"
            for c in o.challenges
        ]
        row.verdicts = [f"{c.get('purpose')}:{c.get('verdict')}" for c in o.checks]
        row.passive = [
            f"{c.get('purpose')}:{(c.get('liveness') or {}).get('verdict')}"
            f"({','.join((c.get('liveness') or {}).get('reasons') or ())})"
            for c in o.checks
        ]
        return row
    finally:
        row.elapsed_s = round(time.monotonic() - started, 1)
        browser.close()


def report(title: str, rows: list[Row]) -> None:
    print()
    print(title)
    print()
    print(
        "| sessions | n | metric | rate | more than one interval credited "
        "| credited s: mean / max | first interval s: mean | stopped by (first failed check) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        if kind.startswith("honest"):
            metric = "BPCER"
            bad = sum(r.signin_refused is not None or r.stopped or r.halted for r in mine)
        else:
            metric = "APCER"
            bad = sum(r.accepted() for r in mine)
        over = sum(r.more_than_one_interval() for r in mine)
        credited = [r.credited_s for r in mine]
        firsts = [r.first_interval_s for r in mine if r.first_interval_s is not None]
        first = f"{statistics.mean(firsts):.1f}" if firsts else "-"
        causes = Counter(r.stopped_by() for r in mine)
        cause = "; ".join(f"{k} x{v}" for k, v in causes.most_common())
        print(
            f"| {LABELS[kind]} | {len(mine)} | {metric} | {bad}/{len(mine)} = "
            f"{100 * bad / len(mine):.0f}% | {over} | {statistics.mean(credited):.1f} / "
            f"{max(credited):.1f} | {first} | {cause} |"
        )
    challenges = Counter(
        (not r.attack, c.split("(")[0].split(":")[1]) for r in rows for c in r.challenges
    )
    for honest, who in ((False, "attacks"), (True, "honest")):
        got = {k: v for (h, k), v in challenges.items() if h == honest}
        if got:
            print(f"challenges of {who}: " + ", ".join(f"{k} {v}" for k, v in sorted(got.items())))
    for kind in PER_PERSON:
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        got = Counter(c.split("(")[0] for r in mine for c in r.challenges)
        print(
            f"{kind}: challenges by kind and outcome: "
            + (", ".join(f"{k} {v}" for k, v in sorted(got.items())) or "none")
        )
        if kind == "honest_passive":
            # The passive stage's honest cost: checks judged doubtful or spoof, and the
            # sessions it escalated to a challenge.
            verdicts = Counter(p.split("(")[0].split(":", 1)[1] for r in mine for p in r.passive)
            escalated = sum(bool(r.challenges) for r in mine)
            print(
                "honest_passive: passive verdicts of all checks: "
                + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
                + f"; sessions escalated to a challenge: {escalated}/{len(mine)}"
            )


def run(
    args: argparse.Namespace, kinds: list[str], liveness: dict[str, Any], clips: list[ba.Clip],
    engine: Any,
) -> list[Row]:  # fmt: skip
    """The shared-service kinds on one service, then each per-person kind on services of
    their own (one per person; see the module docstring)."""
    shared = [k for k in kinds if k not in PER_PERSON]
    rows = run_service(args, [(k, i) for k in shared for i in range(args.n)], liveness, clips,
                       engine)  # fmt: skip
    groups: list[tuple[list[str], dict[str, Any]]] = []
    real = [k for k in ("honest_real", "replay_real") if k in kinds]
    if real:
        groups.append((real, {}))
    if "honest_passive" in kinds:
        groups.append((["honest_passive"], PASSIVE_ONLY))
    for group, extra in groups:
        for c, clip in enumerate(clips):
            plan = [(k, i) for k in group for i in range(args.n) if i % len(clips) == c]
            if not plan:
                continue
            turn = ba.REAL_TURN[clip.name]
            own = {**liveness, **extra, "challenge_kinds": [turn]}
            print(f"per-person service: {clip.name} {group} asks only {turn}", file=sys.stderr)
            rows += run_service(args, plan, own, clips, engine)
    return rows


def run_service(
    args: argparse.Namespace, plan: list[tuple[str, int]], liveness: dict[str, Any],
    clips: list[ba.Clip], engine: Any,
) -> list[Row]:  # fmt: skip
    from playwright.sync_api import sync_playwright

    rows: list[Row] = []
    if not plan:
        return rows
    with tempfile.TemporaryDirectory(prefix="browser-pad-") as d:
        tmp = Path(d)
        services: Iterator[Service] = _service(
            tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite",
            policy=POLICY, webrtc=WEBRTC, liveness=liveness,
        )  # fmt: skip
        svc = next(services)
        print(f"liveness: {svc.settings.liveness.model_dump_json()}", file=sys.stderr)
        try:
            with sync_playwright() as pw:
                for kind, i in plan:
                    clip = clips[i % len(clips)]
                    row = session(svc, pw, kind, clip, i, engine, tmp, args.window)
                    rows.append(row)
                    print(json.dumps(row.__dict__), file=sys.stderr, flush=True)
        finally:
            services.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="sessions per kind")
    faces = Path(__file__).resolve().parents[2] / "shared" / "faces"
    ap.add_argument("--faces", type=Path, default=faces)
    ap.add_argument("--window", type=float, default=40.0, help="seconds a session is watched")
    ap.add_argument("--only", default=",".join(KINDS), help="kinds of session, comma-separated")
    ap.add_argument("--liveness-json", default="{}", help="liveness settings to override")
    ap.add_argument(
        "--baseline",
        default="replay",
        help="kinds also run with one challenge round (the service before rounds), "
        "comma-separated; empty for none",
    )
    ap.add_argument(
        "--report-from",
        type=Path,
        help="print the tables from the JSON lines an earlier run wrote to stderr",
    )
    args = ap.parse_args()
    if args.report_from is not None:
        rows, base, part = [], [], 0
        for line in args.report_from.read_text().splitlines():
            if line.startswith("liveness: "):
                part += 1
            elif line.startswith("{"):
                row = Row.from_json(json.loads(line))
                # The per-person kinds run on services of their own, never as a baseline.
                (rows if part <= 1 or row.kind in PER_PERSON else base).append(row)
        report("the service", rows)
        if base:
            report("baseline: one challenge round (challenge_rounds = 1)", base)
        return 0
    kinds = [k for k in args.only.split(",") if k]
    base_kinds = [k for k in args.baseline.split(",") if k]
    unknown = set(kinds + base_kinds) - set(KINDS)
    if unknown:
        ap.error(f"unknown kinds: {sorted(unknown)}")
    liveness = {**LIVENESS, **json.loads(args.liveness_json)}
    clips = [ba.load_clip(args.faces, name) for name in ("3.mp4", "2.mp4")]
    engine = make_engine(FaceSettings())
    started = time.monotonic()
    rows = run(args, kinds, liveness, clips, engine)
    base = run(args, base_kinds, {**liveness, "challenge_rounds": 1}, clips, engine)
    rounds = liveness.get("challenge_rounds", "default (2)")
    report(f"the service (challenge_rounds = {rounds})", rows)
    if base:
        report("baseline, same run: one challenge round (challenge_rounds = 1)", base)
    print()
    print(f"{len(rows) + len(base)} sessions in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

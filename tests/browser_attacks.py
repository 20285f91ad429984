"""Presentation attacks and honest learners through the real browser path.

Shared by the browser attack tests (tests/supervisor/online/test_attacks_browser.py)
and the benchmark (bench/browser_pad_eval.py). Everything is delivered the way it
arrives in production: the learner's page (learner.js, unchanged) in a real headless
Chromium, its camera track encoded with VP8 over WebRTC, decoded by aiortc in the
real service.

- **Attacks** come through Chromium's fake camera, fed a .y4m file that the browser
  plays in a loop: a photo of the enrolled learner moved and zoomed in front of a
  webcam, the same photo tilted (perspective), the photo held still for the sign-in
  and then moved, and a replayed clip of the learner (a talking-head video).
- **Honest learners** must answer challenges, which a file cannot do: their page's
  camera is a canvas that plays the learner's talking-head recording (with a little
  sensor noise each frame) and, when the page shows a challenge, the part of that
  recording where the learner turns the asked way. The canvas track goes through the
  same page code, VP8 and aiortc.

Both kinds of page report a webcam-like camera name: Chromium's fake device is
called "fake_device_0", which the service's browser signals would count as a virtual
camera (suspicion, and a challenge). A photo held to a real webcam reports a clean
name, and so does a renamed virtual camera, so the evaluation does not lean on it.

The talking-head videos of ../shared/faces/video are the learners: video/3.mp4 is
`anon_lp_d18_man`, video/2.mp4 `anon_lp_d19_man_glasses`, each enrolled with the
reference photo of its folder (frame 0 of its video).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.verification import livegen
from tests.videogen import write_y4m

Image = np.ndarray

# A camera name like a laptop's built-in webcam (see the module docstring).
WEBCAM_LABEL = "Integrated Camera (04f2:b6d9)"

# Identity of the person in each talking-head video (../shared/faces/README.md).
PEOPLE = {"3.mp4": "anon_lp_d18_man", "2.mp4": "anon_lp_d19_man_glasses"}

# Where each recording shows its person turn, as (start s, end s, step): frames the
# honest page plays when asked. Measured with verification.headpose on the videos
# (yaw in degrees, + is the person's own left): 3.mp4 goes 12 -> 29..32 from 1.8 s to
# 2.2 s (left) and 30 -> 11 from 3.1 s to 3.4 s (right); 2.mp4 goes 0 -> -18 from 0.4 s
# to 1.4 s (right), and its left turn is that one played backwards (a real face
# turning, in reverse: the motion is still a face's, not a plane's). Each answer
# starts from the pose it turns from, held for the reaction time (`REACTION_S`).
ANSWERS: dict[str, dict[str, tuple[float, float, int]]] = {
    "3.mp4": {"turn_left": (1.5, 3.2, 1), "turn_right": (2.6, 4.0, 1)},
    "2.mp4": {"turn_right": (0.4, 1.6, 1), "turn_left": (1.4, 0.4, -1)},
}
# Each recording holds one real turn from facing the camera; its other "answer" above is
# only the way back, which is what a replayed recording shows when the next round asks
# for the other side (the server judges later rounds against the pose before the first,
# so that does not pass). An honest learner asked for the other side turns past the
# camera to it: the real turn seen in a mirror.
REAL_TURN: dict[str, str] = {"3.mp4": "turn_left", "2.mp4": "turn_right"}
OTHER_SIDE = {"turn_left": "turn_right", "turn_right": "turn_left"}


# Where each recording's real turn has come back (s): the `honest_real` answer plays
# the turn and then the recording's own way back, and the page carries on playing the
# recording from there (no cut after an answer). 3.mp4 is back at yaw 14 to 17 by
# 3.4 s; 2.mp4 comes back from -18 to -6 at 2.7 to 2.8 s (measured as above).
REAL_RETURN_S: dict[str, float] = {"3.mp4": 3.5, "2.mp4": 2.9}


def real_answer(clip_name: str) -> tuple[float, float]:
    """The part of the recording the `honest_real` learner plays for its real turn,
    forwards and unmirrored: from the turn's start pose to the end of its way back."""
    start, _, step = ANSWERS[clip_name][REAL_TURN[clip_name]]
    assert step == 1
    return start, REAL_RETURN_S[clip_name]


def honest_answer(clip_name: str, asked: str) -> tuple[float, float, int, bool]:
    """The part of the recording an honest learner shows for `asked`: (start, end,
    step, mirrored)."""
    real = REAL_TURN[clip_name]
    start, end, step = ANSWERS[clip_name][real]
    return start, end, step, asked != real and OTHER_SIDE.get(asked) == real


# A person reads the prompt before turning: the honest page holds the pose the turn
# starts from this long (each frame with its own noise), then turns. The server judges
# the turn against the pose in the first frames after its prompt, which reach it a
# little later (the encoder wakes up, frames queue on a busy machine).
REACTION_S = 1.2
# What the honest page plays between challenges: the recording from 0.3 s (its first
# frames are the enrolment photo), forwards then backwards, so that it never jumps.
IDLE_FROM_S = 0.3


@dataclass(frozen=True)
class Clip:
    """A talking-head video as 640x480 webcam frames, and its person's enrolled photo."""

    name: str
    identity: str
    enrolled: bytes
    frames: tuple[Image, ...]
    fps: float

    def index(self, t: float) -> int:
        return max(0, min(len(self.frames) - 1, round(t * self.fps)))


def _webcam(rgb: Image) -> Image:
    """A 480x480 video frame centred in a 640x480 webcam frame (as the other browser
    tests show the talking heads)."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 80:560] = cv2.resize(rgb, (480, 480))
    return canvas


def load_clip(faces: Path, name: str) -> Clip:
    with (faces / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    identity = PEOPLE[name]
    ref = next(r for r in rows if r["identity"] == identity)
    video = livegen.read_video(faces / "video" / name)
    return Clip(
        name,
        identity,
        (faces / ref["path"]).read_bytes(),
        tuple(_webcam(f) for f in video.frames),
        video.fps,
    )


# -- attacks: files for Chromium's fake camera --------------------------------------


def learner_photo(clip: Clip, t: float) -> Image:
    """A photo of the learner: the recording's frame at `t` s (not the enrolment photo,
    which replay detection refuses on its own)."""
    return clip.frames[clip.index(t)]


def _face(engine: Any, photo: Image) -> Any:
    boxes = engine.detect(photo)
    if not boxes:
        raise ValueError("no face in the photo")
    return max(boxes, key=lambda b: b.width)


def photo_y4m(
    path: Path,
    engine: Any,
    photo: Image,
    kind: str,
    seed: int,
    seconds: float = 12.0,
    still_s: float = 0.0,
    fps: int = 10,
) -> Path:
    """A photo held in front of a webcam (tests/verification/livegen.photo_attack):
    kind "rigid" (moved, rotated and zoomed in the image plane) or "tilt" (also turned
    up to 30 degrees about both axes). With `still_s`, it is first held still (hand
    tremor only) that long: still for the sign-in, then moved."""
    face = _face(engine, photo)
    frames: list[Image] = []
    if still_s > 0:
        times = [i / fps for i in range(round(still_s * fps))]
        frames += [f for _, f in livegen.photo_attack(photo, face, times, "still", seed)]
    times = [i / fps for i in range(round(seconds * fps))]
    frames += [f for _, f in livegen.photo_attack(photo, face, times, kind, seed)]
    return write_y4m(path, [(f, 1 / fps) for f in frames], fps=fps)


def replay_y4m(path: Path, clip: Clip, start_s: float = 0.0) -> Path:
    """The learner's recording played through the camera from `start_s` (then in a
    loop: Chromium's fake camera loops its file, as a virtual camera may)."""
    i = clip.index(start_s)
    frames = clip.frames[i:] + clip.frames[:i]
    fps = round(clip.fps)
    return write_y4m(path, [(f, 1 / fps) for f in frames], fps=fps)


# -- the page's camera ---------------------------------------------------------------

_CAMERA_JS = """
(() => {
  const C = __CONFIG__;
  Object.defineProperty(MediaStreamTrack.prototype, "label", {
    get() { return C.label; }, configurable: true,
  });
  if (!C.count) return;
  MediaDevices.prototype.getUserMedia = async function () {
    const frames = [];
    for (let i = 0; i < C.count; i++) {
      const r = await fetch(`${C.prefix}${i}.jpg`);
      frames.push(await createImageBitmap(await r.blob()));
    }
    const canvas = document.createElement("canvas");
    canvas.width = frames[0].width; canvas.height = frames[0].height;
    const ctx = canvas.getContext("2d");
    // Sensor noise: a random tile, laid at a random offset over every frame.
    const tile = document.createElement("canvas");
    tile.width = 128; tile.height = 128;
    const tctx = tile.getContext("2d");
    const img = tctx.createImageData(128, 128);
    for (let k = 0; k < img.data.length; k += 4) {
      const v = Math.random() * 255;
      img.data[k] = img.data[k + 1] = img.data[k + 2] = v; img.data[k + 3] = 255;
    }
    tctx.putImageData(img, 0, 0);
    const noise = ctx.createPattern(tile, "repeat");
    let queue = [], pos = 0, last = null, pending = null, resume = null;
    window.__answers = [];
    if (C.restart) {
      // Every prompt starts an answer, also the same kind asked twice in a row (the
      // page hides one challenge and shows the next between two frames). The records
      // give each change's old value: the new one is the next record's old value.
      new MutationObserver((recs) => {
        for (let k = 0; k < recs.length; k++) {
          const v = k + 1 < recs.length ? recs[k + 1].oldValue : document.body.dataset.challenge;
          if (v) pending = v;
        }
      }).observe(document.body, {
        attributes: true, attributeFilter: ["data-challenge"], attributeOldValue: true,
      });
    }
    const draw = () => {
      if (C.restart) {
        if (pending) {
          window.__answers.push(pending);
          if (C.answers[pending]) {
            queue = C.answers[pending].slice();
            resume = C.resume[pending];
          }
        }
        pending = null;
      } else {
        const kind = document.body ? document.body.dataset.challenge : undefined;
        if (kind && kind !== last && C.answers[kind]) {
          queue = C.answers[kind].slice();
          window.__answers.push(kind);
        }
        last = kind || null;
      }
      let i;
      if (queue.length) {
        i = queue.shift();
        // After an answer the recording goes on from where the answer ended.
        if (!queue.length && resume != null) { pos = resume; resume = null; }
      } else { i = C.idle[pos]; pos = (pos + 1) % C.idle.length; }
      ctx.globalAlpha = 1;
      ctx.drawImage(frames[i], 0, 0);
      const dx = Math.random() * 128, dy = Math.random() * 128;
      ctx.save();
      ctx.translate(-dx, -dy);
      ctx.globalAlpha = 0.03;
      ctx.fillStyle = noise;
      ctx.fillRect(0, 0, canvas.width + 128, canvas.height + 128);
      ctx.restore();
    };
    draw();
    setInterval(draw, 1000 / C.fps);
    return canvas.captureStream(C.fps);
  };
})();
"""

HONEST_PREFIX = "/__honest_camera/"


def camera_script(clip: Clip | None = None, real_only: bool = False) -> str:
    """The init script of a page: a webcam-like camera name, and with `clip`, the
    honest learner's camera (see the module docstring).

    With `real_only` (the `honest_real` learner), the camera holds only the recording,
    never its mirror image: it answers only the turn the recording really makes
    (`real_answer`: the turn's start pose held for `REACTION_S`, the turn, and the
    recording's own way back), answers every prompt of it, also the same turn asked
    twice in a row, and after an answer goes on playing the recording from where the
    answer ended. Another kind of challenge is left unanswered (the recording plays on).
    (Holding the last frame of the way back until the next round instead was tried: the
    next round's frames then repeat the first's, and passive liveness calls them
    `looped`, a spoof.)
    """
    config: dict[str, Any] = {"label": WEBCAM_LABEL, "count": 0}
    if clip is not None:
        a = clip.index(IDLE_FROM_S)
        b = len(clip.frames) - 1
        idle = list(range(a, b + 1)) + list(range(b - 1, a, -1))
        answers = {}
        resume: dict[str, int] = {}
        hold = round(REACTION_S * clip.fps)
        n = len(clip.frames)
        if real_only:
            kind = REAL_TURN[clip.name]
            start, end = real_answer(clip.name)
            i, j = clip.index(start), clip.index(end)
            answers[kind] = [i] * hold + list(range(i, j + 1))
            # The idle's forward pass holds frame k at position k - a.
            resume[kind] = (min(j + 1, b) - a) % len(idle)
        else:
            for kind in ANSWERS[clip.name]:
                start, end, step, mirrored = honest_answer(clip.name, kind)
                i, j = clip.index(start), clip.index(end)
                shift = n if mirrored else 0  # frames n.. are the recording mirrored
                answers[kind] = [i + shift] * hold + [k + shift for k in range(i, j + step, step)]
        config.update(
            count=n if real_only else 2 * n,
            fps=round(clip.fps),
            idle=idle,
            answers=answers,
            resume=resume,
            restart=real_only,
            prefix=HONEST_PREFIX,
        )
    return _CAMERA_JS.replace("__CONFIG__", json.dumps(config))


def serve_clip(page: Any, clip: Clip, mirrored: bool = True) -> None:
    """Answer the honest camera's frame requests (page-side only: never the service).
    Without `mirrored` only the recording itself is served (the `real_only` camera)."""
    # The recording, then the same mirrored (frames n..2n-1: the other side's turn).
    both = [*clip.frames]
    if mirrored:
        both += [np.ascontiguousarray(f[:, ::-1]) for f in clip.frames]
    encoded = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes()
               for f in both]  # fmt: skip

    def handle(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        try:
            body = encoded[int(name.split(".")[0])]
        except (ValueError, IndexError):
            route.fulfill(status=404, body=b"")
            return
        route.fulfill(status=200, body=body, headers={"content-type": "image/jpeg"})

    page.route(f"**{HONEST_PREFIX}*", handle)


# -- a session in the page, read through the API ------------------------------------


def start_session(
    url: str, page: Any, token: str, attempts: int = 1, timeout: float = 30.0
) -> tuple[str | None, list[str]]:
    """Open the learner's page and start studying, trying the sign-in up to `attempts`
    times (a persistent attacker presses the button again). The session id (None if
    every sign-in was refused) and the page's error text of each refused attempt."""
    page.goto(f"{url}/learn#token={token}")
    page.wait_for_selector("body[data-ready='1']", timeout=timeout * 1000)
    errors: list[str] = []
    for _ in range(attempts):
        page.evaluate("document.getElementById('study-error').textContent = ''")
        page.click("#start-button")
        deadline = time.monotonic() + timeout
        error = "timed out"
        while time.monotonic() < deadline:
            sid = page.evaluate("document.body.dataset.session || ''")
            if sid:
                return str(sid), errors
            text = page.evaluate("document.getElementById('study-error').textContent || ''")
            if text:
                error = str(text)
                break
            time.sleep(0.3)
        errors.append(error)
        time.sleep(1.0)
    return None, errors


@dataclass
class Outcome:
    """What the ledger says about one session."""

    stopped: bool  # paused after an unanswered response window, or ended
    stop_reason: str | None  # the reason of that pause or end
    first_failure: dict[str, Any] | None  # the first check that failed
    challenges: list[dict[str, Any]]  # every challenge check
    checks: list[dict[str, Any]]  # every check
    credited_s: float
    # From the sign-in to the first check after it: the one check interval that an
    # attack may earn before a challenge stops it (None before that check).
    first_interval_s: float | None

    def earned_at_most_one_interval(self) -> bool:
        if self.credited_s == 0:
            return True
        return self.first_interval_s is not None and self.credited_s <= self.first_interval_s + 1e-3


def _at(check: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(check["at"]))


def read_outcome(get: Callable[[str], Any], sid: str) -> Outcome:
    """The session's outcome from its events and credited time (`get(path)` returns
    the JSON of a GET on the API as the learner)."""
    evs = get(f"/api/v1/sessions/{sid}/events")
    checks = [e["payload"] for e in evs if e["kind"] == "check"]
    stop = next(
        (
            e
            for e in evs
            if (e["kind"] == "state_changed" and e["payload"].get("to_state") == "paused"
                and e["payload"].get("reason") == "response_window_expired")
            or e["kind"] == "session_ended"
        ),
        None,
    )  # fmt: skip
    credited = float(get(f"/api/v1/sessions/{sid}/credited")["credited_seconds"])
    start = next((c for c in checks if c.get("purpose") == "start"), None)
    later = [c for c in checks if c.get("purpose") != "start"]
    first = None
    if start is not None and later:
        first = round((_at(later[0]) - _at(start)).total_seconds(), 3)
    return Outcome(
        stop is not None,
        None if stop is None else str(stop["payload"].get("reason")),
        next((c for c in checks if not c.get("passed")), None),
        [c for c in checks if c.get("purpose") == "challenge" or c.get("challenge")],
        checks,
        credited,
        first,
    )


def stopped_by_challenge(o: Outcome) -> bool:
    """The first failed check carried a challenge that was not passed."""
    f = o.first_failure
    return bool(f and f.get("challenge") and f["challenge"].get("outcome") != "passed")

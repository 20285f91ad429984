"""Challenges come in rounds: where one is due (the first check of a session, a resume,
a liveness failure), each passed challenge is followed at once by another, of another
kind, until `liveness.challenge_rounds` have passed in a row. A recording that happens
to turn the asked way once is asked again before it earns more than the interval
before its first check (the replayed clip in bench/browser_pad_eval.py passed about a
third of the turns asked of it).

The learner here is the talking head of ../shared/faces/video/3.mp4 on the still-frame
path, answering each challenge with the part of the recording where he turns the
asked way (as tests/browser_attacks.py does in the browser)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import browser_attacks as ba
from tests.supervisor.conftest import Service, StillFrames, _service
from tests.supervisor.online.test_learner_browser import checks, events

pytestmark = [pytest.mark.slow]

ROUNDS_LIVENESS = {
    "passive": True,
    "challenge_first_check": True,
    "challenge_rounds": 2,
    "challenge_probability": 0.0,
    "challenge_when_doubtful": False,
    "challenge_min_interval_s": 0.0,
    "challenge_kinds": ["turn_left", "turn_right"],
    "challenge_time_limit_s": 3.0,
    # Both rounds are answered from one 7-s recording, so their frames overlap: to
    # replay detection that is a kept frame shown again, to passive liveness's history
    # a loop, and both would rightly refuse it. Here the rounds are under test; those
    # have their own tests.
    "replay_check": False,
    "history_frames": 0,
}


@pytest.fixture(scope="module")
def rounds_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-rounds")
    yield from _service(
        tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite", liveness=ROUNDS_LIVENESS
    )


@pytest.fixture(scope="module")
def clip(faces_dir: Path) -> ba.Clip:
    return ba.load_clip(faces_dir, "3.mp4")


def _jpegs(clip: ba.Clip, start: float, count: int, fps: float) -> list[bytes]:
    from tests import imagegen

    return [
        imagegen.jpeg_bytes(clip.frames[clip.index(start + i / fps)], quality=85)
        for i in range(count)
    ]


def _answer(clip: ba.Clip, asked: str, count: int) -> list[bytes]:
    """The recording from just before the learner turns the asked way, 8 frames a
    second (the challenge's rate): a learner doing as asked. The recording turns one
    way only; the other side is that turn seen in a mirror (`ba.honest_answer`)."""
    from tests import imagegen

    start, _, _, mirrored = ba.honest_answer(clip.name, asked.removeprefix("challenge:"))
    if not mirrored:
        return _jpegs(clip, start, count, 8.0)
    return [
        imagegen.jpeg_bytes(
            np.ascontiguousarray(clip.frames[clip.index(start + i / 8.0)][:, ::-1]), quality=85
        )
        for i in range(count)
    ]


def test_the_way_back_from_one_turn_does_not_pass_the_next_round(
    rounds_service: Service, clip: ba.Clip
) -> None:
    """A replayed recording answers each challenge with its part that turns the asked
    way: its one real turn, or the way back from it. Judged only from where each round
    found the head, the way back is a turn too, and the recording would pass "left,
    then right"; judged against the pose before the first round as well, it never
    passes two rounds in a row, so the challenges never clear."""
    svc = rounds_service
    svc.forget_faces()
    w = svc.world(photo=clip.enrolled)
    spacing = svc.settings.policy.signin_frame_spacing_s
    burst = _jpegs(clip, 4.0, svc.settings.policy.signin_frames, 1 / spacing)
    r = svc.sign_in(w.learner, w.course_id, burst)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    seen: list[tuple[str, bool]] = []
    with StillFrames(svc, w.learner, sid) as page:
        for _ in range(4):
            kind, capture = page.request()
            # Never cleared: every check the server asks for is still a challenge.
            assert kind.startswith("challenge:"), (kind, seen)
            asked = kind.removeprefix("challenge:")
            start, _, _ = ba.ANSWERS[clip.name][asked]  # the replay: no mirror
            r = page.answer(capture, _jpegs(clip, start, int(capture["count"]), 8.0))
            assert r.status_code == 202, r.text
            result = page.next("result", where=lambda m, c=capture: m["check_id"] == c["check_id"])
            seen.append((asked, bool(result["passed"])))
    # Both sides were asked, and no two rounds in a row passed.
    assert {a for a, _ in seen} == {"turn_left", "turn_right"}, seen
    assert not any(a[1] and b[1] for a, b in zip(seen, seen[1:], strict=False)), seen


def test_a_passed_first_challenge_is_followed_at_once_by_another_round(
    rounds_service: Service, clip: ba.Clip
) -> None:
    svc = rounds_service
    svc.forget_faces()
    w = svc.world(photo=clip.enrolled)
    spacing = svc.settings.policy.signin_frame_spacing_s
    burst = _jpegs(clip, 4.0, svc.settings.policy.signin_frames, 1 / spacing)
    r = svc.sign_in(w.learner, w.course_id, burst)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    with StillFrames(svc, w.learner, sid) as page:
        asked = []
        for _ in range(2):
            kind, capture = page.request()
            assert kind.startswith("challenge:"), (kind, asked)
            asked.append(kind)
            t0 = time.monotonic()
            r = page.answer(capture, _answer(clip, kind, int(capture["count"])))
            assert r.status_code == 202, r.text
            result = page.next("result", where=lambda m, c=capture: m["check_id"] == c["check_id"])
            assert result["passed"], result
        # The second round came at once, of the other kind; only then do plain checks
        # (a presence check, with no challenge) follow.
        assert asked[0] != asked[1]
        kind, capture = page.request()
        assert not kind.startswith("challenge:"), kind
        assert time.monotonic() - t0 < 30
        evs = events(svc, w.learner, sid)
        rounds = checks(evs, purpose="challenge")
        assert [c["challenge"]["kind"] for c in rounds] == [a.split(":")[1] for a in asked]
        assert all(c["passed"] and c["challenge"]["outcome"] == "passed" for c in rounds)

"""Replayed frames (verification/replay.py) on real faces.

Stored frames are webcam-like frames of the packaged astronaut and Grace Hopper
photos. A replay is such a frame after what an operator could do to it on its way
back (re-encoding, noise, a crop, rescaling, a change of light, and all of them
at once), detected again by the engine as a check frame is. Honest frames come
from a talking-head-like clip generated here from the Hopper photo (the head
sways and turns a little and the mouth opens and closes, with sensor noise and
JPEG on every frame), written as a .y4m video and decoded again with PyAV; and,
where ../shared/faces is present, from the talking-head videos and from other
photos of the same people.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from tests import imagegen, videogen
from tests.conftest import FACES_DIR, unavailable
from tests.verification import livegen
from verification import replay
from verification.dlib_engine import DlibFaceEngine
from verification.imageio import decode_image
from verification.replay import (
    SIGNATURE_BYTES,
    ReplayParams,
    SignatureBank,
    SignatureFormatError,
    compare,
    decode_signature,
    encode_signature,
    find_replay,
    frame_signature,
    probe_frame,
)
from verification.types import FaceBox, FrameSignature, ReplayVerdict

Image = np.ndarray
P = ReplayParams()


# -- helpers ------------------------------------------------------------------------


def probe_of(engine: DlibFaceEngine, image: Image) -> replay.ReplayProbe:
    """As the service does: the engine's largest face, its 5 landmarks, the probe."""
    boxes = engine.detect(image)
    assert boxes, "no face found"
    return probe_frame(image, boxes[0], engine.landmarks(image, boxes[0], 5))


def jpeg(image: Image, quality: int) -> Image:
    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, format="JPEG", quality=quality)
    with PILImage.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def noise(image: Image, sigma: float, seed: int = 5) -> Image:
    rng = np.random.default_rng(seed)
    out = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def crop(image: Image, left: float, top: float, right: float, bottom: float) -> Image:
    h, w = image.shape[:2]
    return np.ascontiguousarray(
        image[round(top * h) : h - round(bottom * h), round(left * w) : w - round(right * w)]
    )


def scale(image: Image, factor: float) -> Image:
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, None, fx=factor, fy=factor, interpolation=interp))


def light(image: Image, gain: float, offset: float) -> Image:
    return np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def gamma(image: Image, g: float) -> Image:
    return np.clip(255.0 * (image / 255.0) ** g + 0.5, 0, 255).astype(np.uint8)


def combined(image: Image) -> Image:
    out = crop(image, 0.08, 0.05, 0.0, 0.08)
    out = scale(out, 0.8)
    out = light(out, 1.05, -6)
    return jpeg(noise(out, 3.0), 60)


CHANGES: dict[str, Callable[[Image], Image]] = {
    "identical": lambda im: im.copy(),
    "jpeg95": lambda im: jpeg(im, 95),
    "jpeg50": lambda im: jpeg(im, 50),
    "noise_sigma4": lambda im: noise(im, 4.0),
    "crop8_left_top": lambda im: crop(im, 0.08, 0.08, 0.0, 0.0),
    "crop8_every_side": lambda im: crop(im, 0.08, 0.08, 0.08, 0.08),
    "scale0.7": lambda im: scale(im, 0.7),
    "scale1.3": lambda im: scale(im, 1.3),
    "brighter": lambda im: light(im, 1.0, 8),
    "more_contrast": lambda im: light(im, 1.1, -12.8),
    "gamma0.9": lambda im: gamma(im, 0.9),
    "all_at_once": combined,
}


def talking_head(still: Image, face: FaceBox, t: float, rng: np.random.Generator) -> Image:
    """One webcam frame of a person talking, made from a still at time `t` (s).

    Smooth motion no flat photo makes: the head sways (3% of the face width), the
    face turns a little (its middle moves against its outline by up to 5%), and
    the jaw drops (up to 7%, about 12 px here) as the mouth opens and closes while
    talking. Then sensor noise and JPEG, as a webcam delivers it."""
    h, w = still.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    fw = float(face.width)
    cx, cy = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * (0.35 * fw) ** 2)
    turn = 0.05 * fw * math.sin(2 * math.pi * 0.45 * t) * np.exp(-r2)
    jaw = np.exp(-(((xs - cx) / (0.25 * fw)) ** 2 + ((ys - cy - 0.42 * fw) / (0.12 * fw)) ** 2) / 2)
    opening = 0.5 * (1 - math.cos(2 * math.pi * 0.8 * t))
    dx = 0.03 * fw * math.sin(2 * math.pi * 0.35 * t) + turn
    dy = 0.02 * fw * math.sin(2 * math.pi * 0.23 * t + 1.0) + 0.07 * fw * opening * jaw
    moved = cv2.remap(still, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return livegen.capture(np.asarray(moved, dtype=np.uint8), rng, noise=2.0, quality=88)


@pytest.fixture(scope="module")
def clip(engine: DlibFaceEngine, tmp_path_factory: pytest.TempPathFactory) -> livegen.Video:
    """4 s of the generated talking head at 10 fps, through a .y4m file and PyAV."""
    still = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170)
    face = engine.detect(still)[0]
    rng = np.random.default_rng(21)
    fps = 10
    frames = [(talking_head(still, face, i / fps, rng), 1 / fps) for i in range(4 * fps)]
    path = videogen.write_y4m(tmp_path_factory.mktemp("replay") / "head.y4m", frames, fps=fps)
    return livegen.read_video(path)


@pytest.fixture(scope="module")
def people(
    engine: DlibFaceEngine, astronaut_frame: Image, hopper_frame: Image
) -> dict[str, replay.ReplayProbe]:
    return {
        "hopper": probe_of(engine, hopper_frame),
        "astronaut": probe_of(engine, astronaut_frame),
    }


# -- the signature and its bytes -------------------------------------------------------


def test_signature_is_296_bytes_and_round_trips(people: dict[str, replay.ReplayProbe]) -> None:
    sig = people["hopper"].signature
    data = encode_signature(sig)
    assert len(data) == SIGNATURE_BYTES == 296
    assert data[:4] == b"RS\x01\x10"
    back = decode_signature(data)
    assert back == sig
    assert encode_signature(back) == data
    bank = SignatureBank.from_bytes([data, encode_signature(people["astronaut"].signature)])
    assert len(bank) == 2
    # Every cell of a face well inside the frame is inside; the grey levels use the
    # whole uint8 range.
    assert np.unpackbits(np.frombuffer(sig.inside, np.uint8)).all()
    cells = np.frombuffer(sig.cells, np.uint8)
    assert cells.min() == 0 and cells.max() == 255


def _valid_bytes(people: dict[str, replay.ReplayProbe]) -> bytes:
    return encode_signature(people["hopper"].signature)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"", "too short"),
        (lambda b: b[:5], "too short"),
        (lambda b: b"XX" + b[2:], "not a replay signature"),
        (lambda b: b[:2] + bytes([2]) + b[3:], "version 2 is not supported"),
        (lambda b: b[:2] + bytes([0]) + b[3:], "version 0 is not supported"),
        (lambda b: b[:3] + bytes([32]) + b[4:], "grid 32"),
        (lambda b: b[:-1], "got 295"),
        (lambda b: b + b"\x00", "got 297"),
        (lambda b: b + b, "got 592"),
    ],
)
def test_decoding_refuses_garbage_with_a_clear_error(
    people: dict[str, replay.ReplayProbe], mangle: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(SignatureFormatError, match=message):
        decode_signature(mangle(_valid_bytes(people)))


def test_decoding_refuses_what_is_not_bytes() -> None:
    with pytest.raises(SignatureFormatError, match="not str"):
        decode_signature("RS")  # type: ignore[arg-type]


def test_a_bank_refuses_bad_bytes_and_malformed_signatures(
    people: dict[str, replay.ReplayProbe],
) -> None:
    good = _valid_bytes(people)
    with pytest.raises(SignatureFormatError, match="got 100"):
        SignatureBank.from_bytes([good, good[:100]])
    bad = FrameSignature(1, 16, 50.0, b"\xff" * 32, b"\x00" * 10)
    with pytest.raises(SignatureFormatError, match="10 cell bytes"):
        encode_signature(bad)
    with pytest.raises(SignatureFormatError):
        SignatureBank([bad])
    with pytest.raises(SignatureFormatError):
        compare(people["hopper"], bad)


def test_the_error_is_a_verification_error_and_a_value_error() -> None:
    from verification.exceptions import VerificationError

    assert issubclass(SignatureFormatError, VerificationError)
    assert issubclass(SignatureFormatError, ValueError)


def test_probe_refuses_unusable_input(engine: DlibFaceEngine, hopper_frame: Image) -> None:
    box = engine.detect(hopper_frame)[0]
    marks = engine.landmarks(hopper_frame, box, 5)
    with pytest.raises(ValueError, match="RGB uint8"):
        probe_frame(hopper_frame.astype(np.float32), box, marks)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RGB uint8"):
        probe_frame(hopper_frame[:, :, 0], box, marks)
    with pytest.raises(ValueError, match="5 or 68"):
        probe_frame(hopper_frame, box, marks[:4])
    with pytest.raises(ValueError, match="not those of the face"):
        probe_frame(hopper_frame, FaceBox(0, 0, 40, 40, 1.0), marks)
    tiny = [(x / 20 + 5, y / 20 + 5) for x, y in marks]
    with pytest.raises(ValueError, match="too small"):
        probe_frame(hopper_frame, FaceBox(0, 0, 30, 30, 1.0), tiny)


def test_68_landmarks_give_the_same_signature_as_5_within_alignment(
    engine: DlibFaceEngine, hopper_frame: Image
) -> None:
    box = engine.detect(hopper_frame)[0]
    from68 = probe_frame(hopper_frame, box, engine.landmarks(hopper_frame, box, 68))
    from5 = frame_signature(hopper_frame, box, engine.landmarks(hopper_frame, box, 5))
    score = compare(from68, from5)
    assert score is not None and score <= P.threshold


# -- replays are caught --------------------------------------------------------------------


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("who", ["hopper", "astronaut"])
def test_a_replay_after_each_change_is_caught(
    engine: DlibFaceEngine,
    people: dict[str, replay.ReplayProbe],
    astronaut_frame: Image,
    hopper_frame: Image,
    who: str,
    change: str,
) -> None:
    frames = {"hopper": hopper_frame, "astronaut": astronaut_frame}
    names = sorted(people)
    bank = SignatureBank(people[n].signature for n in names)
    replayed = CHANGES[change](frames[who])
    result = find_replay(probe_of(engine, replayed), bank)
    assert result.verdict is ReplayVerdict.replayed, (change, result)
    assert result.replayed and result.index == names.index(who)
    assert result.score is not None and result.score <= P.threshold
    assert result.compared == 2 and 1 <= result.examined <= 2


def test_the_same_frame_scores_nearly_zero(people: dict[str, replay.ReplayProbe]) -> None:
    probe = people["hopper"]
    score = compare(probe, probe.signature)
    # Only the uint8 rounding of the stored cells is left.
    assert score is not None and score < 1e-4


def test_a_replay_of_a_decoded_video_frame_is_caught(
    engine: DlibFaceEngine, clip: livegen.Video
) -> None:
    stored = probe_of(engine, clip.at(1.0)).signature
    for change in ("jpeg50", "noise_sigma4", "crop8_left_top", "scale0.7", "all_at_once"):
        again = probe_of(engine, CHANGES[change](clip.at(1.0)))
        score = compare(again, stored)
        assert score is not None and score <= P.threshold, (change, score)


# -- honest frames are not ---------------------------------------------------------------------


def test_frames_of_a_live_sequence_are_not_replays(
    engine: DlibFaceEngine, clip: livegen.Video
) -> None:
    times = [0.0, 0.7, 1.5, 2.2, 3.1]
    probes = [probe_of(engine, clip.at(t)) for t in times]
    bank = SignatureBank(p.signature for p in probes)
    for i, probe in enumerate(probes):
        # Each frame against every other frame of the clip (never against itself).
        others = SignatureBank(p.signature for j, p in enumerate(probes) if j != i)
        result = find_replay(probe, others)
        assert result.verdict is ReplayVerdict.distinct, (times[i], result)
        for j, other in enumerate(probes):
            if j != i:
                score = compare(probe, other.signature)
                # Far from the threshold, not just over it.
                assert score is not None and score > 3 * P.threshold, (times[i], times[j], score)
    # And each frame is found again in the bank that holds it.
    assert find_replay(probes[2], bank).index == 2


def test_a_different_person_is_not_a_replay(people: dict[str, replay.ReplayProbe]) -> None:
    hopper, astronaut = people["hopper"], people["astronaut"]
    result = find_replay(astronaut, SignatureBank([hopper.signature]))
    assert result.verdict is ReplayVerdict.distinct
    for a, b in ((hopper, astronaut), (astronaut, hopper)):
        score = compare(a, b.signature)
        assert score is not None and score > 0.05


def test_a_stored_face_mostly_outside_its_frame_is_not_evidence(
    people: dict[str, replay.ReplayProbe],
) -> None:
    sig = people["hopper"].signature
    # Only the top three rows of cells inside the stored frame.
    inside = np.zeros(256, np.uint8)
    inside[:48] = 1
    partial = FrameSignature(
        sig.version, sig.grid, sig.iod_px, np.packbits(inside).tobytes(), sig.cells
    )
    assert compare(people["hopper"], partial) is None
    result = find_replay(people["hopper"], SignatureBank([partial]))
    assert result.verdict is ReplayVerdict.distinct and result.score is None


def test_an_extended_bank_keeps_its_rows_and_adds_the_new_ones(
    engine: DlibFaceEngine, people: dict[str, replay.ReplayProbe], hopper_frame: Image
) -> None:
    bank = SignatureBank([people["astronaut"].signature]).extended([people["hopper"].signature])
    assert len(bank) == 2
    result = find_replay(probe_of(engine, jpeg(hopper_frame, 60)), bank)
    assert result.verdict is ReplayVerdict.replayed and result.index == 1
    assert len(bank.extended([])) == 2


def test_an_empty_bank_finds_nothing(people: dict[str, replay.ReplayProbe]) -> None:
    result = find_replay(people["hopper"], SignatureBank([]))
    assert result.verdict is ReplayVerdict.distinct
    assert (result.score, result.index, result.examined, result.compared) == (None, None, 0, 0)


def test_a_large_bank_finds_the_replayed_frame(
    engine: DlibFaceEngine, people: dict[str, replay.ReplayProbe], clip: livegen.Video
) -> None:
    # 5,000 stored signatures: frames of the clip (the same person, other moments)
    # and the two photos, with the replayed frame somewhere in the middle.
    clip_sigs = [probe_of(engine, clip.at(t)).signature for t in (0.0, 1.0, 2.0, 3.0)]
    filler = [*clip_sigs, people["astronaut"].signature]
    sigs = [filler[i % len(filler)] for i in range(5000)]
    sigs[2345] = people["hopper"].signature
    bank = SignatureBank.from_bytes(encode_signature(s) for s in sigs)
    result = find_replay(
        probe_of(engine, combined(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))),
        bank,
    )
    assert result.verdict is ReplayVerdict.replayed and result.index == 2345
    assert result.compared == 5000 and result.examined <= P.max_candidates


# -- the labelled set ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_faces() -> Path:
    """../shared/faces; skipped where absent, a failure under CI=true."""
    if not (FACES_DIR / "manifest.csv").is_file():
        unavailable(f"labelled face set not found at {FACES_DIR} (set SUPERVISOR_FACES_DIR)")
    return FACES_DIR


def _photo(faces: Path, rel: str) -> Image:
    return decode_image((faces / rel).read_bytes(), max_pixels=50_000_000, max_side=20_000)


@pytest.mark.faces
def test_talking_head_frames_a_second_apart_are_not_replays_but_their_copies_are(
    engine: DlibFaceEngine, shared_faces: Path
) -> None:
    video = livegen.read_video(shared_faces / "video" / "2.mp4")
    probes = [probe_of(engine, video.at(t)) for t in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)]
    for a, b in zip(probes, probes[1:], strict=False):
        score = compare(b, a.signature)
        assert score is not None and score > P.threshold, score
    copy = probe_of(engine, combined(video.at(3.0)))
    result = find_replay(copy, SignatureBank(p.signature for p in probes))
    assert result.verdict is ReplayVerdict.replayed and result.index == 3


@pytest.mark.faces
def test_other_photos_of_one_person_are_not_replays_but_a_derived_copy_is(
    engine: DlibFaceEngine, shared_faces: Path
) -> None:
    obama = {
        n: probe_of(engine, _photo(shared_faces, f"barack_obama/{n}.jpg")) for n in (1, 2, 3, 4, 5)
    }
    for a in (1, 2, 3, 4):
        for b in (1, 2, 3, 4):
            if a != b:
                score = compare(obama[b], obama[a].signature)
                assert score is not None and score > 30 * P.threshold, (a, b, score)
    # barack_obama/5.jpg is a low-resolution, letterboxed copy of 1.jpg (manifest notes).
    result = find_replay(obama[5], SignatureBank([obama[n].signature for n in (2, 3, 4, 1)]))
    assert result.verdict is ReplayVerdict.replayed and result.index == 3

"""The FaceEngine contract, run against every engine (dlib and SFace) on real faces.

The packaged photos (skimage's astronaut, matplotlib's Grace Hopper) and frames
generated from them; distances are compared with each engine's own threshold.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from config.settings import FaceEngineName
from tests import imagegen
from tests.verification import maskgen
from tests.verification.conftest import template_of
from verification.dlib_engine import DlibFaceEngine
from verification.exceptions import EnrolmentRejected, TemplateModelMismatch
from verification.headpose import eye_aspect_ratio, head_pose
from verification.liveness import observe
from verification.matching import distances
from verification.protocols import FaceEngine
from verification.sface_engine import SFaceEngine
from verification.types import (
    CheckKind,
    FaceBox,
    Image,
    Metric,
    QualityIssue,
    TemplateSet,
    Verdict,
)


def _centre(box: FaceBox) -> tuple[float, float]:
    return (box.left + box.right) / 2, (box.top + box.bottom) / 2


def test_the_model_names_the_engine_its_weights_and_its_metric(any_engine: FaceEngine) -> None:
    model = any_engine.model
    assert re.fullmatch(r"[0-9a-f]{64}", model.model_hash)
    assert model.metric is (Metric.cosine if model.engine == "sface" else Metric.euclidean)
    assert model.key == f"{model.engine}:{model.model_hash[:12]}"
    assert any_engine.threshold > 0


def test_detection_maps_boxes_back_to_the_original_frame(any_engine: FaceEngine) -> None:
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=200, centre=(0.3, 0.5))
    boxes = any_engine.detect(frame)
    assert len(boxes) == 1
    cx, cy = _centre(boxes[0])
    assert abs(cx - 0.3 * 640) < 25 and abs(cy - 0.5 * 480) < 40
    # Both engines report boxes of HOG's geometry: the size gates mean the same.
    assert 150 < boxes[0].width < 280


def test_boxes_of_the_two_engines_agree(engine: DlibFaceEngine, sface_engine: SFaceEngine) -> None:
    for photo in (imagegen.grace_hopper(), imagegen.astronaut()):
        for width in (110, 170, 240):
            frame = imagegen.webcam_frame(photo, face_width=width)
            (a,) = engine.detect(frame)
            (b,) = sface_engine.detect(frame)
            assert abs(a.width - b.width) < 0.2 * a.width
            assert np.hypot(*np.subtract(_centre(a), _centre(b))) < 0.15 * a.width


def test_detect_near_finds_a_face_that_moved_a_little(any_engine: FaceEngine) -> None:
    hopper = imagegen.grace_hopper()
    before = any_engine.detect(imagegen.webcam_frame(hopper, 170, (0.45, 0.45)))[0]
    frame = imagegen.webcam_frame(hopper, 150, (0.51, 0.47))
    whole = any_engine.detect(frame)
    near = any_engine.detect_near(frame, before)
    assert len(near) == 1 and len(whole) == 1
    (nx, ny), (wx, wy) = _centre(near[0]), _centre(whole[0])
    assert abs(nx - wx) < 10 and abs(ny - wy) < 10
    assert abs(near[0].width - whole[0].width) < 0.15 * whole[0].width


def test_detect_near_does_not_look_far_from_the_known_face(any_engine: FaceEngine) -> None:
    hopper = imagegen.grace_hopper()
    before = any_engine.detect(imagegen.webcam_frame(hopper, 170, (0.25, 0.45)))[0]
    moved = imagegen.webcam_frame(hopper, 170, (0.78, 0.45))
    assert any_engine.detect_near(moved, before) == []
    seen = observe(any_engine, moved, 0.0, near=before)
    assert seen.box is not None and _centre(seen.box)[0] > 0.6 * 640
    assert len(seen.landmarks or ()) == 68


def test_68_landmarks_give_a_frontal_pose_and_open_eyes(
    any_engine: FaceEngine, hopper_frame: Image
) -> None:
    box = any_engine.detect(hopper_frame)[0]
    points = any_engine.landmarks(hopper_frame, box, 68)
    assert len(points) == 68
    assert all(box.left - 20 <= x <= box.right + 20 for x, _ in points)
    pose = head_pose(points, (640, 480))
    assert abs(pose.yaw_deg) < 15 and abs(pose.roll_deg) < 10
    assert 0.18 < eye_aspect_ratio(points) < 0.45
    assert len(any_engine.landmarks(hopper_frame, box, 5)) == 5


def test_same_person_matches_other_person_does_not(
    any_engine: FaceEngine, astronaut_frame: Image, hopper_frame: Image
) -> None:
    astronaut = template_of(any_engine, "astronaut")[None, :]
    same = any_engine.identity(astronaut_frame, astronaut)
    assert same.verdict is Verdict.match, same
    assert same.distance is not None and same.threshold == any_engine.threshold
    assert same.distance < same.threshold - 0.1
    assert same.timings.encode_ms > 0 and same.quality is not None
    other = any_engine.identity(hopper_frame, astronaut)
    assert other.verdict is Verdict.mismatch
    assert other.distance is not None and other.distance > any_engine.threshold + 0.05


@pytest.mark.parametrize("index", range(7))
def test_augmented_copies_of_the_enrolled_photo_match(any_engine: FaceEngine, index: int) -> None:
    copy = imagegen.augmented_copies(imagegen.grace_hopper())[index]
    result = any_engine.identity(copy, template_of(any_engine, "hopper")[None, :])
    assert result.verdict is Verdict.match, result


def test_several_templates_decide_on_the_nearest(
    any_engine: FaceEngine, astronaut_frame: Image
) -> None:
    templates = np.stack([template_of(any_engine, "hopper"), template_of(any_engine, "astronaut")])
    result = any_engine.identity(astronaut_frame, templates)
    assert result.verdict is Verdict.match and result.template_index == 1


def test_identity_result_carries_the_encoding_a_search_would_make(
    any_engine: FaceEngine, hopper_frame: Image
) -> None:
    result = any_engine.identity(hopper_frame, template_of(any_engine, "astronaut")[None, :])
    largest = any_engine.encode_largest(hopper_frame)
    assert result.encoding is not None and largest is not None
    assert np.allclose(result.encoding, largest.vector)
    assert any_engine.presence(hopper_frame).encoding is None
    d = distances(
        result.encoding, template_of(any_engine, "astronaut")[None, :], any_engine.model.metric
    )
    assert float(d[0]) == pytest.approx(result.distance, abs=1e-5)


def test_presence_check_finds_one_face_without_encoding(
    any_engine: FaceEngine, hopper_frame: Image
) -> None:
    result = any_engine.presence(hopper_frame)
    assert result.verdict is Verdict.present and result.passed
    assert result.distance is None and result.timings.encode_ms == 0.0


@pytest.mark.parametrize("index", range(4))
def test_no_face_in_generated_non_face_images(any_engine: FaceEngine, index: int) -> None:
    image = imagegen.non_face_images()[index]
    assert any_engine.detect(image) == []
    assert any_engine.presence(image).verdict is Verdict.no_face


def test_two_people_in_the_frame_is_multiple_faces(any_engine: FaceEngine) -> None:
    result = any_engine.identity(
        imagegen.two_faces_frame(), template_of(any_engine, "astronaut")[None, :]
    )
    assert result.verdict is Verdict.multiple_faces and result.faces_found == 2
    assert result.distance is None


def _gate(e: FaceEngine, image: Image) -> tuple[Verdict, tuple[QualityIssue, ...]]:
    result = e.presence(image)
    return result.verdict, result.issues


def test_quality_gates_refuse_the_same_frames(any_engine: FaceEngine, hopper_frame: Image) -> None:
    cases = {
        QualityIssue.too_blurred: cv2.GaussianBlur(hopper_frame, (0, 0), 3.5),
        QualityIssue.too_dark: imagegen.adjust(hopper_frame, 0.22, 0),
        QualityIssue.too_bright: imagegen.adjust(hopper_frame, 0.35, 175),
        QualityIssue.face_cut_off: imagegen.webcam_frame(
            imagegen.grace_hopper(), face_width=200, centre=(0.1, 0.5)
        ),
        QualityIssue.face_too_small: imagegen.webcam_frame(imagegen.grace_hopper(), 75),
    }
    for issue, frame in cases.items():
        verdict, issues = _gate(any_engine, frame)
        assert verdict is Verdict.low_quality and issue in issues, (issue, verdict, issues)


def test_best_of_k_passes_an_honest_learner_who_blinked(
    any_engine: FaceEngine, hopper_frame: Image
) -> None:
    blurred = cv2.GaussianBlur(hopper_frame, (0, 0), 3.5)
    result = any_engine.check(
        CheckKind.identity,
        [blurred, hopper_frame, hopper_frame],
        template_of(any_engine, "hopper")[None, :],
    )
    assert result.verdict is Verdict.match and result.frame_index == 1
    assert len(result.frames) == 2 and result.frames_offered == 3


def test_best_of_k_fails_an_impostor_on_every_frame(any_engine: FaceEngine) -> None:
    frames = [imagegen.webcam_frame(imagegen.grace_hopper(), face_width=w) for w in (150, 180, 210)]
    result = any_engine.check(
        CheckKind.identity, frames, template_of(any_engine, "astronaut")[None, :]
    )
    assert result.verdict is Verdict.mismatch and len(result.frames) == 3


def test_identity_check_needs_templates(any_engine: FaceEngine, hopper_frame: Image) -> None:
    with pytest.raises(ValueError, match="templates"):
        any_engine.check(CheckKind.identity, [hopper_frame])


def test_enrolment_refuses_photos_failing_gates(any_engine: FaceEngine) -> None:
    with pytest.raises(EnrolmentRejected) as no_face:
        any_engine.enrol(imagegen.non_face_images()[0])
    assert no_face.value.verdict == "no_face"
    with pytest.raises(EnrolmentRejected) as two:
        any_engine.enrol(imagegen.two_faces_frame())
    assert two.value.verdict == "multiple_faces"
    with pytest.raises(EnrolmentRejected) as dark:
        any_engine.enrol(imagegen.adjust(imagegen.grace_hopper(), 0.2, 0))
    assert dark.value.verdict == "low_quality" and "too_dark" in dark.value.issues


def test_a_template_is_close_to_a_plain_encoding_of_the_same_photo(
    any_engine: FaceEngine,
) -> None:
    image = imagegen.grace_hopper()
    template = any_engine.encode_largest(image, template=True)
    probe = any_engine.encode_largest(image, template=False)
    assert template is not None and probe is not None
    d = float(distances(probe.vector, template.vector[None, :], any_engine.model.metric)[0])
    assert 0.0 < d < 0.2


def test_encode_all_returns_every_face_and_encode_faces_agrees(any_engine: FaceEngine) -> None:
    frame = imagegen.two_faces_frame()
    faces = any_engine.encode_all(frame)
    assert len(faces) == 2 and all(f.vector.shape == (128,) for f in faces)
    metric = any_engine.model.metric
    apart = float(distances(faces[0].vector, faces[1].vector[None, :], metric)[0])
    assert apart > any_engine.threshold
    again = any_engine.encode_faces(frame, [f.box for f in faces])
    assert again.shape == (2, 128)
    for face, row in zip(faces, again, strict=True):
        assert float(distances(face.vector, row[None, :], metric)[0]) < 0.05


def test_detect_all_finds_small_faces_in_a_classroom_frame(any_engine: FaceEngine) -> None:
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=45, size=(1280, 720))
    score_min = any_engine.settings.engine_thresholds(
        FaceEngineName(any_engine.model.engine)
    ).detection_score_min
    boxes = any_engine.detect_all(frame, 40, score_min)
    assert len(boxes) == 1 and 30 < boxes[0].width < 70


# -- templates of another model ------------------------------------------------------


def test_a_template_of_one_model_is_refused_by_the_other(
    engine: DlibFaceEngine, sface_engine: SFaceEngine, hopper_frame: Image
) -> None:
    dlib_set = TemplateSet(engine.model, template_of(engine, "hopper")[None, :])
    sface_set = TemplateSet(sface_engine.model, template_of(sface_engine, "hopper")[None, :])
    assert engine.identity(hopper_frame, dlib_set).verdict is Verdict.match
    assert sface_engine.identity(hopper_frame, sface_set).verdict is Verdict.match
    for e, foreign in ((engine, sface_set), (sface_engine, dlib_set)):
        with pytest.raises(TemplateModelMismatch) as refused:
            e.check(CheckKind.identity, [hopper_frame], foreign)
        assert refused.value.expected == e.model.key
        assert refused.value.got == foreign.model.key
        with pytest.raises(TemplateModelMismatch):
            e.identity(hopper_frame, foreign)


# -- masks ------------------------------------------------------------------------------


def _masked(engine: DlibFaceEngine, photo: Image, style: maskgen.MaskStyle, seed: int) -> Image:
    box = engine.detect(photo)[0]
    points = engine.landmarks(photo, box, 68)
    return maskgen.draw_mask(photo, points, style, np.random.default_rng(seed))


PLAIN_MASKS = [s for s in maskgen.STYLES if s.name not in ("skin", "printed")]


@pytest.mark.parametrize("style", PLAIN_MASKS, ids=lambda s: s.name)
def test_a_masked_face_is_never_matched_and_asked_to_take_the_mask_off(
    any_engine: FaceEngine, engine: DlibFaceEngine, style: maskgen.MaskStyle
) -> None:
    masked = _masked(engine, imagegen.grace_hopper(), style, 1)
    frame = imagegen.webcam_frame(masked, face_width=180)
    result = any_engine.identity(frame, template_of(any_engine, "hopper")[None, :])
    assert result.distance is None and result.encoding is None
    if isinstance(any_engine, SFaceEngine):
        # YuNet finds masked faces; the occlusion gate refuses them.
        assert result.verdict is Verdict.low_quality, result
    else:
        # dlib's HOG detector mostly misses them: no_face, or the gate where it finds one.
        assert result.verdict in (Verdict.no_face, Verdict.low_quality), result
    if result.verdict is Verdict.low_quality:
        assert QualityIssue.face_occluded in result.issues
        assert QualityIssue.face_occluded.advice == "Please take off your mask."
        presence = any_engine.presence(frame)
        assert presence.verdict is Verdict.present, presence
    with pytest.raises(EnrolmentRejected) as refused:
        any_engine.enrol(masked)
    assert refused.value.verdict == "no_face" or "face_occluded" in refused.value.issues


def test_the_sface_engine_sees_every_plain_mask_on_the_astronaut(
    sface_engine: SFaceEngine, engine: DlibFaceEngine
) -> None:
    for seed, style in enumerate(PLAIN_MASKS):
        masked = _masked(engine, imagegen.astronaut(), style, seed)
        frame = imagegen.webcam_frame(masked, face_width=170)
        result = sface_engine.identity(frame, template_of(sface_engine, "astronaut")[None, :])
        assert QualityIssue.face_occluded in result.issues, (style.name, result.quality)


@pytest.mark.parametrize("width", [100, 140, 200, 260])
def test_uncovered_faces_are_not_called_occluded(any_engine: FaceEngine, width: int) -> None:
    for who in ("astronaut", "hopper"):
        photo = imagegen.astronaut() if who == "astronaut" else imagegen.grace_hopper()
        frames = [imagegen.webcam_frame(photo, face_width=width)] + [
            imagegen.webcam_frame(copy, face_width=width)
            for copy in imagegen.augmented_copies(photo)
        ]
        for frame in frames:
            result = any_engine.identity(frame, template_of(any_engine, who)[None, :])
            assert QualityIssue.face_occluded not in result.issues, result.quality

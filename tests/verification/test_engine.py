"""The dlib engine on real faces: verdicts, distances and every quality gate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from config import FaceSettings
from tests import imagegen
from verification.dlib_engine import DlibFaceEngine
from verification.exceptions import EnrolmentRejected
from verification.liveness import observe
from verification.types import CheckKind, FaceBox, Image, QualityIssue, Vector, Verdict


def test_detection_maps_boxes_back_to_the_original_frame(engine: DlibFaceEngine) -> None:
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=200, centre=(0.3, 0.5))
    boxes = engine.detect(frame)
    assert len(boxes) == 1
    box = boxes[0]
    # Detected on a downscaled copy, reported in 640x480 coordinates.
    assert abs((box.left + box.right) / 2 - 0.3 * 640) < 25
    assert abs((box.top + box.bottom) / 2 - 0.5 * 480) < 40
    assert 150 < box.width < 280


def _centre(box: FaceBox) -> tuple[float, float]:
    return (box.left + box.right) / 2, (box.top + box.bottom) / 2


def test_detect_near_finds_a_face_that_moved_a_little(engine: DlibFaceEngine) -> None:
    hopper = imagegen.grace_hopper()
    before = engine.detect(imagegen.webcam_frame(hopper, 170, (0.45, 0.45)))[0]
    # 0.6 s later: moved about 40 px and leaning back a little.
    frame = imagegen.webcam_frame(hopper, 150, (0.51, 0.47))
    whole = engine.detect(frame)
    near = engine.detect_near(frame, before)
    assert len(near) == 1 and len(whole) == 1
    (nx, ny), (wx, wy) = _centre(near[0]), _centre(whole[0])
    # Same face, in frame coordinates, to within the detector's own jitter.
    assert abs(nx - wx) < 10 and abs(ny - wy) < 10
    assert abs(near[0].width - whole[0].width) < 0.15 * whole[0].width


def test_detect_near_does_not_look_far_from_the_known_face(engine: DlibFaceEngine) -> None:
    hopper = imagegen.grace_hopper()
    before = engine.detect(imagegen.webcam_frame(hopper, 170, (0.25, 0.45)))[0]
    moved = imagegen.webcam_frame(hopper, 170, (0.78, 0.45))
    assert engine.detect_near(moved, before) == []
    # observe() then searches the whole frame and still finds it.
    seen = observe(engine, moved, 0.0, near=before)
    assert seen.box is not None and _centre(seen.box)[0] > 0.6 * 640
    assert len(seen.landmarks or ()) == 68


def test_identity_result_carries_the_encoding_a_search_would_make(
    engine: DlibFaceEngine, hopper_frame: Image, astronaut_template: Vector
) -> None:
    result = engine.identity(hopper_frame, astronaut_template[None, :])
    largest = engine.encode_largest(hopper_frame)
    assert result.encoding is not None and largest is not None
    assert np.allclose(result.encoding, largest.vector)
    assert engine.presence(hopper_frame).encoding is None


def test_same_person_matches_with_distance_below_threshold(
    engine: DlibFaceEngine, astronaut_frame: Image, astronaut_template: Vector
) -> None:
    result = engine.identity(astronaut_frame, astronaut_template[None, :])
    assert result.verdict is Verdict.match
    assert result.distance is not None and result.threshold is not None
    assert result.distance < result.threshold - 0.1
    assert result.box is not None and result.quality is not None
    assert result.timings.encode_ms > 0


def test_other_person_is_a_mismatch_with_distance_above_threshold(
    engine: DlibFaceEngine, hopper_frame: Image, astronaut_template: Vector
) -> None:
    result = engine.identity(hopper_frame, astronaut_template[None, :])
    assert result.verdict is Verdict.mismatch
    assert result.distance is not None and result.distance > result.threshold + 0.05  # type: ignore[operator]


@pytest.mark.parametrize("index", range(7))
def test_augmented_copies_of_the_enrolled_photo_match(
    engine: DlibFaceEngine, hopper_template: Vector, index: int
) -> None:
    copy = imagegen.augmented_copies(imagegen.grace_hopper())[index]
    result = engine.identity(copy, hopper_template[None, :])
    assert result.verdict is Verdict.match, result


def test_several_templates_decide_on_the_nearest(
    engine: DlibFaceEngine,
    astronaut_frame: Image,
    astronaut_template: Vector,
    hopper_template: Vector,
) -> None:
    templates = np.stack([hopper_template, astronaut_template])
    result = engine.identity(astronaut_frame, templates)
    assert result.verdict is Verdict.match
    assert result.template_index == 1


def test_presence_check_finds_one_face_without_encoding(
    engine: DlibFaceEngine, hopper_frame: Image
) -> None:
    result = engine.presence(hopper_frame)
    assert result.verdict is Verdict.present and result.passed
    assert result.distance is None
    assert result.timings.encode_ms == 0.0


@pytest.mark.parametrize("index", range(4))
def test_no_face_in_generated_non_face_images(engine: DlibFaceEngine, index: int) -> None:
    image = imagegen.non_face_images()[index]
    assert engine.detect(image) == []
    assert engine.presence(image).verdict is Verdict.no_face


def test_two_people_in_the_frame_is_multiple_faces(
    engine: DlibFaceEngine, astronaut_template: Vector
) -> None:
    frame = imagegen.two_faces_frame()
    result = engine.identity(frame, astronaut_template[None, :])
    assert result.verdict is Verdict.multiple_faces
    assert result.faces_found == 2
    assert result.distance is None  # no identity decision on an ambiguous frame


def _gate(engine: DlibFaceEngine, image: Image) -> tuple[Verdict, tuple[QualityIssue, ...]]:
    result = engine.presence(image)
    return result.verdict, result.issues


def test_gate_face_too_small(face_settings: FaceSettings) -> None:
    engine = DlibFaceEngine(face_settings.model_copy(update={"min_face_px": 150}))
    verdict, issues = _gate(engine, imagegen.webcam_frame(imagegen.grace_hopper(), face_width=110))
    assert verdict is Verdict.low_quality
    assert QualityIssue.face_too_small in issues


def test_gate_face_too_small_at_default_settings(engine: DlibFaceEngine) -> None:
    # A 75-px face is still found by the full-resolution pass, and refused.
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=75)
    result = engine.presence(frame)
    assert result.verdict is Verdict.low_quality, result
    assert result.issues == (QualityIssue.face_too_small,)


def test_gate_too_blurred(engine: DlibFaceEngine, hopper_frame: Image) -> None:
    blurred = cv2.GaussianBlur(hopper_frame, (0, 0), 3.5)
    verdict, issues = _gate(engine, blurred)
    assert verdict is Verdict.low_quality
    assert QualityIssue.too_blurred in issues


def test_gate_too_dark(engine: DlibFaceEngine, hopper_frame: Image) -> None:
    verdict, issues = _gate(engine, imagegen.adjust(hopper_frame, 0.22, 0))
    assert verdict is Verdict.low_quality
    assert QualityIssue.too_dark in issues


def test_gate_too_bright(engine: DlibFaceEngine, hopper_frame: Image) -> None:
    verdict, issues = _gate(engine, imagegen.adjust(hopper_frame, 0.35, 175))
    assert verdict is Verdict.low_quality
    assert QualityIssue.too_bright in issues


def test_gate_face_cut_off_at_the_frame_edge(engine: DlibFaceEngine) -> None:
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=200, centre=(0.1, 0.5))
    verdict, issues = _gate(engine, frame)
    assert verdict is Verdict.low_quality
    assert QualityIssue.face_cut_off in issues


def test_every_issue_has_advice_for_the_learner() -> None:
    for issue in QualityIssue:
        assert issue.advice.endswith(".") and len(issue.advice) > 10


def test_best_of_k_passes_an_honest_learner_who_blinked(
    engine: DlibFaceEngine, hopper_frame: Image, hopper_template: Vector
) -> None:
    blurred = cv2.GaussianBlur(hopper_frame, (0, 0), 3.5)
    result = engine.check(
        CheckKind.identity, [blurred, hopper_frame, hopper_frame], hopper_template
    )
    assert result.verdict is Verdict.match
    assert result.frame_index == 1
    assert len(result.frames) == 2  # stopped at the first passing frame
    assert result.frames_offered == 3


def test_best_of_k_fails_an_impostor_on_every_frame(
    engine: DlibFaceEngine, astronaut_template: Vector
) -> None:
    frames = [imagegen.webcam_frame(imagegen.grace_hopper(), face_width=w) for w in (150, 180, 210)]
    result = engine.check(CheckKind.identity, frames, astronaut_template)
    assert result.verdict is Verdict.mismatch
    assert len(result.frames) == 3
    assert all(f.verdict is Verdict.mismatch for f in result.frames)
    assert result.distance == min(f.distance for f in result.frames if f.distance is not None)


def test_failed_check_reports_the_most_telling_frame(
    engine: DlibFaceEngine, astronaut_template: Vector
) -> None:
    empty = imagegen.non_face_images()[2]
    impostor = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=180)
    result = engine.check(CheckKind.identity, [empty, impostor], astronaut_template)
    assert result.verdict is Verdict.mismatch
    assert result.frame_index == 1


def test_identity_check_needs_templates(engine: DlibFaceEngine, hopper_frame: Image) -> None:
    with pytest.raises(ValueError, match="templates"):
        engine.check(CheckKind.identity, [hopper_frame])


def test_enrolment_refuses_photos_failing_gates(engine: DlibFaceEngine) -> None:
    with pytest.raises(EnrolmentRejected) as no_face:
        engine.enrol(imagegen.non_face_images()[0])
    assert no_face.value.verdict == "no_face"
    with pytest.raises(EnrolmentRejected) as two:
        engine.enrol(imagegen.two_faces_frame())
    assert two.value.verdict == "multiple_faces"
    with pytest.raises(EnrolmentRejected) as dark:
        engine.enrol(imagegen.adjust(imagegen.grace_hopper(), 0.2, 0))
    assert dark.value.verdict == "low_quality" and "too_dark" in dark.value.issues


def test_template_is_jittered_and_mirrored_and_close_to_a_plain_encoding(
    engine: DlibFaceEngine,
) -> None:
    image = imagegen.grace_hopper()
    template = engine.encode_largest(image, template=True)
    probe = engine.encode_largest(image, template=False)
    assert template is not None and probe is not None
    distance = float(np.linalg.norm(template.vector - probe.vector))
    assert 0.0 < distance < 0.2


def test_encode_all_returns_every_face(engine: DlibFaceEngine) -> None:
    faces = engine.encode_all(imagegen.two_faces_frame())
    assert len(faces) == 2
    assert all(f.vector.shape == (128,) for f in faces)
    assert float(np.linalg.norm(faces[0].vector - faces[1].vector)) > 0.6


def test_landmarks_68(engine: DlibFaceEngine, hopper_frame: Image) -> None:
    box = engine.detect(hopper_frame)[0]
    points = engine.landmarks(hopper_frame, box, points=68)
    assert len(points) == 68
    assert all(box.left - 20 <= x <= box.right + 20 for x, _ in points)

"""Roll call: every face found at classroom sizes, one-to-one assignment with a margin;
the real-face tests run with every engine, each with its own thresholds."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from config import FaceSettings
from config.settings import FaceEngineName
from tests import classgen, imagegen
from tests.classgen import Presence
from tests.verification import maskgen
from verification.dlib_engine import DlibFaceEngine
from verification.exceptions import TemplateModelMismatch
from verification.imageio import decode_image
from verification.protocols import FaceEngine
from verification.rollcall import RollCaller, assign, detect_scale, iou, label_distances
from verification.sface_engine import SFaceEngine
from verification.types import (
    FaceBox,
    FaceModel,
    FaceStatus,
    Metric,
    QualityIssue,
    RollCallParams,
    TemplateSet,
    Vector,
)

INF = float("inf")
PARAMS = RollCallParams(threshold=0.53, margin=0.06, min_face_px=40, score_min=0.3)


def statuses(decided: list[tuple[FaceStatus, int | None, float | None, float | None]]) -> list:
    return [(s.value, col) for s, col, _, _ in decided]


# -- assignment (pure) -------------------------------------------------------------


def test_clear_faces_are_assigned_one_to_one() -> None:
    m = np.array([[0.30, 0.80, 0.90], [0.85, 0.25, 0.70]])
    decided = assign(m, 0.53, 0.06)
    assert statuses(decided) == [("assigned", 0), ("assigned", 1)]
    assert decided[0][2:] == (0.30, 0.80) and decided[1][2:] == (0.25, 0.70)


def test_a_face_between_two_learners_is_left_unassigned() -> None:
    # 0.33 is within the margin of 0.30: which of the two it is would be a guess.
    decided = assign(np.array([[0.30, 0.33]]), 0.53, 0.06)
    assert statuses(decided) == [("ambiguous", None)]
    assert decided[0][2:] == (0.30, 0.33)


def test_two_faces_for_one_learner_are_both_left_unassigned() -> None:
    # A learner and a look-alike: nobody can say which face is the learner.
    decided = assign(np.array([[0.30, 0.90], [0.34, 0.95]]), 0.53, 0.06)
    assert statuses(decided) == [("ambiguous", None), ("ambiguous", None)]
    # With a clear winner, the winner is assigned and the other face is not a stranger.
    decided = assign(np.array([[0.20, 0.90], [0.45, 0.95]]), 0.53, 0.06)
    assert statuses(decided) == [("assigned", 0), ("ambiguous", None)]


def test_the_assignment_minimises_distance_with_nobody_as_an_option() -> None:
    # Pairing every face would give face 0 its second-nearest learner so that the
    # look-alike (face 1) gets learner 0; the clear pair face 0 - learner 0 wins.
    m = np.array([[0.10, 0.40], [0.45, 0.90]])
    assert statuses(assign(m, 0.53, 0.06)) == [("assigned", 0), ("ambiguous", None)]
    # A face is never given a learner when another learner is nearer to it, even
    # when that makes a complete pairing (here both faces are nearest to learner 0).
    m = np.array([[0.20, 0.30], [0.25, 0.90]])
    assert statuses(assign(m, 0.53, 0.0)) == [("ambiguous", None), ("ambiguous", None)]


def test_strangers_and_empty_rosters() -> None:
    decided = assign(np.array([[0.70, 0.80], [0.61, INF]]), 0.53, 0.06)
    assert statuses(decided) == [("unknown", None), ("unknown", None)]
    assert decided[0][2:] == (0.70, 0.80) and decided[1][2:] == (0.61, None)
    assert statuses(assign(np.zeros((2, 0)), 0.53, 0.06)) == [("unknown", None)] * 2
    assert assign(np.zeros((0, 3)), 0.53, 0.06) == []


def test_label_distances_take_each_learners_nearest_template() -> None:
    faces = np.zeros((2, 128))
    faces[1, 0] = 1.0
    templates = np.zeros((3, 128))
    templates[0, 0], templates[1, 0], templates[2, 0] = 0.5, 2.0, 1.0
    matrix, order = label_distances(faces, templates, [7, 3, 7])
    assert order == [3, 7]
    assert matrix.tolist() == [[2.0, 0.5], [1.0, 0.0]]
    with pytest.raises(ValueError):
        label_distances(faces, templates, [1, 2])


def test_detection_scale_and_overlap() -> None:
    assert detect_scale(40) == pytest.approx(1.6) and detect_scale(64) == 1.0
    assert detect_scale(128) == 0.5 and detect_scale(1) == 4.0 and detect_scale(10_000) == 0.25
    a, b = FaceBox(0, 0, 10, 10, 1.0), FaceBox(5, 0, 15, 10, 1.0)
    assert iou(a, b) == pytest.approx(50 / 150) and iou(a, FaceBox(20, 20, 30, 30, 1.0)) == 0.0


# -- on real faces -----------------------------------------------------------------


def test_label_distances_use_the_engines_metric() -> None:
    faces = np.array([[1.0, 0.0], [0.0, 3.0]])
    templates = np.array([[2.0, 0.0], [1.0, 1.0]])
    matrix, order = label_distances(faces, templates, [4, 5], Metric.cosine)
    assert order == [4, 5]
    expected = [[0.0, 1 - 1 / np.sqrt(2)], [1.0, 1 - 1 / np.sqrt(2)]]
    assert np.allclose(matrix, expected)


@pytest.fixture(scope="module", params=[e.value for e in FaceEngineName])
def caller(request: pytest.FixtureRequest) -> RollCaller:
    settings = FaceSettings()
    if request.param == FaceEngineName.sface.value:
        return RollCaller(SFaceEngine(settings))
    return RollCaller(DlibFaceEngine(settings))


def params(engine: FaceEngine, min_face_px: int = 40) -> RollCallParams:
    """The service's parameters for this engine (its threshold, margin and score units)."""
    t = engine.settings.engine_thresholds(FaceEngineName(engine.model.engine))
    return RollCallParams(t.match_threshold, t.identify_margin, min_face_px, t.detection_score_min)


@pytest.fixture(scope="module")
def templates(caller: RollCaller) -> dict[str, Vector]:
    engine = caller.engine
    return {
        "hopper": engine.enrol(imagegen.grace_hopper(), jitters=2).vector,
        "astronaut": engine.enrol(imagegen.astronaut(), jitters=2).vector,
    }


@pytest.fixture(scope="module")
def seating() -> DlibFaceEngine:
    """Cuts people out of their photos for the generated rooms (the same for every engine)."""
    return DlibFaceEngine(FaceSettings())


def room(seating: DlibFaceEngine, face_px: int, masked: bool = False) -> np.ndarray:
    hopper = classgen.person("hopper", imagegen.grace_hopper(), seating)
    if masked:
        box = seating.detect(hopper.portrait)[0]
        points = seating.landmarks(hopper.portrait, box, 68)
        rng = np.random.default_rng(3)
        cover = maskgen.draw_mask(hopper.portrait, points, maskgen.STYLES[0], rng)
        hopper = dataclasses.replace(hopper, portrait=cover)
    astronaut = classgen.person("astronaut", imagegen.astronaut(), seating)
    return classgen.render(
        [Presence(hopper, 1, 0, 9, face_px), Presence(astronaut, 5, 0, 9, face_px)], 1.0
    )


@pytest.mark.parametrize("face_px", [40, 50, 60])
def test_small_faces_in_a_720p_frame_are_found_and_identified(
    caller: RollCaller, seating: DlibFaceEngine, templates: dict[str, Vector], face_px: int
) -> None:
    frame = room(seating, face_px)
    assert frame.shape == (720, 1280, 3)
    if isinstance(caller.engine, DlibFaceEngine):
        # dlib's single-learner fast path (a 400-px-wide copy) does not see faces this small.
        assert caller.engine.detect(frame) == []
    matrix = np.array([templates["hopper"], templates["astronaut"]])
    result = caller.call([frame], matrix, [1, 2], params(caller.engine))
    assert result.labels == (1, 2) and result.faces == 2
    for face in result.frames[0].faces:
        assert face.status is FaceStatus.assigned and face.distance is not None
        assert face_px * 0.7 <= face.box.width <= face_px * 1.5


def test_later_frames_carry_identities_without_encoding_again(
    caller: RollCaller, seating: DlibFaceEngine, templates: dict[str, Vector]
) -> None:
    frame = room(seating, 60)
    matrix = np.array([templates["hopper"], templates["astronaut"]])
    result = caller.call([frame, frame, frame], matrix, [1, 2], params(caller.engine))
    assert [f.encoded for f in result.frames] == [2, 0, 0]
    assert all(face.carried for f in result.frames[1:] for face in f.faces)
    assert result.labels == (1, 2) and all(s.frame_index == 0 for s in result.present)
    assert result.timings.encode_ms > 0


def test_a_stranger_is_unknown_and_a_double_is_ambiguous(
    caller: RollCaller, seating: DlibFaceEngine, templates: dict[str, Vector]
) -> None:
    frame = room(seating, 60)
    p = params(caller.engine)
    only_hopper = caller.call([frame], templates["hopper"][None, :], [1], p)
    assert only_hopper.labels == (1,) and only_hopper.most(FaceStatus.unknown) == 1
    # The same face enrolled under two learners: nobody is assigned that face.
    twins = np.array([templates["hopper"], templates["hopper"], templates["astronaut"]])
    result = caller.call([frame], twins, [1, 2, 3], p)
    assert result.labels == (3,) and result.most(FaceStatus.ambiguous) == 1
    # A roster with nobody enrolled: every face is unknown.
    empty = caller.call([frame], np.zeros((0, 128)), [], p)
    assert empty.labels == () and empty.most(FaceStatus.unknown) == 2


def test_a_masked_face_is_counted_but_not_identified(
    caller: RollCaller, seating: DlibFaceEngine, templates: dict[str, Vector]
) -> None:
    frame = room(seating, 70, masked=True)
    matrix = np.array([templates["hopper"], templates["astronaut"]])
    result = caller.call([frame], matrix, [1, 2], params(caller.engine))
    assert result.labels == (2,)  # the astronaut; never the masked face's learner by guess
    masked = [f for f in result.frames[0].faces if f.label is None]
    if isinstance(caller.engine, SFaceEngine):
        # YuNet finds the masked face; the occlusion gate keeps it from being identified.
        assert len(masked) == 1 and masked[0].status is FaceStatus.unusable
        assert QualityIssue.face_occluded in masked[0].issues


def test_a_roster_of_another_models_templates_is_refused(caller: RollCaller) -> None:
    other = FaceModel("other", "0" * 64, caller.engine.model.metric)
    with pytest.raises(TemplateModelMismatch):
        caller.call(
            [imagegen.two_faces_frame()], TemplateSet(other, np.zeros((1, 128))), [1], PARAMS
        )


def _load(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), max_pixels=50_000_000, max_side=20_000)


@pytest.mark.faces
def test_group_photos_nobody_is_misassigned(caller: RollCaller, faces_dir: Path) -> None:
    with (faces_dir / "manifest.csv").open() as fh:
        listed = {row["path"] for row in csv.DictReader(fh)}
    roster = {
        "barack_obama": "barack_obama/1.jpg",
        "joe_biden": "joe_biden/2.jpg",  # groups/5.jpg holds joe_biden/1.jpg's photo
        "angelina_jolie": "angelina_jolie/1.jpg",
        "jennifer_aniston": "jennifer_aniston/1.jpg",
        "matt_damon": "matt_damon/1.jpg",
        "katy_perry": "katy_perry/1.jpg",
        "elon_musk": "elon_musk/1.jpg",
        "scarlett_johansson": "scarlett_johansson/1.jpg",
    }
    wanted = set(roster.values()) | {f"groups/{n}.jpg" for n in (4, 5, 6, 7, 8)}
    if not wanted <= listed:
        pytest.skip(f"not in the labelled set: {sorted(wanted - listed)}")
    names = list(roster)
    matrix = np.array(
        [caller.engine.enrol(_load(faces_dir / roster[n]), jitters=2).vector for n in names]
    )
    labels = list(range(len(names)))

    def call(n: int, min_face_px: int = 40) -> list[tuple[str, str | None]]:
        p = params(caller.engine, min_face_px)
        result = caller.call([_load(faces_dir / f"groups/{n}.jpg")], matrix, labels, p)
        faces = sorted(result.frames[0].faces, key=lambda f: f.box.left)
        return [(f.status.value, names[f.label] if f.label is not None else None) for f in faces]

    def assigned(found: list[tuple[str, str | None]]) -> list[str | None]:
        return [label for status, label in found if status == "assigned"]

    # Biden (left) and Obama (right); the child looking down (75 px, head bowed) is too
    # small for dlib at 40 px and a stranger to SFace: in no case a learner.
    four = call(4)
    assert assigned(four) == ["joe_biden", "barack_obama"] and len(four) in (2, 3)
    assert call(5) == [("assigned", "barack_obama"), ("assigned", "joe_biden")]
    # Angelina Jolie and Brad Pitt, who is not on the roster.
    assert call(6) == [("assigned", "angelina_jolie"), ("unknown", None)]
    # Six of the Friends cast: nobody on the roster is claimed for any of them but
    # Jennifer Aniston, whose enrolment photo is far from this one (dlib leaves her
    # unassigned; SFace finds her).
    friends = call(7)
    assert len(friends) == 6
    assert all(label in (None, "jennifer_aniston") for _, label in friends)
    # A party photo with faces of about 35 px, nobody on the roster: found when asked for
    # faces that small (dlib misses them at 40 px; YuNet finds them at both sizes).
    small, larger = call(8, min_face_px=25), call(8, min_face_px=40)
    assert len(small) >= 5 and not assigned(small) and not assigned(larger)
    if isinstance(caller.engine, DlibFaceEngine):
        assert len(larger) < 5

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config import FaceSettings
from config.settings import FaceEngineName
from tests import imagegen
from tests.conftest import unavailable
from verification.dlib_engine import DlibFaceEngine
from verification.protocols import FaceEngine
from verification.sface_engine import SFaceEngine
from verification.types import Image, Vector

ENGINES = [e.value for e in FaceEngineName]


@pytest.fixture(scope="session")
def face_settings() -> FaceSettings:
    return FaceSettings()


@pytest.fixture(scope="session")
def engine(face_settings: FaceSettings) -> DlibFaceEngine:
    return DlibFaceEngine(face_settings)


@pytest.fixture(scope="session")
def sface_engine(face_settings: FaceSettings) -> SFaceEngine:
    return SFaceEngine(face_settings)


@pytest.fixture(scope="session", params=ENGINES)
def any_engine(
    request: pytest.FixtureRequest, engine: DlibFaceEngine, sface_engine: SFaceEngine
) -> FaceEngine:
    """Each engine in turn: the contract suite runs against both."""
    return sface_engine if request.param == FaceEngineName.sface.value else engine


@pytest.fixture(scope="session")
def astronaut_frame() -> Image:
    return imagegen.webcam_frame(imagegen.astronaut(), face_width=170)


@pytest.fixture(scope="session")
def hopper_frame() -> Image:
    return imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170)


@pytest.fixture(scope="session")
def astronaut_template(engine: DlibFaceEngine) -> Vector:
    return engine.enrol(imagegen.astronaut()).vector


@pytest.fixture(scope="session")
def hopper_template(engine: DlibFaceEngine) -> Vector:
    return engine.enrol(imagegen.grace_hopper()).vector


_TEMPLATES: dict[tuple[str, str], Vector] = {}


def template_of(engine: FaceEngine, who: str) -> Vector:
    """The enrolment template of a packaged photo ('astronaut' or 'hopper') made by
    `engine`, computed once per session and engine."""
    key = (engine.model.key, who)
    if key not in _TEMPLATES:
        photo = imagegen.astronaut() if who == "astronaut" else imagegen.grace_hopper()
        _TEMPLATES[key] = engine.enrol(photo).vector
    return _TEMPLATES[key]


EASTASIA_DIR = Path(
    os.environ.get(
        "SUPERVISOR_FACES_EASTASIA_DIR",
        str(Path(__file__).resolve().parents[2].parent / "shared" / "faces-eastasia"),
    )
)


@pytest.fixture(scope="session")
def eastasia_dir() -> Path:
    """The East-Asian development set beside the checkout: tests that need it skip
    with the reason where it is absent, and fail under CI (CI=true)."""
    if not (EASTASIA_DIR / "manifest.csv").is_file():
        unavailable(
            f"East-Asian face set not found at {EASTASIA_DIR} (set SUPERVISOR_FACES_EASTASIA_DIR)"
        )
    return EASTASIA_DIR

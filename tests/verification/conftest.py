from __future__ import annotations

import pytest

from config import FaceSettings
from tests import imagegen
from verification.dlib_engine import DlibFaceEngine
from verification.types import Image, Vector


@pytest.fixture(scope="session")
def face_settings() -> FaceSettings:
    return FaceSettings()


@pytest.fixture(scope="session")
def engine(face_settings: FaceSettings) -> DlibFaceEngine:
    return DlibFaceEngine(face_settings)


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

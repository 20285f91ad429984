"""The engine factory: `face.engine` chooses the implementation of `FaceEngine`.

Call once per process (a pool initializer, a worker's start-up): models load in
the constructor. A missing or altered model file raises `ModelsUnavailable` (or
its subclass `ModelFileRejected`, naming the file and the package to install);
the factory never falls back to the other engine, whose templates would not
match the ones stored.
"""

from __future__ import annotations

from config import FaceSettings
from config.settings import FaceEngineName
from verification.dlib_engine import DlibFaceEngine
from verification.models import SFACE_SHA256, file_sha256, load_sface_models, locate_models
from verification.protocols import FaceEngine
from verification.sface_engine import SFaceEngine
from verification.types import FaceModel, Metric


def make_engine(settings: FaceSettings, engine: FaceEngineName | None = None) -> FaceEngine:
    """The engine named by `engine` (default: `settings.engine`), models loaded."""
    chosen = engine or settings.engine
    if chosen is FaceEngineName.sface:
        return SFaceEngine(settings)
    if chosen is FaceEngineName.dlib:
        return DlibFaceEngine(settings)
    raise ValueError(f"unknown face engine {chosen!r}")


def model_of(settings: FaceSettings, engine: FaceEngineName | None = None) -> FaceModel:
    """The model the engine named by `engine` (default: `settings.engine`) makes and
    compares, without loading it: what templates are filtered by in a process that runs
    no engine itself."""
    chosen = engine or settings.engine
    if chosen is FaceEngineName.sface:
        return FaceModel("sface", SFACE_SHA256, Metric.cosine)
    if chosen is FaceEngineName.dlib:
        return FaceModel("dlib", file_sha256(locate_models().encoder), Metric.euclidean)
    raise ValueError(f"unknown face engine {chosen!r}")


def check_models(settings: FaceSettings) -> FaceModel:
    """Read and check the configured engine's model files (SHA-256 pinned), as a
    process does before it starts any engine: raises `ModelFileRejected` naming the
    file and the package to install, or `ModelsUnavailable`. Returns the model."""
    if settings.engine is FaceEngineName.sface:
        load_sface_models()
    else:
        locate_models()
    return model_of(settings)

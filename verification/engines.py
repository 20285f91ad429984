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
from verification.protocols import FaceEngine
from verification.sface_engine import SFaceEngine


def make_engine(settings: FaceSettings, engine: FaceEngineName | None = None) -> FaceEngine:
    """The engine named by `engine` (default: `settings.engine`), models loaded."""
    chosen = engine or settings.engine
    if chosen is FaceEngineName.sface:
        return SFaceEngine(settings)
    if chosen is FaceEngineName.dlib:
        return DlibFaceEngine(settings)
    raise ValueError(f"unknown face engine {chosen!r}")

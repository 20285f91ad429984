"""The face engine named by the settings (`face.engine`)."""

from __future__ import annotations

from config import FaceSettings
from verification.dlib_engine import DlibFaceEngine
from verification.protocols import FaceEngine


def make_engine(settings: FaceSettings) -> FaceEngine:
    """Build the configured engine; its models load here, once per process."""
    return DlibFaceEngine(settings)

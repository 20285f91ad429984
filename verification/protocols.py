"""The protocol of a face engine; `DlibFaceEngine` and `SFaceEngine` implement it.

Build one with `verification.engines.make_engine(face_settings)`. Distances and
thresholds are in the units of the engine's model (`FaceEngine.model.metric`);
templates of another model are refused, never compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from config import FaceSettings
from verification.quality import Grey
from verification.types import (
    CheckKind,
    CheckResult,
    FaceBox,
    FaceEncoding,
    FaceModel,
    FrameResult,
    Image,
    Matrix,
    QualityMeasures,
    TemplateSet,
)


class FaceEngine(Protocol):
    """Synchronous, CPU-bound face work on RGB uint8 frames. Safe in a process pool."""

    settings: FaceSettings

    @property
    def model(self) -> FaceModel:
        """The model whose encodings this engine makes and compares."""
        ...

    @property
    def threshold(self) -> float:
        """The match threshold in force, in the model's distance units."""
        ...

    def detect(self, image: Image) -> list[FaceBox]: ...

    def detect_near(self, image: Image, near: FaceBox) -> list[FaceBox]: ...

    def detect_all(self, image: Image, min_face_px: int, score_min: float) -> list[FaceBox]:
        """Every face of at least about `min_face_px` px (classroom roll call)."""
        ...

    def landmarks(self, image: Image, box: FaceBox, points: int = 5) -> list[tuple[int, int]]: ...

    def measure_face(
        self, image: Image, box: FaceBox, occlusion: bool = False, grey: Grey | None = None
    ) -> tuple[QualityMeasures, list[tuple[int, int]]]:
        """Quality measures of one face (with the lower face's occlusion when asked)
        and the 5 landmarks they used."""
        ...

    def encode_faces(self, image: Image, boxes: Sequence[FaceBox]) -> Matrix:
        """One encoding (one pass) per box found by this engine, rows in order."""
        ...

    def presence(self, image: Image) -> FrameResult: ...

    def identity(self, image: Image, templates: Matrix | TemplateSet) -> FrameResult: ...

    def check(
        self,
        kind: CheckKind,
        frames: Sequence[Image],
        templates: Matrix | TemplateSet | None = None,
    ) -> CheckResult: ...

    def enrol(self, image: Image, jitters: int | None = None) -> FaceEncoding: ...

    def encode_all(self, image: Image, jitters: int = 1) -> list[FaceEncoding]: ...

    def encode_largest(self, image: Image, template: bool = False) -> FaceEncoding | None: ...

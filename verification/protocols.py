"""The protocol of a face engine; `DlibFaceEngine` is the implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from verification.types import (
    CheckKind,
    CheckResult,
    FaceBox,
    FaceEncoding,
    FrameResult,
    Image,
    Matrix,
)


class FaceEngine(Protocol):
    """Synchronous, CPU-bound face work on RGB uint8 frames. Safe in a process pool."""

    def detect(self, image: Image) -> list[FaceBox]: ...

    def detect_near(self, image: Image, near: FaceBox) -> list[FaceBox]: ...

    def landmarks(self, image: Image, box: FaceBox, points: int = 5) -> list[tuple[int, int]]: ...

    def presence(self, image: Image) -> FrameResult: ...

    def identity(self, image: Image, templates: Matrix) -> FrameResult: ...

    def check(
        self, kind: CheckKind, frames: Sequence[Image], templates: Matrix | None = None
    ) -> CheckResult: ...

    def enrol(self, image: Image, jitters: int | None = None) -> FaceEncoding: ...

    def encode_all(self, image: Image, jitters: int = 1) -> list[FaceEncoding]: ...

    def encode_largest(self, image: Image, template: bool = False) -> FaceEncoding | None: ...

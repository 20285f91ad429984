"""`supervisor backup create|check|restore`: a backup restored into a fresh database,
of either kind, holds the same chains, templates and evidence, and verifies."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from config import Settings
from config.settings import DatabaseSettings, EvidenceSettings
from storage import Storage, open_storage
from storage.canonical import canonical_json
from storage.migrate import upgrade
from storage.types import DeliveryMode, NewEvent
from supervisor.cli.main import main
from supervisor.inspect.sealing import make_seal
from tests.storage.helpers import TEMPLATE_KEY, id_number, tamper, vector

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _url(kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / name / 'supervisor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _open(url: str, evidence: Path) -> Storage:
    upgrade(url)
    return open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=evidence), TEMPLATE_KEY
    )


def _populate(store: Storage) -> None:
    r = store.registry
    inst = r.create_institution("Skills Academy")
    course = r.create_course(inst.id, "Electrician", 40, DeliveryMode.online)
    for seed in (1, 2):
        learner = r.create_learner(inst.id, f"Learner {seed}", id_number(seed))
        r.record_consent(learner.id, "v1", NOW)
        frame = store.evidence.put(b"\xff\xd8jpeg%d" % seed, "image/jpeg", NOW + timedelta(days=9))
        store.templates.add(learner.id, vector(seed), frame.sha256)
        session = r.create_session(
            f"s{seed}", f"session:s{seed}", learner.id, course.id, inst.id, NOW
        )
        store.ledger.append(
            session.chain_id,
            [
                NewEvent("check", canonical_json({"evidence": frame.sha256, "n": i}))
                for i in range(5)
            ],
        )
    r.raise_flag("duplicate_identity", "same face", inst.id, 1, 2)
    seal_key = Settings().security.seal_key.get_secret_value()
    assert make_seal(store, seal_key, NOW) is not None
    # A frame past retention and purged: its row (and hash) must survive the trip.
    store.evidence.put(b"old frame", "image/jpeg", NOW - timedelta(days=1))
    store.evidence.purge_expired(NOW)


def _cli(url: str, evidence: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SUPERVISOR_DATABASE__URL", url)
    monkeypatch.setenv("SUPERVISOR_EVIDENCE__DIRECTORY", str(evidence))
    monkeypatch.setenv("SUPERVISOR_SECURITY__TEMPLATE_KEY", TEMPLATE_KEY)
    return main(list(args))


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("sqlite", "sqlite"),
        pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
        pytest.param("postgres", "sqlite", marks=pytest.mark.postgres),
    ],
)
def test_backup_restores_into_a_fresh_database_and_every_chain_verifies(
    source: str,
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src_url = _url(source, tmp_path, "src", request)
    # Two PostgreSQL databases in one test would need two fixtures; the mixed pairs
    # cover PostgreSQL on each side.
    dst_url = _url(target, tmp_path, "dst", request)
    src_ev, dst_ev = tmp_path / "ev-src", tmp_path / "ev-dst"
    with _open(src_url, src_ev) as src:
        _populate(src)
        heads = sorted((h.chain_id, h.seq, h.hash) for h in src.ledger.heads())
        templates = {t.learner_id: t.vector for t in src.templates.all()}
        records = {sha: src.evidence.record(sha) for sha in _shas(src)}
    pack = tmp_path / "backup.zip"
    assert _cli(src_url, src_ev, "backup", "create", str(pack), monkeypatch=monkeypatch) == 0
    assert _cli(src_url, src_ev, "backup", "check", str(pack), monkeypatch=monkeypatch) == 0

    assert _cli(dst_url, dst_ev, "backup", "restore", str(pack), monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "seals: OK" in out and "OK: every chain verifies" in out
    with _open(dst_url, dst_ev) as dst:
        assert sorted((h.chain_id, h.seq, h.hash) for h in dst.ledger.heads()) == heads
        assert dst.ledger.verify().ok
        got = {t.learner_id: t.vector for t in dst.templates.all()}
        assert got.keys() == templates.keys()
        for learner_id, vec in templates.items():
            assert np.allclose(got[learner_id], vec)  # decrypts with the same key
        for sha, record in records.items():
            assert dst.evidence.record(sha) == record
            if record.purged_at is None:
                assert dst.evidence.get(sha)  # the file came along and matches its hash
        assert [f.kind for f in dst.registry.list_flags()] == ["duplicate_identity"]
        seal = dst.seals.latest()
        assert seal is not None and seal.chains == len(heads)
        # Ids continue after the restored ones (sequences moved on PostgreSQL).
        extra = dst.registry.create_learner(1, "Learner 3", id_number(3))
        assert extra.id == 3

    # A second restore into the now non-empty database is refused and changes nothing.
    assert _cli(dst_url, dst_ev, "backup", "restore", str(pack), monkeypatch=monkeypatch) == 1
    assert "not empty" in capsys.readouterr().err


def _shas(store: Storage) -> list[str]:
    with store.db.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT sha256 FROM evidence")]


def _rewrite(pack: Path, out: Path, member: str, edit: bytes, fix_manifest: bool) -> None:
    """Copy `pack` to `out` with `member` replaced by `edit`, optionally re-hashing it."""
    import hashlib

    with zipfile.ZipFile(pack) as zin, zipfile.ZipFile(out, "w") as zout:
        manifest = json.loads(zin.read("manifest.json"))
        for name in zin.namelist():
            if name == "manifest.json":
                continue
            data = edit if name == member else zin.read(name)
            zout.writestr(name, data)
        if fix_manifest:
            manifest["members"][member]["sha256"] = hashlib.sha256(edit).hexdigest()
        zout.writestr("manifest.json", json.dumps(manifest))


def test_an_altered_backup_is_refused_or_caught_by_the_chain_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src_url = f"sqlite:///{tmp_path / 'src' / 'db.sqlite'}"
    with _open(src_url, tmp_path / "ev") as src:
        _populate(src)
    pack = tmp_path / "backup.zip"
    assert (
        _cli(src_url, tmp_path / "ev", "backup", "create", str(pack), monkeypatch=monkeypatch) == 0
    )
    with zipfile.ZipFile(pack) as zf:
        ledger = zf.read("tables/ledger_events.jsonl")
    edited = ledger.replace(b'\\"n\\":2', b'\\"n\\":7', 1)
    assert edited != ledger

    # Edited without fixing the manifest: the check names the member; nothing is loaded.
    bad = tmp_path / "bad.zip"
    _rewrite(pack, bad, "tables/ledger_events.jsonl", edited, fix_manifest=False)
    assert _cli(src_url, tmp_path / "ev", "backup", "check", str(bad), monkeypatch=monkeypatch) == 1
    assert "tables/ledger_events.jsonl was altered" in capsys.readouterr().err
    dst_url = f"sqlite:///{tmp_path / 'dst' / 'db.sqlite'}"
    assert (
        _cli(dst_url, tmp_path / "ev2", "backup", "restore", str(bad), monkeypatch=monkeypatch) == 1
    )
    with _open(dst_url, tmp_path / "ev2") as dst:
        assert list(dst.ledger.heads()) == []

    # Edited with a consistent manifest: the rows load but the chains do not verify,
    # and the restore says so and fails.
    forged = tmp_path / "forged.zip"
    _rewrite(pack, forged, "tables/ledger_events.jsonl", edited, fix_manifest=True)
    other = f"sqlite:///{tmp_path / 'dst2' / 'db.sqlite'}"
    assert (
        _cli(other, tmp_path / "ev3", "backup", "restore", str(forged), monkeypatch=monkeypatch)
        == 1
    )
    err = capsys.readouterr().err
    assert "BAD: chain session:s1 breaks at seq 3" in err


def test_backup_of_a_tampered_database_carries_the_break_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src_url = f"sqlite:///{tmp_path / 'src' / 'db.sqlite'}"
    with _open(src_url, tmp_path / "ev") as src:
        _populate(src)
        tamper(
            src, "UPDATE ledger_events SET payload = '{}' WHERE chain_id = 'session:s2' AND seq = 1"
        )
    pack = tmp_path / "backup.zip"
    assert (
        _cli(src_url, tmp_path / "ev", "backup", "create", str(pack), monkeypatch=monkeypatch) == 0
    )
    dst = f"sqlite:///{tmp_path / 'dst' / 'db.sqlite'}"
    assert _cli(dst, tmp_path / "ev2", "backup", "restore", str(pack), monkeypatch=monkeypatch) == 1
    assert "BAD: chain session:s2 breaks at seq 1" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_damaged_frame_is_named_and_everything_else_is_backed_up(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One evidence file damaged on disk (bytes changed after it was stored) no longer
    aborts the backup: the rest is written, the frame is named in the manifest and on
    stderr, and the command exits 2; the backup restores and says what it lacks."""
    url = _url(kind, tmp_path, "src", request)
    ev_dir = tmp_path / "ev"
    with _open(url, ev_dir) as src:
        _populate(src)
        live = sorted(s for s in _shas(src) if src.evidence.record(s).purged_at is None)
        assert len(live) == 2
        bad, good = live
        path = src.evidence.path_for(bad)  # type: ignore[attr-defined]
    path.write_bytes(b"\xff\xd8 this frame was damaged on disk")
    pack = tmp_path / "backup.zip"
    code = _cli(url, ev_dir, "backup", "create", str(pack), monkeypatch=monkeypatch)
    out, err = capsys.readouterr()
    assert code == 2
    assert "backup written" in out and bad in err and "DAMAGED: 1 evidence frame" in err
    assert pack.stat().st_mode & 0o777 == 0o600  # names and ID numbers inside
    with zipfile.ZipFile(pack) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist())
    assert manifest["damaged_evidence"] == [bad]
    assert f"evidence/{good}" in names and f"evidence/{bad}" not in names
    assert "tables/ledger_events.jsonl" in names and "tables/learners.jsonl" in names
    assert _cli(url, ev_dir, "backup", "check", str(pack), monkeypatch=monkeypatch) == 0

    dst_url = f"sqlite:///{tmp_path / 'dst' / 'supervisor.db'}"
    dst_ev = tmp_path / "ev-dst"
    capsys.readouterr()
    assert _cli(dst_url, dst_ev, "backup", "restore", str(pack), monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"damaged when the backup was made and are not in it: {bad}" in out
    with _open(dst_url, dst_ev) as dst:
        assert dst.ledger.verify().ok
        assert dst.evidence.get(good)
        restored = dst.evidence.path_for(good)  # type: ignore[attr-defined]
        assert restored.stat().st_mode & 0o777 == 0o600
        assert restored.parent.stat().st_mode & 0o777 == 0o700

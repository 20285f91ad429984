"""EvidenceStore contract (local folder + database rows), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import Storage
from storage.exceptions import EvidencePurged, IntegrityViolation, InvalidInput, NotFound
from tests.storage.conftest import OpenStore

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def test_put_stores_by_hash_in_fan_out_folders(store: Storage, evidence_dir: Path) -> None:
    record = store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=180))
    digest = hashlib.sha256(JPEG).hexdigest()
    assert record.sha256 == digest and record.size == len(JPEG)
    assert record.content_type == "image/jpeg" and record.purged_at is None
    path = evidence_dir / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == JPEG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]
    assert store.evidence.get(digest) == JPEG
    assert store.evidence.record(digest) == record


def test_put_is_idempotent_and_keeps_the_later_retention(store: Storage) -> None:
    first = store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=10))
    again = store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=5))
    assert again == first
    longer = store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=30))
    assert longer.retain_until == NOW + timedelta(days=30) and longer.stored_at == first.stored_at


def test_purge_deletes_expired_files_and_keeps_their_hashes(
    store: Storage, evidence_dir: Path
) -> None:
    old = store.evidence.put(b"old frame", "image/jpeg", NOW - timedelta(days=1))
    due = store.evidence.put(b"due now", "image/jpeg", NOW)
    kept = store.evidence.put(b"kept frame", "image/png", NOW + timedelta(days=1))
    purged = store.evidence.purge_expired(NOW)
    assert sorted(purged) == sorted([old.sha256, due.sha256])
    for digest in purged:
        assert not (evidence_dir / digest[:2] / digest[2:4] / digest).exists()
        record = store.evidence.record(digest)
        assert record.purged_at == NOW and record.size > 0
        with pytest.raises(EvidencePurged):
            store.evidence.get(digest)
    assert store.evidence.get(kept.sha256) == b"kept frame"
    assert store.evidence.purge_expired(NOW) == []  # nothing left to do
    # Storing purged bytes again restores them.
    restored = store.evidence.put(b"old frame", "image/jpeg", NOW + timedelta(days=3))
    assert restored.purged_at is None and store.evidence.get(old.sha256) == b"old frame"


def test_erase_deletes_files_before_retention_and_keeps_their_hashes(
    store: Storage, evidence_dir: Path
) -> None:
    """What withdrawal of consent does to enrolment photos: gone now, not at retention."""
    a = store.evidence.put(b"photo a", "image/jpeg", NOW + timedelta(days=100))
    b = store.evidence.put(b"photo b", "image/jpeg", NOW + timedelta(days=100))
    kept = store.evidence.put(b"check frame", "image/jpeg", NOW + timedelta(days=100))
    unknown = "0" * 64
    at = NOW + timedelta(minutes=5)
    assert store.evidence.erase([a.sha256, b.sha256, unknown], at) == sorted([a.sha256, b.sha256])
    for digest in (a.sha256, b.sha256):
        assert not (evidence_dir / digest[:2] / digest[2:4] / digest).exists()
        record = store.evidence.record(digest)
        assert record.purged_at == at and record.retain_until == NOW + timedelta(days=100)
        with pytest.raises(EvidencePurged):
            store.evidence.get(digest)
    assert store.evidence.get(kept.sha256) == b"check frame"
    assert store.evidence.erase([a.sha256], at) == []  # already deleted: nothing to do
    with pytest.raises(InvalidInput):
        store.evidence.erase(["../etc/passwd"], at)


def test_evidence_folders_are_the_owners_only(open_store: OpenStore, evidence_dir: Path) -> None:
    """Frames are faces: folders 0700 and files 0600 whatever the umask; a folder left
    0755 by an earlier version is narrowed when the store opens it."""
    old = os.umask(0o022)
    try:
        evidence_dir.mkdir(mode=0o755)
        os.chmod(evidence_dir, 0o755)
        store = open_store()
        assert stat.S_IMODE(evidence_dir.stat().st_mode) == 0o700
        digest = store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=1)).sha256
        path = evidence_dir / digest[:2] / digest[2:4] / digest
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)


def test_unknown_and_malformed_hashes(store: Storage, evidence_dir: Path) -> None:
    with pytest.raises(NotFound):
        store.evidence.get("0" * 64)
    (evidence_dir.parent / "secret.txt").write_text("do not serve")
    tricks = [
        "../secret.txt",
        "../../" + "a" * 58,
        "A" * 64,
        "a" * 63,
        "a" * 64 + "\n",
        "/etc/passwd",
        "g" * 64,
        "",
    ]
    for trick in tricks:
        with pytest.raises(InvalidInput):
            store.evidence.get(trick)
        with pytest.raises(InvalidInput):
            store.evidence.record(trick)


def test_bad_puts_are_refused(store: Storage, evidence_dir: Path) -> None:
    for data, content_type, until in [
        (b"", "image/jpeg", NOW),
        ("text", "image/jpeg", NOW),
        (b"x", "jpeg", NOW),
        (b"x", "image/jpeg; x=../..", NOW),
        (b"x", "image/jpeg", datetime(2026, 1, 1)),
    ]:
        with pytest.raises(InvalidInput):
            store.evidence.put(data, content_type, until)  # type: ignore[arg-type]
    assert not any(p.is_file() for p in evidence_dir.rglob("*"))


def test_a_damaged_file_is_reported(store: Storage, evidence_dir: Path) -> None:
    record = store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=1))
    path = evidence_dir / record.sha256[:2] / record.sha256[2:4] / record.sha256
    path.write_bytes(b"swapped image")
    with pytest.raises(IntegrityViolation, match="damaged"):
        store.evidence.get(record.sha256)
    # Putting the real bytes again repairs the file.
    store.evidence.put(JPEG, "image/jpeg", NOW + timedelta(days=1))
    assert store.evidence.get(record.sha256) == JPEG

"""`EvidenceStore` on a local folder, with metadata rows in the database.

Files are content-addressed: ``<directory>/ab/cd/abcd...`` (the full lowercase hex
SHA-256, under two levels of fan-out from its first four characters). A file is
written to a temporary name in its final folder, fsynced, renamed into place and
the folder fsynced, so a reader never sees a partial image. Only 64-lowercase-hex
names are ever turned into paths, which rules out path tricks. Frames are faces:
files are created 0600 and the folders the store creates 0700 (owner only).

The database row is the authority on whether an image should exist: after a
purge the row stays with `purged_at` set, so the hash still proves the image
existed (ledger events carry it).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import Database
from storage.exceptions import (
    EvidencePurged,
    EvidenceStoreFull,
    EvidenceStoreUnavailable,
    IntegrityViolation,
    InvalidInput,
    NotFound,
    StorageUnavailable,
)
from storage.models import evidence as T
from storage.types import EvidenceRecord
from storage.validate import aware, sha256_hex

_CONTENT_TYPE: Final = re.compile(
    r"[a-z0-9][a-z0-9!#$&^_.+-]{0,47}/[a-z0-9][a-z0-9!#$&^_.+-]{0,47}"
)
_PURGE_CHUNK: Final = 500
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


def evidence_root(directory: Path) -> Path:
    """The folder of the evidence files, as the store and the backup name it."""
    return Path(directory).expanduser().resolve()


def frame_path(root: Path, sha256: str) -> Path:
    """Where the image with this hash lives under `root` (whether or not it exists)."""
    sha256_hex(sha256)
    return root / sha256[:2] / sha256[2:4] / sha256


class LocalEvidenceStore:
    """Content-addressed evidence images. Thread-safe and safe across processes."""

    def __init__(self, db: Database, directory: Path) -> None:
        self._db = db
        self._root = evidence_root(directory)
        try:
            make_dirs(self._root)
            # A folder from before (0755): others could list whose faces are kept.
            st = self._root.stat()
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                os.chmod(self._root, DIR_MODE)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create evidence folder {self._root}: {exc}") from None

    @property
    def directory(self) -> Path:
        return self._root

    def path_for(self, sha256: str) -> Path:
        """Where the image with this hash lives (whether or not it exists)."""
        return frame_path(self._root, sha256)

    def put(self, data: bytes, content_type: str, retain_until: datetime) -> EvidenceRecord:
        """Store by SHA-256 (idempotent); returns the record.

        Storing the same bytes again keeps the later of the two retention dates and
        restores a purged image.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"evidence must be bytes (got {type(data).__name__})")
        data = bytes(data)
        if not data:
            raise InvalidInput("evidence must not be empty")
        if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
            raise InvalidInput(f"content type must look like 'image/jpeg' (got {content_type!r})")
        aware(retain_until, "retain_until")
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        # Written before the row exists: a crash leaves at most an orphan file,
        # never a row without its image.
        if not _holds(path, sha256):
            _write_atomic(path, data)
        now = datetime.now(UTC)
        insert = pg_insert(T) if self._db.dialect == "postgresql" else sqlite_insert(T)
        with self._db.write() as conn:
            conn.execute(
                insert.values(
                    sha256=sha256,
                    size=len(data),
                    content_type=content_type,
                    stored_at=now,
                    retain_until=retain_until,
                    purged_at=None,
                ).on_conflict_do_nothing(index_elements=[T.c.sha256])
            )
            # Locked: a concurrent purge either finished before (we restore the
            # file below) or waits for us and then sees the new retention date.
            row = conn.execute(select(T).where(T.c.sha256 == sha256).with_for_update()).one()
            changes: dict[str, Any] = {}
            if row.retain_until < retain_until:
                changes["retain_until"] = retain_until
            if row.purged_at is not None:
                changes["purged_at"] = None
                changes["stored_at"] = now
            if not _holds(path, sha256):
                _write_atomic(path, data)
            if changes:
                conn.execute(update(T).where(T.c.sha256 == sha256).values(**changes))
                row = conn.execute(select(T).where(T.c.sha256 == sha256)).one()
        return _record(row)

    def get(self, sha256: str) -> bytes:
        """Raises `NotFound` for an unknown hash and `EvidencePurged` for a purged one.

        The bytes are checked against their hash; a damaged file raises
        `IntegrityViolation`.
        """
        record = self.record(sha256)
        if record.purged_at is not None:
            raise EvidencePurged(f"evidence {sha256} was purged at {record.purged_at.isoformat()}")
        try:
            data = self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            if record.retain_until <= datetime.now(UTC):
                raise EvidencePurged(f"evidence {sha256} expired and was deleted") from None
            raise IntegrityViolation(
                f"evidence {sha256} is recorded but its file is missing"
            ) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read evidence {sha256}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityViolation(f"evidence file {sha256} is damaged (hash mismatch)")
        return data

    def record(self, sha256: str) -> EvidenceRecord:
        sha256_hex(sha256)
        with self._db.read() as conn:
            row = conn.execute(select(T).where(T.c.sha256 == sha256)).first()
        if row is None:
            raise NotFound(f"evidence {sha256} not found")
        return _record(row)

    def records(self, hashes: Iterable[str]) -> dict[str, EvidenceRecord]:
        """The records of those hashes that are known (one query per 500 hashes)."""
        wanted = sorted({sha256_hex(h) for h in hashes})
        out: dict[str, EvidenceRecord] = {}
        with self._db.read() as conn:
            for i in range(0, len(wanted), _PURGE_CHUNK):
                chunk = wanted[i : i + _PURGE_CHUNK]
                for row in conn.execute(select(T).where(T.c.sha256.in_(chunk))):
                    out[row.sha256] = _record(row)
        return out

    def erase(self, hashes: Iterable[str], at: datetime) -> list[str]:
        """Delete these images now, before their retention date (a learner's enrolment
        photos when consent is withdrawn); keep their records with `purged_at` = `at`,
        so the hash still says the image existed. Unknown and already deleted hashes
        are skipped. Returns the hashes deleted."""
        aware(at, "at")
        wanted = sorted({sha256_hex(h) for h in hashes})
        erased: list[str] = []
        for i in range(0, len(wanted), _PURGE_CHUNK):
            chunk = wanted[i : i + _PURGE_CHUNK]
            with self._db.write() as conn:
                found = list(
                    conn.execute(
                        select(T.c.sha256)
                        .where(T.c.sha256.in_(chunk), T.c.purged_at.is_(None))
                        .order_by(T.c.sha256)
                        .with_for_update()
                    ).scalars()
                )
                for sha256 in found:
                    try:
                        self.path_for(sha256).unlink(missing_ok=True)
                    except OSError as exc:
                        raise StorageUnavailable(
                            f"cannot delete evidence {sha256}: {exc}"
                        ) from None
                if found:
                    conn.execute(update(T).where(T.c.sha256.in_(found)).values(purged_at=at))
            erased.extend(found)
        return erased

    def purge_expired(self, now: datetime) -> list[str]:
        """Delete images whose retention has passed (retain_until <= now); keep their
        records with `purged_at` = now. Returns the purged hashes."""
        aware(now, "now")
        purged: list[str] = []
        while True:
            with self._db.write() as conn:
                hashes = list(
                    conn.execute(
                        select(T.c.sha256)
                        .where(T.c.retain_until <= now, T.c.purged_at.is_(None))
                        .order_by(T.c.retain_until, T.c.sha256)
                        .limit(_PURGE_CHUNK)
                        .with_for_update()
                    ).scalars()
                )
                if not hashes:
                    return purged
                # Files go inside the transaction: if the COMMIT then fails, the rows
                # are still expired and the next purge marks them.
                for sha256 in hashes:
                    try:
                        self.path_for(sha256).unlink(missing_ok=True)
                    except OSError as exc:
                        raise StorageUnavailable(
                            f"cannot delete evidence {sha256}: {exc}"
                        ) from None
                conn.execute(update(T).where(T.c.sha256.in_(hashes)).values(purged_at=now))
            purged.extend(hashes)


def _record(r: Row[Any]) -> EvidenceRecord:
    return EvidenceRecord(
        r.sha256, r.size, r.content_type, r.stored_at, r.retain_until, r.purged_at
    )


def _holds(path: Path, sha256: str) -> bool:
    """True when `path` exists and holds exactly the bytes with this hash."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() == sha256
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        created = make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mode 0600 (FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename (and any new fan-out folder) is durable only once the
        # folders holding the new entries are fsynced.
        for folder in [path.parent, *created]:
            _fsync_dir(folder)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EvidenceStoreFull(f"no space left to write evidence {path.name}") from None
        raise EvidenceStoreUnavailable(f"cannot write evidence {path.name}: {exc}") from None


def make_dirs(folder: Path) -> list[Path]:
    """Create `folder` and missing parents, owner only (0700 whatever the umask);
    return the parents of what was created."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by another process meanwhile
        os.chmod(created, DIR_MODE)  # mkdir's mode is filtered by the umask
    return [m.parent for m in missing]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

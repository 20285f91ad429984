"""Logical backup and restore of the whole store: every table plus the evidence files.

A backup is one zip file:

- `manifest.json`: format version, schema revision, creation time, the dialect it
  came from, and for every member its SHA-256 and (for tables) its row count;
- `tables/<name>.jsonl`: one JSON object per row, in primary-key order; datetimes as
  `{"$dt": iso}` and bytes as `{"$b64": ...}` so that rows are portable between
  SQLite and PostgreSQL;
- `evidence/<sha256>`: the evidence frames still retained. A frame whose file no
  longer matches its hash (damaged on disk) is left out and named in the manifest's
  `damaged_evidence`; everything else is still backed up.

The dump reads every table in one snapshot (a REPEATABLE READ transaction on
PostgreSQL; a single read transaction on SQLite in WAL mode), so the ledger, the
sessions and the evidence records agree with each other. Restore only goes into an
empty database at the same schema revision, checks every member against the
manifest before writing anything, and inserts rows as they were: ledger rows keep
their hashes, so the chains can be verified afterwards exactly as before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Table, func, insert, select, text

from storage.engine import Database, translate_errors
from storage.evidence_local import FILE_MODE, evidence_root, frame_path, make_dirs
from storage.exceptions import IntegrityViolation, InvalidInput, StorageError
from storage.migrate import current_revision, head_revision
from storage.models import Base

FORMAT = "supervisor-backup/1"
_INSERT_BATCH = 2_000
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a dump wrote or a restore read."""

    path: Path
    revision: str
    tables: dict[str, int]
    evidence_files: int
    evidence_missing: int
    bytes: int
    # Retained frames whose files did not match their hash: left out, named in the
    # manifest (a dump), or named by the backup's manifest (a restore).
    evidence_damaged: tuple[str, ...] = ()


def _tables() -> list[Table]:
    """Every table of the schema but the derived ones (projections rebuilt from the
    ledger), parents before children."""
    return [
        t
        for t in Base.metadata.sorted_tables
        if t.name != "alembic_version" and not t.info.get("derived")
    ]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        raise InvalidInput(f"unknown value encoding in backup: {sorted(value)}")
    return value


class _HashingWriter:
    """A zip member writer that also hashes what goes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.raw.write(data)


def dump(db: Database, evidence_dir: Path, out: Path) -> BackupReport:
    """Write a backup of the database and the retained evidence frames (the files of
    the local evidence store in `evidence_dir`) to `out`.

    The file appears only when complete (written to a temporary name, then renamed).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".backup-", suffix=".zip", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    members: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    files = missing = 0
    damaged: list[str] = []
    try:
        with (
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
            translate_errors(),
        ):
            with db.read(snapshot=True) as conn:
                revision = _revision(conn)
                for table in _tables():
                    name = f"tables/{table.name}.jsonl"
                    with zf.open(name, "w", force_zip64=True) as raw:
                        w = _HashingWriter(raw)
                        n = 0
                        for row in _rows(conn, table):
                            line = {k: _encode(v) for k, v in row.items()}
                            w.write(json.dumps(line, sort_keys=True).encode() + b"\n")
                            n += 1
                    members[name] = {"sha256": w.sha.hexdigest(), "rows": n}
                    counts[table.name] = n
                live = conn.execute(
                    text("SELECT sha256 FROM evidence WHERE purged_at IS NULL ORDER BY sha256")
                ).scalars()
                root = evidence_root(evidence_dir)
                for sha in live:
                    path = frame_path(root, sha)
                    try:
                        data = path.read_bytes()
                    except FileNotFoundError:
                        missing += 1  # expired and deleted by purge, or lost: the row says
                        continue
                    except OSError:
                        damaged.append(sha)  # unreadable: as good as damaged for a backup
                        continue
                    if hashlib.sha256(data).hexdigest() != sha:
                        damaged.append(sha)  # one bad frame must not cost the whole backup
                        continue
                    zf.writestr(f"evidence/{sha}", data, compress_type=zipfile.ZIP_STORED)
                    members[f"evidence/{sha}"] = {"sha256": sha}
                    files += 1
            manifest = {
                "format": FORMAT,
                "revision": revision,
                "dialect": db.dialect,
                "created_at": datetime.now(UTC).isoformat(),
                "members": members,
                "damaged_evidence": damaged,
            }
            zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupReport(out, revision, counts, files, missing, out.stat().st_size, tuple(damaged))


def _revision(conn: Connection) -> str:
    rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    if rev is None:
        raise StorageError("the database has no schema revision; nothing to back up")
    return str(rev)


def _rows(conn: Connection, table: Table) -> Iterator[dict[str, Any]]:
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(yield_per=_INSERT_BATCH).execute(select(table).order_by(*order))
    for row in result.mappings():
        yield dict(row)


def _read_manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except KeyError:
        raise InvalidInput("not a backup: manifest.json is missing") from None
    except ValueError as exc:
        raise InvalidInput(f"backup manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"not a {FORMAT} backup")
    return manifest


def check(path: Path) -> dict[str, Any]:
    """Check every member of the backup at `path` against its manifest; return the manifest.

    Raises `IntegrityViolation` naming the first altered, missing or extra member.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"cannot open backup {path}: {exc}") from None
    with zf:
        manifest = _read_manifest(zf)
        members: dict[str, dict[str, Any]] = manifest["members"]
        names = {n for n in zf.namelist() if n != "manifest.json"}
        extra = names - set(members)
        if extra:
            raise IntegrityViolation(f"backup holds members not in its manifest: {sorted(extra)}")
        for name, meta in sorted(members.items()):
            try:
                h = hashlib.sha256()
                with zf.open(name) as f:
                    while block := f.read(1 << 20):
                        h.update(block)
            except KeyError:
                raise IntegrityViolation(f"backup member {name} is missing") from None
            if h.hexdigest() != meta["sha256"]:
                raise IntegrityViolation(f"backup member {name} was altered (hash mismatch)")
    return manifest


def restore(db: Database, evidence_dir: Path, path: Path) -> BackupReport:
    """Load the backup at `path` into the empty, migrated database behind `db`, and its
    evidence frames into the local evidence store's folder `evidence_dir`.

    Refuses a backup that fails `check`, one taken at another schema revision, and a
    database that already holds rows. Rows go in within one transaction: either the
    whole backup is restored or nothing is.
    """
    path = Path(path)
    manifest = check(path)
    revision = manifest["revision"]
    here = current_revision(db)
    if here != head_revision():
        raise StorageError(f"the target database is at {here}; run `supervisor migrate` first")
    if revision != here:
        raise StorageError(
            f"the backup is of schema revision {revision} but this code is at {here}; "
            "restore it with the version that wrote it, then migrate"
        )
    counts: dict[str, int] = {}
    files = 0
    with zipfile.ZipFile(path) as zf, db.write() as conn:
        for table in _tables():
            if conn.execute(select(func.count()).select_from(table)).scalar_one():
                raise StorageError(
                    f"the target database is not empty (table {table.name} has rows); "
                    "restore only into a fresh database"
                )
        # Derived tables are rebuilt, never restored: no row of an earlier life of this
        # database survives (the head index refills through its trigger below).
        for table in Base.metadata.sorted_tables:
            if table.info.get("derived"):
                conn.execute(table.delete())
        for table in _tables():
            name = f"tables/{table.name}.jsonl"
            n = 0
            if name in manifest["members"]:
                batch: list[dict[str, Any]] = []
                with zf.open(name) as f:
                    for line in f:
                        row = {k: _decode(v) for k, v in json.loads(line).items()}
                        batch.append(row)
                        if len(batch) >= _INSERT_BATCH:
                            conn.execute(insert(table), batch)
                            n += len(batch)
                            batch = []
                if batch:
                    conn.execute(insert(table), batch)
                    n += len(batch)
            counts[table.name] = n
        if db.dialect == "postgresql":
            _reset_sequences(conn)
        for name in manifest["members"]:
            if not name.startswith("evidence/"):
                continue
            sha = name.removeprefix("evidence/")
            if len(sha) != 64 or not set(sha) <= _HEX:
                raise IntegrityViolation(f"backup member {name} is not named by a SHA-256")
            target = frame_path(evidence_root(evidence_dir), sha)
            make_dirs(target.parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with zf.open(name) as src, os.fdopen(fd, "wb") as dst:
                dst.write(src.read())
            files += 1
        live = conn.execute(
            text("SELECT COUNT(*) FROM evidence WHERE purged_at IS NULL")
        ).scalar_one()
    missing = int(live) - files  # retained by their rows, but their files were not in the backup
    damaged = tuple(str(h) for h in manifest.get("damaged_evidence") or ())
    return BackupReport(path, revision, counts, files, missing, path.stat().st_size, damaged)


def _reset_sequences(conn: Connection) -> None:
    """Move every serial/identity sequence past the restored ids (PostgreSQL)."""
    for table in _tables():
        for column in table.primary_key.columns:
            if not column.autoincrement or column.type.python_type is not int:
                continue
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"),
                {"t": table.name, "c": column.name},
            ).scalar_one_or_none()
            if seq is None:
                continue
            conn.execute(
                text(
                    f"SELECT setval(:s, COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"  # noqa: E501
                ),
                {"s": seq},
            )

"""`supervisor backup create|check|restore`: a logical backup and its tested way back.

    supervisor backup create var/backup-2026-11-25.zip
    export SUPERVISOR_DATABASE__URL=postgresql://127.0.0.1/fresh
    supervisor backup restore var/backup-2026-11-25.zip

`create` backs up everything it can: an evidence frame whose file no longer matches
its hash is left out, named in the manifest (`damaged_evidence`) and on stderr, and
the command exits 2 (1: no backup was written).

`restore` migrates the target to this code's schema, refuses a database that holds
rows, loads everything in one transaction, then recomputes every hash chain and
checks every seal (signature, root, and the sealed heads present in the restored
chains). It exits non-zero unless all of that holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config import Settings
from storage import Storage, backup
from storage.exceptions import StorageError
from supervisor.cli.common import open_migrated
from supervisor.inspect import seals as sl

# `backup create`: the backup was written, but some evidence frames were damaged on disk
# and are missing from it (1 is "no backup written").
EXIT_DAMAGED = 2


def add_backup_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmds = sub.add_parser("backup", help="back up and restore the database and evidence")
    actions = cmds.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    p = actions.add_parser("create", help="write a backup zip of every table and retained frame")
    p.add_argument("out", type=Path, help="the zip file to write")
    p.set_defaults(handler=_cmd_create)
    p = actions.add_parser("check", help="check a backup zip against its manifest (offline)")
    p.add_argument("path", type=Path)
    p.set_defaults(handler=_cmd_check)
    p = actions.add_parser(
        "restore", help="restore a backup into the (empty) database of the settings, then verify"
    )
    p.add_argument("path", type=Path)
    p.set_defaults(handler=_cmd_restore)


def _storage(settings: Settings) -> Storage:
    return open_migrated(settings, group_commit=False)


def _cmd_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        with _storage(settings) as storage:
            report = backup.dump(storage.db, settings.evidence.directory, args.out)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = sum(report.tables.values())
    print(
        f"backup written: {report.path} ({report.bytes} bytes, schema {report.revision}, "
        f"{rows} rows, {report.evidence_files} evidence files, "
        f"{report.evidence_missing} retained frames without a file)"
    )
    for name, n in report.tables.items():
        print(f"  {name}: {n}")
    if report.evidence_damaged:
        # Everything else is in the backup; these frames are named in its manifest
        # (`damaged_evidence`) so that the loss is on record, and the exit is non-zero.
        print(
            f"DAMAGED: {len(report.evidence_damaged)} evidence frame(s) do not match their "
            "hash and are not in the backup (listed in its manifest as damaged_evidence):",
            file=sys.stderr,
        )
        for sha in report.evidence_damaged:
            print(f"  damaged: {sha}", file=sys.stderr)
        return EXIT_DAMAGED
    return 0


def _cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    try:
        manifest = backup.check(args.path)
    except StorageError as exc:
        print(f"BAD: {exc}", file=sys.stderr)
        return 1
    print(f"OK: {len(manifest['members'])} members match, schema {manifest['revision']}")
    return 0


def _cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    try:
        with _storage(settings) as storage:
            report = backup.restore(storage.db, settings.evidence.directory, args.path)
            print(
                f"restored {sum(report.tables.values())} rows and "
                f"{report.evidence_files} evidence files from {report.path}"
            )
            if report.evidence_damaged:
                print(
                    f"note: {len(report.evidence_damaged)} evidence frame(s) were damaged "
                    "when the backup was made and are not in it: "
                    + ", ".join(report.evidence_damaged)
                )
            verify = storage.ledger.verify()
            problems = [
                f"chain {b.chain_id} breaks at seq {b.seq}: {b.reason}" for b in verify.breaks
            ]
            print(f"ledger: {verify.chains} chains, {verify.events} events recomputed")
            found = seal_problems(storage)
            print(f"seals: {'OK' if not found else 'FAILED'}")
            problems.extend(found)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in problems:
        print(f"BAD: {line}", file=sys.stderr)
    if problems:
        return 1
    print("OK: every chain verifies")
    return 0


def seal_problems(storage: Storage) -> list[str]:
    """What is wrong with the restored seals: every seal's signature and root over its
    stored leaves, and every leaf of the latest seal present in the restored chains."""
    problems: list[str] = []
    recent = storage.seals.recent(limit=1_000_000)
    for seal in recent:
        if not sl.signature_valid(seal.public_key, seal.statement, seal.signature):
            problems.append(f"seal {seal.id}: signature is wrong")
            continue
        root = str(sl.statement_fields(seal.statement)["root"])
        if sl.merkle_root(sl.sorted_heads(storage.seals.leaves(seal.id))) != root:
            problems.append(f"seal {seal.id}: its leaves do not lead to the signed root")
    latest = storage.seals.latest()
    if latest is not None:
        for leaf in storage.seals.leaves(latest.id):
            at = storage.ledger.read_chain(leaf.chain_id, after_seq=leaf.seq - 1, limit=1)
            if not at or at[0].seq != leaf.seq or at[0].hash != leaf.hash:
                problems.append(
                    f"chain {leaf.chain_id}: event seq {leaf.seq} sealed by seal {latest.id} "
                    "is missing or altered"
                )
    return problems

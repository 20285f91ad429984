"""`supervisor ledger seal`, `supervisor ledger verify-seal` and `supervisor evidence verify`.

`evidence verify` works offline: it reads only the pack (no service, no database).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config import Settings
from supervisor.cli.common import open_migrated
from supervisor.i18n import LocalTime


def add_ledger_commands(ledger: Any) -> None:
    p = ledger.add_parser("seal", help="sign a Merkle root over the heads of all chains")
    p.set_defaults(handler=_cmd_seal)
    p = ledger.add_parser(
        "verify-seal",
        help="check chains against every seal that covered them (inclusion proofs, sealed "
        "heads still in place, not recorded broken), and recompute them",
    )
    p.add_argument("--chain", action="append", required=True, help="chain id (repeatable)")
    p.add_argument("--seal", type=int, default=None, help="only this seal (default: every seal)")
    p.set_defaults(handler=_cmd_verify_seal)


def add_evidence_commands(evidence: Any) -> None:
    p = evidence.add_parser("verify", help="check an evidence pack offline; name what is altered")
    p.add_argument("pack", type=Path, help="the evidence pack (zip)")
    p.add_argument(
        "--public-key",
        default=None,
        help="the seal public key you trust: 64 hex characters, or a PEM file "
        "(from /api/v1/seals/public-key)",
    )
    p.set_defaults(handler=_cmd_evidence_verify)


def _cmd_seal(settings: Settings, args: argparse.Namespace) -> int:
    from storage.exceptions import StorageError
    from supervisor.inspect import seals as sl
    from supervisor.inspect.sealing import make_seal

    try:
        with open_migrated(settings) as storage:
            seal = make_seal(
                storage,
                settings.security.seal_key.get_secret_value(),
                datetime.now(UTC),
                sweep_rounds=settings.inspection.seal_sweep_rounds,
            )
    except (StorageError, sl.SealKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    assert seal is not None
    print(f"seal {seal.id}: {seal.chains} chains, root {seal.root}")
    # For a person: local time with its offset (`web.timezone`); the seal keeps UTC.
    at = LocalTime(settings.web.timezone).format(seal.sealed_at, seconds=True)
    print(f"signed by key {sl.fingerprint(seal.public_key)} at {at}")
    return 0


def _cmd_verify_seal(settings: Settings, args: argparse.Namespace) -> int:
    from storage.exceptions import StorageError
    from supervisor.inspect.sealing import (
        SealedTrees,
        verify_chain_against_all_seals,
        verify_chain_against_seal,
    )

    try:
        with open_migrated(settings) as storage:
            if args.seal:
                seal = storage.seals.get(args.seal)
                bad = 0
                for chain_id in args.chain:
                    problem = verify_chain_against_seal(storage, chain_id, seal)
                    if problem is None:
                        print(f"ok: {chain_id} matches seal {seal.id}")
                    else:
                        bad += 1
                        print(f"ALTERED: {problem}")
                return 1 if bad else 0
            if storage.seals.latest() is None:
                print("error: no seal has been made yet", file=sys.stderr)
                return 1
            trees = SealedTrees(storage)
            bad = 0
            for chain_id in args.chain:
                verdicts, whole = verify_chain_against_all_seals(storage, chain_id, trees)
                if not verdicts:
                    bad += 1
                    print(f"NOT SEALED: {chain_id} is not covered by any seal yet")
                    continue
                failed = [v for v in verdicts if v.problem is not None]
                for v in failed:
                    print(f"ALTERED: {v.problem}")
                if whole is not None:
                    print(f"ALTERED: {whole}")
                if failed or whole is not None:
                    bad += 1
                else:
                    ids = ", ".join(str(v.seal_id) for v in verdicts)
                    print(f"ok: {chain_id} matches every seal that covered it ({ids})")
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1 if bad else 0


def _trusted_key(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    key = load_pem_public_key(Path(text).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _cmd_evidence_verify(settings: Settings, args: argparse.Namespace) -> int:
    from supervisor.inspect.packs import format_report, verify_pack

    try:
        trusted = _trusted_key(args.public_key)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the public key: {exc}", file=sys.stderr)
        return 2
    if not args.pack.is_file():
        print(f"error: no such file: {args.pack}", file=sys.stderr)
        return 2
    report = verify_pack(args.pack, trusted)
    print(format_report(report))
    return 0 if report.ok else 1

"""Evidence packs: a zip an inspector takes away and checks offline.

Layout (format `supervisor-evidence-pack/1`):

- `manifest.json`: the subject, every chain with its event count and head, every
  frame (retained, or purged with only its hash), the seal with an inclusion proof
  per chain, and the SHA-256 of every other file in the pack;
- `manifest.sig`: hex Ed25519 signature of the exact bytes of `manifest.json`,
  by the service's seal key;
- `public_key.pem`: that key (its raw hex is in the manifest too);
- `events/<n>.jsonl`: one chain per file, one stored event per line (chain_id, seq,
  recorded_at, kind, payload, prev_hash, hash), enough to recompute every hash
  (storage/canonical.py gives the rule);
- `frames/<sha256>.<ext>`: the evidence frames still retained.

`verify_pack` needs no service and no database. It names every problem: a file
whose bytes differ from the manifest, an edited or removed event (chain broken, or
fewer events than listed), a sealed head that is no longer in its chain, a proof
that does not lead to the sealed root, a bad signature, a swapped or missing frame.
Pass the public key you trust (`--public-key`): otherwise the pack's own key is
used and its fingerprint printed, to compare with the one the service publishes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.canonical import (
    format_timestamp,
    parse_timestamp,
    verify_events,
)
from storage.exceptions import StorageError
from storage.types import ChainHead, LedgerEvent, Seal
from supervisor.inspect import seals as sl

FORMAT = "supervisor-evidence-pack/1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
MAX_MEMBER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackFrame:
    sha256: str
    status: str  # retained | purged | missing
    content_type: str | None = None
    data: bytes | None = None


@dataclass
class PackReport:
    ok_checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    chains: int = 0
    events: int = 0
    frames_retained: int = 0
    frames_purged: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def evidence_hashes(payload: str) -> set[str]:
    """Every frame hash an event payload refers to (values under keys naming evidence)."""
    found: set[str] = set()

    def walk(value: Any, evidence_key: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, evidence_key or "evidence" in k)
        elif isinstance(value, list):
            for v in value:
                walk(v, evidence_key)
        elif evidence_key and isinstance(value, str) and _HEX64.fullmatch(value):
            found.add(value)

    try:
        walk(json.loads(payload), False)
    except ValueError:
        pass
    return found


def _event_line(e: LedgerEvent) -> str:
    return json.dumps(
        {
            "chain_id": e.chain_id,
            "seq": e.seq,
            "recorded_at": format_timestamp(e.recorded_at),
            "kind": e.kind,
            "payload": e.payload,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def build_pack(
    subject: dict[str, Any],
    chains: Sequence[tuple[str, Sequence[LedgerEvent]]],
    frames: Iterable[PackFrame],
    seal: Seal | None,
    proofs: Mapping[str, tuple[ChainHead, Sequence[sl.ProofStep]]],
    key: Ed25519PrivateKey,
    created_at: datetime,
) -> bytes:
    """The zip bytes of a pack; `proofs` give each sealed chain's head and inclusion proof."""
    files: dict[str, bytes] = {}
    chain_rows = []
    for n, (chain_id, events) in enumerate(chains, start=1):
        name = f"events/{n:04d}.jsonl"
        files[name] = "".join(_event_line(e) + "\n" for e in events).encode("utf-8")
        head = events[-1] if events else None
        chain_rows.append(
            {
                "chain_id": chain_id,
                "file": name,
                "events": len(events),
                "head": None if head is None else {"seq": head.seq, "hash": head.hash},
            }
        )
    frame_rows = []
    for f in sorted(frames, key=lambda f: f.sha256):
        row: dict[str, Any] = {"sha256": f.sha256, "status": f.status}
        if f.status == "retained" and f.data is not None:
            name = f"frames/{f.sha256}.{_EXT.get(f.content_type or '', 'bin')}"
            files[name] = f.data
            row["file"] = name
            row["content_type"] = f.content_type
        frame_rows.append(row)
    seal_row = None
    proof_rows: dict[str, Any] = {}
    if seal is not None:
        seal_row = {
            "id": seal.id,
            "statement": seal.statement,
            "signature": seal.signature,
            "public_key": seal.public_key,
        }
        for chain_id, (h, steps) in proofs.items():
            proof_rows[chain_id] = {
                "seq": h.seq,
                "hash": h.hash,
                "proof": [[s.side, s.hash] for s in steps],
            }
            if h.broken is not None:
                proof_rows[chain_id]["broken"] = h.broken
    public_hex = sl.public_key_hex(key)
    files["public_key.pem"] = sl.public_key_pem(public_hex).encode()
    manifest = {
        "format": FORMAT,
        "created_at": format_timestamp(created_at),
        "subject": subject,
        "chains": chain_rows,
        "frames": frame_rows,
        "seal": seal_row,
        "proofs": proof_rows,
        "public_key": public_hex,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest_bytes)
        z.writestr("manifest.sig", sl.sign(key, manifest_bytes.decode()) + "\n")
        for name, data in sorted(files.items()):
            # Frames are JPEG already: storing them deflated gains nothing.
            kind = zipfile.ZIP_STORED if name.startswith("frames/") else zipfile.ZIP_DEFLATED
            z.writestr(zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0)), data, kind)
    return buf.getvalue()


def _parse_event(line: str) -> LedgerEvent:
    d = json.loads(line)
    return LedgerEvent(
        str(d["chain_id"]),
        int(d["seq"]),
        parse_timestamp(str(d["recorded_at"])),
        str(d["kind"]),
        str(d["payload"]),
        str(d["prev_hash"]),
        str(d["hash"]),
    )


def verify_pack(source: Path | bytes, trusted_public_key: str | None = None) -> PackReport:
    """Check a pack offline; the report names every problem found."""
    report = PackReport()
    try:
        z = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as exc:
        report.problems.append(f"not a readable zip file: {exc}")
        return report
    with z:
        members: dict[str, bytes] = {}
        for info in z.infolist():
            if info.file_size > MAX_MEMBER_BYTES:
                report.problems.append(f"{info.filename}: larger than the pack format allows")
                continue
            try:
                members[info.filename] = z.read(info)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                report.problems.append(f"{info.filename}: unreadable ({exc})")
    _verify_members(members, trusted_public_key, report)
    return report


def _verify_members(members: dict[str, bytes], trusted: str | None, report: PackReport) -> None:
    raw = members.get("manifest.json")
    if raw is None:
        report.problems.append("manifest.json is missing")
        return
    try:
        manifest = json.loads(raw)
        public_hex = str(manifest["public_key"])
        if manifest.get("format") != FORMAT:
            report.problems.append(f"unknown pack format {manifest.get('format')!r}")
            return
    except (ValueError, KeyError, TypeError):
        report.problems.append("manifest.json is not a valid manifest")
        return
    report.fingerprint = sl.fingerprint(public_hex) if _HEX64.fullmatch(public_hex) else None
    if trusted is not None and trusted.lower() != public_hex:
        report.problems.append(
            "the pack is signed with another key than the trusted public key "
            f"(pack key {report.fingerprint}, trusted {sl.fingerprint(trusted)})"
        )
    sig = members.get("manifest.sig", b"").decode("ascii", "replace").strip()
    if sl.signature_valid(public_hex, raw.decode("utf-8", "replace"), sig):
        report.ok_checks.append("manifest signature valid")
    else:
        report.problems.append("manifest.sig: the manifest signature is wrong (manifest altered?)")

    listed: dict[str, str] = dict(manifest.get("files", {}))
    for name, digest in sorted(listed.items()):
        data = members.get(name)
        if data is None:
            report.problems.append(f"{name}: listed in the manifest but removed from the pack")
        elif hashlib.sha256(data).hexdigest() != digest:
            report.problems.append(f"{name}: altered (its SHA-256 differs from the manifest)")
    for name in sorted(set(members) - set(listed) - {"manifest.json", "manifest.sig"}):
        report.problems.append(f"{name}: not listed in the manifest (added to the pack)")

    chains_by_id: dict[str, list[LedgerEvent]] = {}
    referenced: set[str] = set()
    for row in manifest.get("chains", []):
        chain_id, name = row["chain_id"], row["file"]
        try:
            events = [
                _parse_event(line)
                for line in members.get(name, b"").decode("utf-8").splitlines()
                if line.strip()
            ]
        except (ValueError, KeyError, TypeError, StorageError) as exc:
            report.problems.append(f"chain {chain_id}: events file unreadable ({exc})")
            continue
        chains_by_id[chain_id] = events
        report.chains += 1
        report.events += len(events)
        if any(e.chain_id != chain_id for e in events):
            report.problems.append(f"chain {chain_id}: holds events of another chain")
        brk = verify_events(events)
        if brk is not None:
            report.problems.append(
                f"chain {chain_id}: event seq {brk.seq} edited or out of place ({brk.reason})"
            )
        if len(events) != row["events"]:
            report.problems.append(
                f"chain {chain_id}: {row['events']} events listed but {len(events)} present "
                "(events removed or added)"
            )
        head = row.get("head")
        if head and events and (events[-1].seq, events[-1].hash) != (head["seq"], head["hash"]):
            report.problems.append(f"chain {chain_id}: its last event is not the listed head")
        for e in events:
            referenced |= evidence_hashes(e.payload)
    if report.chains and not any(p.startswith("chain ") for p in report.problems):
        report.ok_checks.append(f"{report.chains} chains, {report.events} events: hashes recompute")

    _verify_seal(manifest, chains_by_id, report)

    frames = {f["sha256"]: f for f in manifest.get("frames", [])}
    for sha, f in sorted(frames.items()):
        if f["status"] == "retained":
            data = members.get(f.get("file", ""))
            if data is None:
                report.problems.append(f"frame {sha}: retained but missing from the pack")
            elif hashlib.sha256(data).hexdigest() != sha:
                report.problems.append(f"frame {sha}: swapped (the file does not match its hash)")
            report.frames_retained += 1
        elif f["status"] == "purged":
            report.frames_purged += 1
        else:
            report.problems.append(
                f"frame {sha}: {f['status']} in the service's store when the pack was made "
                "(deleted or altered there)"
            )
    for sha in sorted(referenced - set(frames)):
        report.problems.append(f"frame {sha}: referenced by an event but not accounted for")
    if frames and not any(p.startswith("frame ") for p in report.problems):
        report.ok_checks.append(
            f"{report.frames_retained} frames match their hashes; "
            f"{report.frames_purged} purged frames accounted for by hash"
        )


def _verify_seal(
    manifest: dict[str, Any], chains: dict[str, list[LedgerEvent]], report: PackReport
) -> None:
    seal = manifest.get("seal")
    if not seal:
        report.notes.append("no seal covers these chains yet (only the hash chains are checked)")
        return
    if not sl.signature_valid(seal["public_key"], seal["statement"], seal["signature"]):
        report.problems.append(f"seal {seal.get('id')}: the signature is wrong")
        return
    if seal["public_key"] != manifest["public_key"]:
        report.problems.append(f"seal {seal.get('id')}: signed by another key than the pack")
    try:
        root = str(sl.statement_fields(seal["statement"])["root"])
    except (ValueError, KeyError):
        report.problems.append(f"seal {seal.get('id')}: the statement is not a seal statement")
        return
    report.ok_checks.append(f"seal {seal.get('id')} signature valid")
    proofs = manifest.get("proofs", {})
    for chain_id, events in sorted(chains.items()):
        proof = proofs.get(chain_id)
        if proof is None:
            report.notes.append(f"chain {chain_id}: not covered by the seal (newer than it)")
            continue
        steps = [sl.ProofStep(s, h) for s, h in proof["proof"]]
        broken = proof.get("broken")
        if sl.root_from_proof(chain_id, proof["seq"], proof["hash"], steps, broken) != root:
            report.problems.append(
                f"chain {chain_id}: its inclusion proof does not lead to the seal"
            )
            continue
        if broken is not None:
            report.problems.append(
                f"chain {chain_id}: the seal recorded it broken at event seq {broken}"
            )
            continue
        at = next((e for e in events if e.seq == proof["seq"]), None)
        if at is None or at.hash != proof["hash"]:
            report.problems.append(
                f"chain {chain_id}: the sealed event seq {proof['seq']} is missing or altered"
            )
            continue
        later = sum(1 for e in events if e.seq > proof["seq"])
        if later:
            report.notes.append(
                f"chain {chain_id}: {later} events after the seal are covered by the chain only"
            )
    if proofs:
        report.ok_checks.append(f"{len(proofs)} chains included in seal {seal.get('id')}")


def format_report(report: PackReport) -> str:
    lines = []
    if report.fingerprint:
        lines.append(f"signing key fingerprint: {report.fingerprint}")
    lines += [f"ok: {c}" for c in report.ok_checks]
    lines += [f"note: {n}" for n in report.notes]
    lines += [f"ALTERED: {p}" for p in report.problems]
    lines.append("RESULT: intact" if report.ok else f"RESULT: {len(report.problems)} problem(s)")
    return "\n".join(lines)

"""Seals: a signed Merkle root over the heads of all ledger chains.

This docstring is the specification an inspector needs to check a seal offline.

Leaves
    One per chain, sorted by `chain_id` in code-point order. A leaf's hash is
    ``SHA-256(0x00 || L)`` where ``L`` is the UTF-8 canonical JSON (storage.canonical)
    ``{"chain_id":<string>,"hash":<head hash>,"seq":<head seq>}``. In a seal of
    format 2, a chain the sealer found broken has the leaf
    ``{"broken":<first bad seq>,"chain_id":<string>,"hash":<hash>,"seq":<seq>}`` where
    seq and hash are its last verified head (seq 0 and 64 zeros: none).
Tree
    Each level pairs nodes left to right: ``SHA-256(0x01 || left || right)`` (raw
    32-byte digests); an odd last node is carried up unchanged. The root of no
    leaves is ``SHA-256("")``.
Inclusion proof
    The sibling digests from the leaf up, each with its side ("L" when the sibling
    is on the left). Recompute from the leaf hash; the result must equal the root.
Statement
    The canonical JSON ``{"broken":B,"chains":N,"format":"supervisor-seal/2",
    "root":<hex>,"sealed_at":<YYYY-MM-DDTHH:MM:SS.ffffffZ>}``, signed with Ed25519;
    the signature and the raw 32-byte public key are given as lowercase hex. ``B`` is
    the number of broken leaves. Seals of format 1 (``supervisor-seal/1``, no
    ``broken`` key, no broken leaves) were made before seals verified the chains;
    they stay verifiable by the same rules.

What a format 2 seal vouches for: before signing, the sealer re-hashed every chain
that grew since the previous seal of format 2, from that seal's head forward (the
sealed event must still be there, with its hash, and still recompute to it), or
from the first event when there is no such seal. A chain that is broken, shorter
than sealed, whose sealed head changed, or whose head index names an event that is
gone, is not vouched for: its leaf says broken, and stays so in every later seal.

A chain whose current head is later than its sealed head must still contain the
sealed head at the sealed `seq` with the sealed `hash`: events cannot have been
removed or rewritten up to there without breaking that equality.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from json.encoder import encode_basestring

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from storage.canonical import canonical_json, format_timestamp
from storage.types import ChainHead

FORMAT = "supervisor-seal/2"
FORMAT_1 = "supervisor-seal/1"  # before seals verified chains; still verifiable
FORMATS = (FORMAT_1, FORMAT)
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SealKeyError(ValueError):
    """The configured seal key is not base64 of 32 bytes."""


@dataclass(frozen=True, slots=True)
class ProofStep:
    side: str  # "L": the sibling is on the left; "R": on the right
    hash: str


def leaf_hash(chain_id: str, seq: int, head_hash: str, broken: int | None = None) -> bytes:
    # The same bytes as canonical_json({"chain_id", "hash", "seq"}) (a test asserts it),
    # without a dict and a sort per leaf: a seal hashes every chain.
    if type(seq) is not int or not _HEX64.fullmatch(head_hash):
        raise ValueError(f"not a chain head: {chain_id!r} {seq!r} {head_hash!r}")
    body = f'{{"chain_id":{encode_basestring(chain_id)},"hash":"{head_hash}","seq":{seq}}}'
    if broken is not None:
        if type(broken) is not int:
            raise ValueError(f"not a seq: {broken!r}")
        body = f'{{"broken":{broken},{body[1:]}'
    return sha256(b"\x00" + body.encode("utf-8")).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def sorted_heads(heads: Iterable[ChainHead]) -> list[ChainHead]:
    """Heads in leaf order (code-point order of chain_id, whatever the database collation)."""
    return sorted(heads, key=lambda h: h.chain_id)


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [_node(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(nxt)
    return levels


class MerkleTree:
    """The tree over heads given in leaf order; proofs for any chain it covers."""

    def __init__(self, heads: Sequence[ChainHead]) -> None:
        self.heads = {h.chain_id: h for h in heads}
        self._index = {h.chain_id: i for i, h in enumerate(heads)}
        self._levels = _levels([leaf_hash(h.chain_id, h.seq, h.hash, h.broken) for h in heads])

    @property
    def root(self) -> str:
        return self._levels[-1][0].hex() if self._levels[0] else EMPTY_ROOT

    def proof(self, chain_id: str) -> list[ProofStep] | None:
        pos = self._index.get(chain_id)
        if pos is None:
            return None
        steps: list[ProofStep] = []
        for level in self._levels[:-1]:
            sibling = pos ^ 1
            if sibling < len(level):
                steps.append(ProofStep("L" if sibling < pos else "R", level[sibling].hex()))
            pos //= 2
        return steps


def merkle_root(heads: Sequence[ChainHead]) -> str:
    """Root over heads already in leaf order."""
    return MerkleTree(heads).root


def inclusion_proofs(
    heads: Sequence[ChainHead], chain_ids: Iterable[str]
) -> dict[str, list[ProofStep]]:
    """Proofs for some chains of a sealed set (heads in leaf order)."""
    tree = MerkleTree(heads)
    out = {}
    for chain_id in chain_ids:
        proof = tree.proof(chain_id)
        if proof is not None:
            out[chain_id] = proof
    return out


def root_from_proof(
    chain_id: str,
    seq: int,
    head_hash: str,
    proof: Sequence[ProofStep],
    broken: int | None = None,
) -> str:
    digest = leaf_hash(chain_id, seq, head_hash, broken)
    for step in proof:
        sibling = bytes.fromhex(step.hash)
        digest = _node(sibling, digest) if step.side == "L" else _node(digest, sibling)
    return digest.hex()


def statement(chains: int, root: str, sealed_at: datetime, broken: int | None = None) -> str:
    """The signed text: format 2 (`broken` leaves counted), or format 1 when `broken`
    is None (kept for reading and testing old seals)."""
    body: dict[str, object] = {
        "chains": chains,
        "format": FORMAT if broken is not None else FORMAT_1,
        "root": root,
        "sealed_at": format_timestamp(sealed_at),
    }
    if broken is not None:
        body["broken"] = broken
    return canonical_json(body)


def is_verifying(text: str) -> bool:
    """True for a statement of a seal that verified the chains it covers (format 2)."""
    try:
        return statement_fields(text).get("format") == FORMAT
    except ValueError:
        return False


def private_key(seal_key_b64: str) -> Ed25519PrivateKey:
    try:
        seed = base64.b64decode(seal_key_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealKeyError("security.seal_key is not valid base64") from None
    if len(seed) != 32:
        raise SealKeyError(f"security.seal_key must decode to 32 bytes (got {len(seed)})")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def public_key_pem(public_hex: str) -> str:
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    return pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(public_hex: str) -> str:
    """First 16 hex characters of SHA-256 of the raw public key."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, text: str) -> str:
    return key.sign(text.encode("utf-8")).hex()


def signature_valid(public_hex: str, text: str, signature_hex: str) -> bool:
    try:
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        pub.verify(bytes.fromhex(signature_hex), text.encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


def statement_fields(text: str) -> dict[str, object]:
    """The fields of a seal statement (raises ValueError when it is not one)."""
    body = json.loads(text)
    if not isinstance(body, dict) or body.get("format") not in FORMATS:
        raise ValueError("not a supervisor seal statement")
    return body

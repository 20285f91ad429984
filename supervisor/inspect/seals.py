"""Seals: a signed Merkle root over the heads of all ledger chains.

This docstring is the specification an inspector needs to check a seal offline.

Leaves
    One per chain, sorted by `chain_id` in code-point order. A leaf's hash is
    ``SHA-256(0x00 || L)`` where ``L`` is the UTF-8 canonical JSON (storage.canonical)
    ``{"chain_id":<string>,"hash":<head hash>,"seq":<head seq>}``.
Tree
    Each level pairs nodes left to right: ``SHA-256(0x01 || left || right)`` (raw
    32-byte digests); an odd last node is carried up unchanged. The root of no
    leaves is ``SHA-256("")``.
Inclusion proof
    The sibling digests from the leaf up, each with its side ("L" when the sibling
    is on the left). Recompute from the leaf hash; the result must equal the root.
Statement
    The canonical JSON ``{"chains":N,"format":"supervisor-seal/1","root":<hex>,
    "sealed_at":<YYYY-MM-DDTHH:MM:SS.ffffffZ>}``, signed with Ed25519; the signature
    and the raw 32-byte public key are given as lowercase hex.

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

FORMAT = "supervisor-seal/1"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SealKeyError(ValueError):
    """The configured seal key is not base64 of 32 bytes."""


@dataclass(frozen=True, slots=True)
class ProofStep:
    side: str  # "L": the sibling is on the left; "R": on the right
    hash: str


def leaf_hash(chain_id: str, seq: int, head_hash: str) -> bytes:
    # The same bytes as canonical_json({"chain_id", "hash", "seq"}) (a test asserts it),
    # without a dict and a sort per leaf: a seal hashes every chain.
    if type(seq) is not int or not _HEX64.fullmatch(head_hash):
        raise ValueError(f"not a chain head: {chain_id!r} {seq!r} {head_hash!r}")
    body = f'{{"chain_id":{encode_basestring(chain_id)},"hash":"{head_hash}","seq":{seq}}}'
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
        self._levels = _levels([leaf_hash(h.chain_id, h.seq, h.hash) for h in heads])

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


def root_from_proof(chain_id: str, seq: int, head_hash: str, proof: Sequence[ProofStep]) -> str:
    digest = leaf_hash(chain_id, seq, head_hash)
    for step in proof:
        sibling = bytes.fromhex(step.hash)
        digest = _node(sibling, digest) if step.side == "L" else _node(digest, sibling)
    return digest.hex()


def statement(chains: int, root: str, sealed_at: datetime) -> str:
    return canonical_json(
        {
            "chains": chains,
            "format": FORMAT,
            "root": root,
            "sealed_at": format_timestamp(sealed_at),
        }
    )


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
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError("not a supervisor seal statement")
    return body

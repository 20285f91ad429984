"""Merkle roots and inclusion proofs, signatures, and seals over a real ledger."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import DEV_SEAL_KEY, DatabaseSettings, EvidenceSettings
from storage import Storage, open_storage
from storage.canonical import canonical_json
from storage.migrate import upgrade
from storage.types import ChainHead, NewEvent
from supervisor.inspect import seals as sl
from supervisor.inspect.sealing import make_seal, verify_chain_against_seal
from tests.storage.helpers import TEMPLATE_KEY, tamper

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _heads(n: int) -> list[ChainHead]:
    return [
        ChainHead(f"c:{i:04d}", i % 7 + 1, hashlib.sha256(str(i).encode()).hexdigest())
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 13, 100])
def test_every_chain_has_a_proof_to_the_root_and_nothing_else_does(n: int) -> None:
    heads = _heads(n)
    tree = sl.MerkleTree(heads)
    for h in heads:
        proof = tree.proof(h.chain_id)
        assert proof is not None
        assert sl.root_from_proof(h.chain_id, h.seq, h.hash, proof) == tree.root
        # Another seq or hash for the same chain does not lead to the root.
        assert sl.root_from_proof(h.chain_id, h.seq + 1, h.hash, proof) != tree.root
        assert sl.root_from_proof(h.chain_id, h.seq, "0" * 64, proof) != tree.root
    assert tree.proof("not:there") is None
    if n == 0:
        assert tree.root == hashlib.sha256(b"").hexdigest()


def test_the_leaf_and_node_rule_is_the_documented_one() -> None:
    a, b = ChainHead("a", 1, "1" * 64), ChainHead("b", 2, "2" * 64)
    la = hashlib.sha256(
        b"\x00" + canonical_json({"chain_id": "a", "hash": "1" * 64, "seq": 1}).encode()
    ).digest()
    lb = hashlib.sha256(
        b"\x00" + canonical_json({"chain_id": "b", "hash": "2" * 64, "seq": 2}).encode()
    ).digest()
    assert sl.merkle_root([a, b]) == hashlib.sha256(b"\x01" + la + lb).hexdigest()
    c = ChainHead("c", 1, "3" * 64)
    lc = sl.leaf_hash("c", 1, "3" * 64)
    assert (
        sl.merkle_root([a, b, c])
        == hashlib.sha256(b"\x01" + hashlib.sha256(b"\x01" + la + lb).digest() + lc).hexdigest()
    )


def test_signatures_and_keys() -> None:
    key = sl.private_key(DEV_SEAL_KEY)
    pub = sl.public_key_hex(key)
    text = sl.statement(3, "ab" * 32, T0)
    sig = sl.sign(key, text)
    assert sl.signature_valid(pub, text, sig)
    assert not sl.signature_valid(pub, text.replace('"chains":3', '"chains":4'), sig)
    assert not sl.signature_valid(pub, text, "00" * 64)
    assert not sl.signature_valid("zz", text, sig)
    assert "BEGIN PUBLIC KEY" in sl.public_key_pem(pub)
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(sl.SealKeyError):
            sl.private_key(bad)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    s = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=tmp_path / "ev"), TEMPLATE_KEY
    )
    yield s
    s.close()


def test_a_seal_covers_every_chain_and_catches_truncation(storage: Storage) -> None:
    # Chain ids whose order differs between code points and a typical collation.
    chains = ["session:b", "session:B", "class:1:learner:2", "class:10", "Session-a"]
    for n, c in enumerate(chains):
        storage.ledger.append(c, [NewEvent("note", canonical_json({"n": i})) for i in range(n + 2)])
    seal = make_seal(storage, DEV_SEAL_KEY, T0)
    assert seal is not None and seal.chains == len(chains)
    assert sl.signature_valid(seal.public_key, seal.statement, seal.signature)
    assert sl.statement_fields(seal.statement)["root"] == seal.root
    for c in chains:
        assert verify_chain_against_seal(storage, c, seal) is None
    assert make_seal(storage, DEV_SEAL_KEY, T0, only_if_changed=True) is None
    # Appending later is fine: the sealed head is still in place.
    storage.ledger.append("session:b", [NewEvent("note", canonical_json({"later": 1}))])
    assert verify_chain_against_seal(storage, "session:b", seal) is None
    # Truncating a chain (deleting its last events) leaves its own hashes intact; the
    # head index still names the last event ...
    tamper(storage, "DELETE FROM ledger_events WHERE chain_id = 'class:10' AND seq >= 4")
    (cut,) = storage.ledger.verify(["class:10"]).breaks
    assert cut.seq == 5 and "head index" in cut.reason
    # ... and one who also rewrites the index is still caught by the seal.
    last = storage.ledger.read_chain("class:10")[-1]
    tamper(
        storage,
        "UPDATE ledger_heads SET seq = :seq, hash = :hash WHERE chain_id = 'class:10'",
        seq=last.seq,
        hash=last.hash,
    )
    assert storage.ledger.verify(["class:10"]).ok
    problem = verify_chain_against_seal(storage, "class:10", seal)
    assert problem is not None and "seq 5" in problem
    assert "not covered" in (verify_chain_against_seal(storage, "new:chain", seal) or "")


def test_a_seal_of_format_1_stays_verifiable_and_the_next_seal_verifies_every_chain(
    storage: Storage,
) -> None:
    for n, c in enumerate(["session:a", "session:b"]):
        storage.ledger.append(c, [NewEvent("note", canonical_json({"n": i})) for i in range(n + 3)])
    # A seal as made before seals verified chains: format 1, leaves without `broken`.
    key = sl.private_key(DEV_SEAL_KEY)
    heads = sl.sorted_heads(storage.ledger.heads())
    root = sl.merkle_root(heads)
    text = sl.statement(len(heads), root, T0)
    assert sl.statement_fields(text)["format"] == "supervisor-seal/1" and "broken" not in text
    old = storage.seals.add(T0, root, text, sl.sign(key, text), sl.public_key_hex(key), heads, 2)
    assert verify_chain_against_seal(storage, "session:a", old) is None
    # An edit the old seal signed over without checking: the next seal does not trust it
    # (no verifying seal before it) and re-hashes every chain from its first event.
    tamper(
        storage,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = 'session:b' AND seq = 2",
        p=canonical_json({"n": 99}),
    )
    new = make_seal(storage, DEV_SEAL_KEY, T0)
    assert new is not None
    fields = sl.statement_fields(new.statement)
    assert fields["format"] == "supervisor-seal/2" and fields["broken"] == 1
    leaves = {h.chain_id: h for h in storage.seals.leaves(new.id)}
    assert leaves["session:a"].broken is None
    assert (leaves["session:b"].broken, leaves["session:b"].seq) == (2, 0)
    assert verify_chain_against_seal(storage, "session:a", new) is None
    assert "recorded it broken" in (verify_chain_against_seal(storage, "session:b", new) or "")
    # A broken leaf hashes differently from an intact one with the same head.
    assert sl.leaf_hash("c", 1, "0" * 64) != sl.leaf_hash("c", 1, "0" * 64, 1)
    assert (
        sl.leaf_hash("c", 1, "0" * 64, 1)
        == hashlib.sha256(
            b"\x00"
            + canonical_json({"broken": 1, "chain_id": "c", "hash": "0" * 64, "seq": 1}).encode()
        ).digest()
    )

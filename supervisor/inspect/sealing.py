"""Seals in service: making them, checking chains against them, the periodic sealer.

`seals.py` holds the pure parts (Merkle tree, statement, Ed25519); this module
applies them to the stores. A seal vouches only for chains that it verified:
`integrity` recomputes the chains and then checks their sealed heads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from storage import Storage
from storage.types import ChainHead, Seal, VerifyReport
from supervisor.context import Context
from supervisor.inspect import seals as sl
from supervisor.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SealCheck:
    """A chain against the latest seal."""

    state: str  # sealed_ok | sealed_mismatch | not_sealed | no_seal | bad_signature
    seal_id: int | None
    sealed_at: datetime | None
    sealed_seq: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Integrity:
    chain: VerifyReport
    seal: SealCheck

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.seal.state in ("sealed_ok", "not_sealed", "no_seal")


class SealedTrees:
    """The Merkle tree of the latest seal asked for, built once per process (seals
    never change; 100,000 chains take about half a second to build)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._trees: dict[int, sl.MerkleTree] = {}

    def tree(self, seal: Seal) -> sl.MerkleTree:
        """The seal's tree (blocking on the first call for a seal)."""
        tree = self._trees.get(seal.id)
        if tree is None:
            tree = sl.MerkleTree(sl.sorted_heads(self.storage.seals.leaves(seal.id)))
            self._trees = {seal.id: tree}  # keep only the newest one asked for
        return tree


def integrity(trees: SealedTrees, chain_ids: Sequence[str]) -> Integrity:
    """The chains recomputed, and checked against the latest seal (blocking)."""
    report = trees.storage.ledger.verify(list(chain_ids))
    return Integrity(report, seal_check(trees, chain_ids, report))


def seal_check(trees: SealedTrees, chain_ids: Sequence[str], report: VerifyReport) -> SealCheck:
    """The chains against the latest seal, given their recomputation `report` (blocking)."""
    storage = trees.storage
    seal = storage.seals.latest()
    if seal is None:
        return SealCheck("no_seal", None, None, None, "no seal has been made yet")
    if not sl.signature_valid(seal.public_key, seal.statement, seal.signature):
        return SealCheck(
            "bad_signature",
            seal.id,
            seal.sealed_at,
            None,
            f"seal {seal.id}: its signature is wrong",
        )
    tree = trees.tree(seal)
    covered = [c for c in chain_ids if c in tree.heads]
    if not covered:
        return SealCheck(
            "not_sealed",
            seal.id,
            seal.sealed_at,
            None,
            f"newer than the latest seal ({seal.id})",
        )
    root = str(sl.statement_fields(seal.statement)["root"])
    problems = []
    for chain_id in covered:
        h = tree.heads[chain_id]
        proof = tree.proof(chain_id) or []
        if sl.root_from_proof(chain_id, h.seq, h.hash, proof) != root:
            problems.append(f"{chain_id}: leaf not in the signed root")
            continue
        at = storage.ledger.read_chain(chain_id, after_seq=h.seq - 1, limit=1)
        if not at or at[0].seq != h.seq or at[0].hash != h.hash:
            problems.append(f"{chain_id}: sealed event seq {h.seq} missing or altered")
            continue
        broken = [b for b in report.breaks if b.chain_id == chain_id and b.seq <= h.seq]
        if broken:
            problems.append(
                f"{chain_id}: events up to the sealed seq {h.seq} do not recompute "
                f"(first bad: seq {broken[0].seq})"
            )
    if problems:
        return SealCheck("sealed_mismatch", seal.id, seal.sealed_at, None, "; ".join(problems))
    return SealCheck(
        "sealed_ok",
        seal.id,
        seal.sealed_at,
        tree.heads[covered[0]].seq,
        f"{len(covered)} chain(s) match seal {seal.id}",
    )


def make_seal(
    storage: Storage, seal_key_b64: str, at: datetime, *, only_if_changed: bool = False
) -> Seal | None:
    """Seal the heads of all chains now (blocking; run in a thread). With
    `only_if_changed`, returns None instead when nothing was appended since the last seal."""
    key = sl.private_key(seal_key_b64)
    heads: list[ChainHead] = sl.sorted_heads(storage.ledger.heads())
    root = sl.merkle_root(heads)
    if only_if_changed:
        last = storage.seals.latest()
        if last is not None and last.root == root:
            return None
    text = sl.statement(len(heads), root, at)
    return storage.seals.add(
        at, root, text, sl.sign(key, text), sl.public_key_hex(key), heads, len(heads)
    )


def verify_chain_against_seal(storage: Storage, chain_id: str, seal: Seal) -> str | None:
    """None when the chain holds its sealed head and the proof leads to the signed root;
    otherwise what is wrong."""
    if not sl.signature_valid(seal.public_key, seal.statement, seal.signature):
        return f"seal {seal.id}: signature is wrong"
    tree = sl.MerkleTree(sl.sorted_heads(storage.seals.leaves(seal.id)))
    leaf = tree.heads.get(chain_id)
    proof = tree.proof(chain_id)
    if leaf is None or proof is None:
        return f"chain {chain_id} is not covered by seal {seal.id}"
    root = str(sl.statement_fields(seal.statement)["root"])
    if sl.root_from_proof(chain_id, leaf.seq, leaf.hash, proof) != root:
        return f"chain {chain_id}: leaf does not lead to the signed root"
    at = storage.ledger.read_chain(chain_id, after_seq=leaf.seq - 1, limit=1)
    if not at or at[0].seq != leaf.seq or at[0].hash != leaf.hash:
        return f"chain {chain_id}: sealed event seq {leaf.seq} is missing or altered"
    report = storage.ledger.verify([chain_id])
    if not report.ok:
        b = report.breaks[0]
        return f"chain {chain_id}: event seq {b.seq} broken ({b.reason})"
    return None


class PeriodicSealer:
    """Seals all chain heads every `inspection.seal_interval_s` (0: never), in a thread.

    At start it also builds the Merkle tree of the latest seal in the background, so
    the first replay page does not pay for it (100,000 chains: about half a second).
    """

    def __init__(self, ctx: Context, trees: SealedTrees) -> None:
        self.ctx = ctx
        self.trees = trees
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="periodic-sealer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _warm(self, seal: Seal | None) -> None:
        if seal is not None:
            await self.ctx.db(self.trees.tree, seal)

    async def _run(self) -> None:
        try:
            await self._warm(await self.ctx.db(self.ctx.storage.seals.latest))
        except Exception:  # only a cache; the page builds it when asked
            log.exception("could not prepare the latest seal's tree")
        interval = self.ctx.settings.inspection.seal_interval_s
        if interval <= 0:
            return
        key = self.ctx.settings.security.seal_key.get_secret_value()
        while True:
            await asyncio.sleep(interval)
            try:
                seal = await self.ctx.db(
                    make_seal, self.ctx.storage, key, self.ctx.clock(), only_if_changed=True
                )
                if seal is not None:
                    log.info("sealed %d chains: root %s (seal %d)", seal.chains, seal.root, seal.id)
                    await self._warm(seal)
            except Exception:  # keep sealing later; a failed seal changes nothing
                log.exception("periodic seal failed")

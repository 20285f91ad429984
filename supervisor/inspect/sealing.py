"""Seals in service: making them, checking chains against them, the periodic sealer.

`seals.py` holds the pure parts (Merkle tree, statement, Ed25519); this module
applies them to the stores. A seal vouches only for chains that it verified:
`plan_seal` re-hashes every chain from its previously sealed head before signing,
and records a chain it finds broken as broken (which raises the integrity alarm).
`integrity` recomputes chains and then checks their sealed heads;
`verify_chain_against_all_seals` checks a chain against every seal that covered it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from storage import Storage
from storage.canonical import GENESIS_HASH
from storage.types import BrokenRecord, ChainHead, Seal, VerifyReport
from supervisor.checks.integrity import report_breaks
from supervisor.context import Context
from supervisor.inspect import seals as sl
from supervisor.metrics import Metrics
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
        if sl.root_from_proof(chain_id, h.seq, h.hash, proof, h.broken) != root:
            problems.append(f"{chain_id}: leaf not in the signed root")
            continue
        if h.broken is not None:
            problems.append(f"{chain_id}: seal {seal.id} recorded it broken at seq {h.broken}")
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


@dataclass(frozen=True, slots=True)
class SealPlan:
    """What a seal will cover: a leaf per chain (broken ones marked), and the breaks
    found now (not recorded by an earlier seal)."""

    leaves: list[ChainHead]
    found: list[BrokenRecord]
    verified_events: int  # events re-hashed (from the previously sealed head, or swept whole)
    swept_chains: int = 0  # chains of this seal's sweep share, re-hashed from their start


def sweep_share(chain_id: str, rounds: int) -> int:
    """The sweep round (0..rounds-1) in which a chain is re-hashed from its first event:
    a stable function of its id, so every chain is swept once in any `rounds` seals."""
    digest = hashlib.sha256(chain_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % rounds


def _base(storage: Storage) -> dict[str, ChainHead]:
    """The leaves of the latest seal, when that seal verified what it covers (format 2);
    otherwise nothing: every chain is then verified from its first event."""
    last = storage.seals.latest()
    if last is None or not sl.is_verifying(last.statement):
        return {}
    if not sl.signature_valid(last.public_key, last.statement, last.signature):
        log.error("seal %d: its signature is wrong; verifying every chain from the start", last.id)
        return {}
    return {h.chain_id: h for h in storage.seals.leaves(last.id)}


def plan_seal(
    storage: Storage, at: datetime, sweep_rounds: int = 24, sweep_round: int | None = None
) -> SealPlan:
    """Verify what the next seal covers (blocking).

    Each chain is re-hashed from its head in the previous (format 2) seal up to its
    current head: the sealed event must still be there with its hash and recompute to
    it, and the current head must be reached. A chain broken there, shorter than
    sealed, whose sealed head changed, or gone from the head index, is recorded broken
    with its previously sealed head as its last good one; a chain once recorded broken,
    or registered broken by another verification, stays broken.

    The sealed part itself is swept: in each seal, the chains of one share in
    `sweep_rounds` (`sweep_share`, rotating with the seal's number) are re-hashed from
    their first event instead, so an edit inside an earlier sealed part that left the
    sealed head untouched is found within `sweep_rounds` seals (1: every seal re-hashes
    every event). `sweep_round` names the share (taken modulo `sweep_rounds`); by default
    the number the next seal will get, and the periodic sealer counts its own rounds, so
    the share rotates even while nothing changes and no seal is stored. Such a chain is
    recorded broken at the first event that no longer recomputes, with the event before
    it as its last good head.
    """
    if sweep_rounds < 1:
        raise ValueError("sweep_rounds must be at least 1")
    base = _base(storage)
    if sweep_round is None:
        last_seal = storage.seals.latest()
        sweep_round = (last_seal.id if last_seal is not None else 0) + 1
    this_round = sweep_round % sweep_rounds
    heads = {h.chain_id: h for h in storage.ledger.heads()}
    registered = storage.ledger.broken()
    leaves: dict[str, ChainHead] = {}
    found: list[BrokenRecord] = []
    starts: list[tuple[str, int, str]] = []
    upto: dict[str, int] = {}
    swept: set[str] = set()

    def broken(chain_id: str, prev: ChainHead | None, seq: int, reason: str) -> None:
        good = (prev.seq, prev.hash) if prev is not None else (0, GENESIS_HASH)
        leaves[chain_id] = ChainHead(chain_id, good[0], good[1], seq)
        found.append(BrokenRecord(chain_id, seq, reason, at, "seal"))

    for chain_id in sorted(heads.keys() | base.keys()):
        prev, head = base.get(chain_id), heads.get(chain_id)
        if prev is not None and prev.broken is not None:
            leaves[chain_id] = prev  # recorded broken: stays so
            continue
        known = registered.get(chain_id)
        if known is not None:
            broken(chain_id, prev, known.seq, known.reason)
            continue
        if head is None:
            assert prev is not None
            broken(chain_id, prev, prev.seq, "the chain is gone from the head index")
        elif prev is not None and head.seq < prev.seq:
            broken(
                chain_id,
                prev,
                head.seq + 1,
                f"the chain ends at event {head.seq}, shorter than sealed ({prev.seq})",
            )
        elif prev is not None and head.seq == prev.seq and head.hash != prev.hash:
            broken(chain_id, prev, prev.seq, f"the sealed event {prev.seq} was replaced")
        elif prev is not None and sweep_share(chain_id, sweep_rounds) != this_round:
            starts.append((chain_id, prev.seq, prev.hash))
            upto[chain_id] = head.seq
        else:
            if prev is not None:
                swept.add(chain_id)
            starts.append((chain_id, 0, GENESIS_HASH))
            upto[chain_id] = head.seq
    breaks, last = storage.ledger.verify_from(starts, upto)
    verified = sum(upto[c] - s for c, s, _ in starts)
    for b in breaks:
        prev = base.get(b.chain_id)
        if b.chain_id in swept and prev is not None and b.seq <= prev.seq:
            # Inside the part an earlier seal vouched for: the event before the first bad
            # one recomputed, so it is the last good head.
            good = (
                storage.ledger.read_chain(b.chain_id, after_seq=b.seq - 2, limit=1)
                if b.seq > 1
                else []
            )
            before = ChainHead(b.chain_id, good[0].seq, good[0].hash) if good else None
            why = f"inside the part sealed up to seq {prev.seq}: {b.reason}"
            broken(b.chain_id, before, b.seq, why)
            continue
        broken(b.chain_id, prev, b.seq, b.reason)
    for chain_id, (seq, hash_) in last.items():
        head = heads[chain_id]
        if seq != head.seq or hash_ != head.hash:
            broken(
                chain_id,
                base.get(chain_id),
                seq + 1,
                f"the head index names event {head.seq}, but the chain ends at event {seq}",
            )
        else:
            leaves[chain_id] = ChainHead(chain_id, seq, hash_)
    return SealPlan(sl.sorted_heads(leaves.values()), found, verified, len(swept))


def make_seal(
    storage: Storage,
    seal_key_b64: str,
    at: datetime,
    *,
    only_if_changed: bool = False,
    metrics: Metrics | None = None,
    sweep_rounds: int = 24,
    sweep_round: int | None = None,
) -> Seal | None:
    """Verify, then seal the heads of all chains now (blocking; run in a thread). With
    `only_if_changed`, returns None instead when the root is that of the last seal.

    Chains found broken are sealed as broken (`plan_seal`) and raise the integrity
    alarm (`supervisor.checks.integrity.report_breaks`) once the seal is stored."""
    key = sl.private_key(seal_key_b64)
    plan = plan_seal(storage, at, sweep_rounds, sweep_round)
    root = sl.merkle_root(plan.leaves)
    if only_if_changed:
        last = storage.seals.latest()
        if last is not None and last.root == root and sl.is_verifying(last.statement):
            return None
    n_broken = sum(1 for h in plan.leaves if h.broken is not None)
    text = sl.statement(len(plan.leaves), root, at, n_broken)
    seal = storage.seals.add(
        at, root, text, sl.sign(key, text), sl.public_key_hex(key), plan.leaves, len(plan.leaves)
    )
    if plan.found:
        report_breaks(storage, plan.found, at, seal_id=seal.id, metrics=metrics)
    return seal


def verify_chain_against_seal(storage: Storage, chain_id: str, seal: Seal) -> str | None:
    """None when the chain holds its sealed head and the proof leads to the signed root;
    otherwise what is wrong (a chain the seal recorded broken is wrong)."""
    tree = sl.MerkleTree(sl.sorted_heads(storage.seals.leaves(seal.id)))
    problem = _against(storage, chain_id, seal, tree.heads.get(chain_id), tree)
    if problem is not None:
        return problem
    report = storage.ledger.verify([chain_id])
    if not report.ok:
        b = report.breaks[0]
        return f"chain {chain_id}: event seq {b.seq} broken ({b.reason})"
    return None


def _against(
    storage: Storage,
    chain_id: str,
    seal: Seal,
    leaf: ChainHead | None,
    tree: sl.MerkleTree | None,
) -> str | None:
    if not sl.signature_valid(seal.public_key, seal.statement, seal.signature):
        return f"seal {seal.id}: signature is wrong"
    proof = tree.proof(chain_id) if tree is not None else None
    if leaf is None or (tree is not None and proof is None):
        return f"chain {chain_id} is not covered by seal {seal.id}"
    if proof is not None:
        root = str(sl.statement_fields(seal.statement)["root"])
        if sl.root_from_proof(chain_id, leaf.seq, leaf.hash, proof, leaf.broken) != root:
            return f"chain {chain_id}: leaf does not lead to the signed root of seal {seal.id}"
    if leaf.broken is not None:
        return f"chain {chain_id}: seal {seal.id} recorded it broken at event seq {leaf.broken}"
    at = storage.ledger.read_chain(chain_id, after_seq=leaf.seq - 1, limit=1)
    if not at or at[0].seq != leaf.seq or at[0].hash != leaf.hash:
        return (
            f"chain {chain_id}: event seq {leaf.seq} sealed by seal {seal.id} is missing or altered"
        )
    return None


@dataclass(frozen=True, slots=True)
class SealVerdict:
    seal_id: int
    sealed_at: datetime
    problem: str | None


def verify_chain_against_all_seals(
    storage: Storage, chain_id: str, trees: SealedTrees | None = None
) -> tuple[list[SealVerdict], str | None]:
    """The chain against every seal that covered it, oldest first, and its full
    recomputation (None: intact) (blocking). Each seal's Merkle tree is built to check
    the leaf's inclusion (`trees` caches the latest one asked for)."""
    verdicts = []
    for seal, leaf in storage.seals.covering(chain_id):
        tree = (
            trees.tree(seal)
            if trees is not None
            else sl.MerkleTree(sl.sorted_heads(storage.seals.leaves(seal.id)))
        )
        verdicts.append(
            SealVerdict(seal.id, seal.sealed_at, _against(storage, chain_id, seal, leaf, tree))
        )
    report = storage.ledger.verify([chain_id])
    whole = None
    if not report.ok:
        b = report.breaks[0]
        whole = f"chain {chain_id}: event seq {b.seq} broken ({b.reason})"
    return verdicts, whole


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
        rounds = self.ctx.settings.inspection.seal_sweep_rounds
        tick = 0
        while True:
            await asyncio.sleep(interval)
            tick += 1
            try:
                seal = await self.ctx.db(
                    make_seal,
                    self.ctx.storage,
                    key,
                    self.ctx.clock(),
                    only_if_changed=True,
                    metrics=self.ctx.metrics,
                    sweep_rounds=rounds,
                    sweep_round=tick,
                )
                if seal is not None:
                    log.info("sealed %d chains: root %s (seal %d)", seal.chains, seal.root, seal.id)
                    await self._warm(seal)
            except Exception:  # keep sealing later; a failed seal changes nothing
                log.exception("periodic seal failed")

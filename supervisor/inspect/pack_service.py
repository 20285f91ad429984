"""Building evidence packs of a session, a class or a learner (the format is `packs.py`).

A pack holds the subject's chains, their frames (or, once purged, only their
hashes), the latest seal with an inclusion proof per chain, and a signature by
the seal key over the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.exceptions import EvidencePurged, IntegrityViolation, NotFound
from storage.types import ChainHead, Learner
from supervisor.auth import Principal
from supervisor.context import Context
from supervisor.errors import UnknownId
from supervisor.inspect import seals as sl
from supervisor.inspect.access import Workspace, require_workspace
from supervisor.inspect.packs import PackFrame, build_pack, evidence_hashes
from supervisor.inspect.sealing import SealedTrees
from supervisor.ledger import classroom as cev
from supervisor.ledger import events as ev


class EvidencePacks:
    def __init__(self, ctx: Context, workspace: Workspace, trees: SealedTrees) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.workspace = workspace
        self.trees = trees

    async def pack(self, p: Principal, subject: str, ident: str) -> tuple[str, bytes]:
        """An evidence pack of a session, a class or a learner; (file name, zip bytes)."""
        require_workspace(p)
        if subject == "session":
            s = await self.workspace.session(p, ident)
            chains = [s.chain_id]
            await self.workspace.log(
                p,
                "evidence_pack",
                institution_id=s.institution_id,
                learner_id=s.learner_id,
                session_id=s.id,
            )
            info = {"kind": "session", "session_id": s.id, "learner_id": s.learner_id}
        elif subject == "class":
            if not ident.isdigit():
                raise UnknownId("unknown class")
            tc = await self.workspace.training_class(p, int(ident))
            chains = await self.ctx.db(self.workspace.class_chains, tc)
            await self.workspace.log(
                p, "evidence_pack", institution_id=tc.institution_id, class_id=tc.id
            )
            info = {"kind": "class", "class_id": tc.id}
        elif subject == "learner":
            if not ident.isdigit():
                raise UnknownId("unknown learner")
            lr = await self.workspace.learner(p, int(ident))
            sessions = await self.ctx.db(self.storage.registry.list_sessions, None, lr.id, False)
            classes = await self.ctx.db(self._learner_classes, lr)
            chains = [ev.learner_chain(lr.id)] + [s.chain_id for s in sessions]
            chains += [cev.learner_class_chain(c, lr.id) for c in classes]
            await self.workspace.log(
                p, "evidence_pack", institution_id=lr.institution_id, learner_id=lr.id
            )
            info = {"kind": "learner", "learner_id": lr.id}
        else:
            raise UnknownId("a pack is of a session, a class or a learner")
        data = await self.ctx.db(self._pack, info, chains)
        return f"evidence-{subject}-{ident}.zip", data

    def _learner_classes(self, learner: Learner) -> list[int]:
        """The classes whose roster holds the learner."""
        return [
            tc.id
            for tc in self.storage.classroom.list_classes(learner.institution_id)
            if any(r.learner_id == learner.id for r in self.storage.classroom.roster(tc.id))
        ]

    def _pack(self, info: dict[str, object], chain_ids: Sequence[str]) -> bytes:
        chains = [(c, self.storage.ledger.read_chain(c)) for c in chain_ids]
        chains = [(c, evs) for c, evs in chains if evs]
        hashes = {h for _, evs in chains for st in evs for h in evidence_hashes(st.payload)}
        frames = []
        for sha in sorted(hashes):
            try:
                rec = self.storage.evidence.record(sha)
                frames.append(
                    PackFrame(sha, "retained", rec.content_type, self.storage.evidence.get(sha))
                )
            except EvidencePurged:
                frames.append(PackFrame(sha, "purged"))
            except (NotFound, IntegrityViolation):
                # Shipped as missing: the verifier then names it, as it must.
                frames.append(PackFrame(sha, "missing"))
        seal = self.storage.seals.latest()
        proofs: dict[str, tuple[ChainHead, list[sl.ProofStep]]] = {}
        if seal is not None:
            tree = self.trees.tree(seal)
            for chain_id, _ in chains:
                proof = tree.proof(chain_id)
                if proof is not None:
                    proofs[chain_id] = (tree.heads[chain_id], proof)
        key = sl.private_key(self.ctx.settings.security.seal_key.get_secret_value())
        return build_pack(info, chains, frames, seal, proofs, key, self.ctx.clock())

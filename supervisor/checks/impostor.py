"""Somebody studying for others: at an identity check, is the face in the check
frame closer to another learner's template than to the learner's own?

Runs in the verification worker, after the check is recorded (never on the event
loop): the decisive frame's face is encoded once more (one pass, about the cost
of one check frame) and searched 1:N among the templates of the learner's
institution only, which a worker keeps for `subsidy.impostor_cache_s` seconds.
A face within `face.match_threshold` of another learner, and nearer to them than
to the learner's own templates, raises one `check_impostor` flag per session and
other learner, with the check event and its evidence frame as evidence.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from config import Settings
from storage import Storage
from storage.types import LedgerEvent, TemplateModel
from supervisor.checks.flags import raise_flag
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules.flags import EvidenceRef, view
from verification.matching import as_matrix, distances, nearest
from verification.protocols import FaceEngine
from verification.types import Vector

log = logging.getLogger(__name__)

KIND = "check_impostor"


@dataclass
class InstitutionTemplates:
    """Per-worker cache of each institution's templates of one face model:
    (institution, model) -> (time, matrix, learner ids)."""

    ttl_s: float
    cache: dict[tuple[int, str], tuple[float, Any, list[int]]] = field(default_factory=dict)

    def get(
        self, storage: Storage, institution_id: int, model: TemplateModel
    ) -> tuple[Any, list[int]]:
        key = (institution_id, model.key)
        found = self.cache.get(key)
        now = time.monotonic()
        if found is not None and now - found[0] < self.ttl_s:
            return found[1], found[2]
        members = {lr.id for lr in storage.registry.list_learners(institution_id)}
        templates = [t for t in storage.templates.all(model) if t.learner_id in members]
        matrix = as_matrix([t.vector for t in templates]) if templates else None
        ids = [t.learner_id for t in templates]
        self.cache[key] = (now, matrix, ids)
        return matrix, ids


def search_after_check(
    settings: Settings,
    storage: Storage,
    engine: FaceEngine,
    cache: InstitutionTemplates,
    learner_id: int,
    session_id: str,
    image: Any,
    stored: LedgerEvent,
    now: datetime,
    probe: Vector | None = None,
) -> int | None:
    """Flag the check if its face is nearer another learner of the institution; returns
    the flag id (None when nothing was raised). Blocking; failures are logged, never
    raised, because the check itself is already recorded.

    `probe` is the encoding the identity check already made of `image`'s face (the
    same one pass over the same face); without it the face is encoded again."""
    try:
        check = codec.decode(stored)
        if not isinstance(check, ev.CheckRecorded) or check.faces != 1:
            return None
        learner = storage.registry.get_learner(learner_id)
        face = engine.model
        matrix, ids = cache.get(
            storage, learner.institution_id, TemplateModel(face.engine, face.model_hash)
        )
        if matrix is None or all(i == learner_id for i in ids):
            return None
        if probe is None:
            enc = engine.encode_largest(image)
            if enc is None:
                return None
            probe = enc.vector
        own_rows = [n for n, i in enumerate(ids) if i == learner_id]
        other_rows = [n for n, i in enumerate(ids) if i != learner_id]
        others = matrix[other_rows]
        index, other_distance = nearest(probe, others, face.metric)
        own_distance = (
            float(np.min(distances(probe, matrix[own_rows], face.metric))) if own_rows else None
        )
        threshold = engine.threshold
        if other_distance > threshold or (
            own_distance is not None and own_distance <= other_distance
        ):
            return None
        other = ids[other_rows[index]]
        key = f"{KIND}:{session_id}:{other}"
        for f in storage.subsidy.find_flags(kind=KIND, learner_id=learner_id):
            if view(f).key == key:
                return None
        flag = raise_flag(
            storage,
            KIND,
            learner.institution_id,
            learner_id,
            [other],
            f"a check frame of learner {learner_id} matches learner {other} "
            f"({other_distance:.3f}) better than the learner's own face"
            + (f" ({own_distance:.3f})" if own_distance is not None else ""),
            [
                EvidenceRef(
                    stored.chain_id,
                    stored.seq,
                    stored.hash,
                    check.evidence_sha256,
                    {
                        "other_distance": other_distance,
                        "own_distance": own_distance,
                        "threshold": threshold,
                        "verdict": check.verdict,
                    },
                )
            ],
            now,
            key=key,
        )
        return flag.id
    except Exception:  # noqa: BLE001 - the check is recorded; a failed search only logs
        log.exception("impostor search after check %s failed", stored.chain_id)
        return None

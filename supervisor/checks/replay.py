"""Replayed frames: a check or sign-in frame that is a frame kept before, posted again.

Every kept frame (an enrolment photo, a check's evidence frame) leaves a signature of
its face (`verification.replay`, encrypted in `storage.signatures`). A new frame whose
face registers onto one of the institution's signatures, through re-encoding, noise,
small crops and scaling, is the same picture: the check fails as `replayed_frame` and
a `replayed_frame` flag names the frame it copies. Honest frames of one learner a
check apart differ more than that (bench/replay_eval.py); frames of the same check are
never compared with each other (that is liveness's `frozen`).

Each worker keeps each institution's bank, reads the signatures other workers kept since
(one small indexed read per check), and reads the whole bank again every
`liveness.replay_cache_s` seconds, which drops the signatures deleted meanwhile
(withdrawn consent, retention).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from storage import Storage
from storage.types import LedgerEvent, StoredSignature
from supervisor.checks.flags import raise_flag
from supervisor.rules.flags import EvidenceRef, view
from verification import replay
from verification.protocols import FaceEngine
from verification.types import FaceBox, Image, ReplayMatch

log = logging.getLogger(__name__)

FLAG = "replayed_frame"


@dataclass(frozen=True, slots=True)
class Replayed:
    """A new frame found to be a kept frame posted again."""

    match: ReplayMatch
    copied: StoredSignature  # the kept frame it copies


@dataclass
class ReplayGuard:
    """Each institution's kept-frame signatures, cached in one worker process."""

    ttl_s: float
    banks: dict[int, tuple[float, replay.SignatureBank, list[StoredSignature]]] = field(
        default_factory=dict
    )

    def _bank(
        self, storage: Storage, institution_id: int
    ) -> tuple[replay.SignatureBank, list[StoredSignature]]:
        found = self.banks.get(institution_id)
        now = time.monotonic()
        if found is None or now - found[0] >= self.ttl_s:
            rows = storage.signatures.for_institution(institution_id)
            bank = replay.SignatureBank.from_bytes(r.signature for r in rows)
            found = self.banks[institution_id] = (now, bank, rows)
            return bank, rows
        read_at, bank, rows = found
        newer = storage.signatures.for_institution(institution_id, rows[-1].id if rows else 0)
        if newer:
            bank = bank.extended(replay.decode_signature(r.signature) for r in newer)
            rows = [*rows, *newer]
            self.banks[institution_id] = (read_at, bank, rows)
        return bank, rows

    def probe(
        self, engine: FaceEngine, image: Image, box: FaceBox | None
    ) -> replay.ReplayProbe | None:
        """The frame prepared for comparison, or None when it has no usable face."""
        if box is None:
            return None
        try:
            return replay.probe_frame(image, box, engine.landmarks(image, box, 5))
        except ValueError:
            return None

    def find(
        self, storage: Storage, institution_id: int, probe: replay.ReplayProbe
    ) -> Replayed | None:
        bank, rows = self._bank(storage, institution_id)
        if not len(bank):
            return None
        match = replay.find_replay(probe, bank)
        if not match.replayed or match.index is None:
            return None
        return Replayed(match, rows[match.index])

    def keep(
        self,
        storage: Storage,
        learner_id: int,
        institution_id: int,
        evidence_sha256: str,
        kind: str,
        probe: replay.ReplayProbe,
        retain_until: datetime,
    ) -> None:
        """Keep the signature of a frame just kept as evidence, and add it to the bank."""
        storage.signatures.add(
            learner_id,
            evidence_sha256,
            kind,
            replay.encode_signature(probe.signature),
            retain_until,
        )


def raise_replay_flag(
    storage: Storage,
    institution_id: int,
    learner_id: int,
    session_id: str,
    found: Replayed,
    check: LedgerEvent | None,
    at: datetime,
) -> None:
    """One `replayed_frame` flag per session (a refused sign-in: per attempt), with the
    check event (when recorded) and the kept frame it copies as evidence. Blocking;
    failures are logged, never raised: the check itself is decided."""
    try:
        key = f"{FLAG}:{session_id}"
        for f in storage.subsidy.find_flags(kind=FLAG, learner_id=learner_id):
            if view(f).key == key:
                return
        copied = found.copied
        evidence: list[EvidenceRef] = [
            EvidenceRef(
                None,
                None,
                None,
                copied.evidence_sha256,
                {"copied": copied.kind, "learner_id": copied.learner_id},
            )
        ]
        if check is not None:
            evidence.insert(
                0,
                EvidenceRef(
                    check.chain_id,
                    check.seq,
                    check.hash,
                    None,
                    {"score": found.match.score, "threshold": found.match.threshold},
                ),
            )
        others: Sequence[int] = [copied.learner_id] if copied.learner_id != learner_id else []
        raise_flag(
            storage,
            FLAG,
            institution_id,
            learner_id,
            others,
            f"a frame of learner {learner_id} is a kept {copied.kind} frame posted again",
            evidence,
            at,
            key=key,
            scores={"score": found.match.score},
        )
    except Exception:  # noqa: BLE001 - the check is decided; a failed flag only logs
        log.exception("replayed-frame flag for session %s failed", session_id)

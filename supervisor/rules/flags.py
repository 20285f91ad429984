"""Fraud flags as values: their details, their evidence and how they read back.

A flag's `details` (canonical JSON) hold its summary, the other learners named, a
de-duplication key and its evidence: a list of
`{"chain_id", "seq", "hash", "evidence_sha256", "scores"}` pointing at the ledger
events (and evidence frames) it rests on. The flag's first ledger event,
`flag_raised`, carries the SHA-256 of these details, so the chain covers them.
Raising one is `supervisor.checks.flags.raise_flag`; deciding one is
`supervisor.subsidy.flags.decide`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.canonical import canonical_json
from storage.types import Flag
from supervisor.ledger import subsidy as se

SUMMARIES = {
    "chain_broken": "a ledger chain was found broken (altered in the database)",
    "duplicate_identity": "the same face is enrolled under another identity",
    "liveness_spoof": "repeated spoof signs in one session",
    "assessment_headcount": "faces in an assessment room differ from the candidates",
    "assessment_unknown_face": "a face in an assessment matches nobody on the roster",
}


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    chain_id: str | None
    seq: int | None
    hash: str | None
    evidence_sha256: str | None
    scores: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlagView:
    flag: Flag
    summary: str
    other_learner_ids: tuple[int, ...]
    evidence: tuple[EvidenceRef, ...]
    key: str | None
    # Learners named by the flag whose ids are not shown to this reader (another
    # institution's, to an operator).
    others_elsewhere: int = 0


class MissingEvidence(ValueError):
    """A flag raised without what it rests on: a bug in the code that raises it."""


def evidence_problem(learner_id: int | None, evidence: Sequence[EvidenceRef]) -> str | None:
    """Why this evidence cannot carry a flag, or None.

    Every entry names a recorded ledger event in full (chain, seq and hash) or a kept
    frame (its SHA-256), or both: an entry with neither points at nothing an inspector
    can open. A flag about a learner rests on at least one entry; only a flag about an
    institution's statistics (a pass rate far from its peers') rests on its scores.
    """
    for i, e in enumerate(evidence):
        event = e.chain_id is not None and e.seq is not None and e.hash is not None
        if not event and not e.evidence_sha256:
            return (
                f"evidence entry {i} names neither a ledger event (chain {e.chain_id!r}, "
                f"seq {e.seq!r}, hash {e.hash!r}) nor a frame"
            )
    if learner_id is not None and not evidence:
        return "a flag about a learner must carry its evidence"
    return None


def details_json(
    summary: str,
    evidence: Sequence[EvidenceRef],
    other_learner_ids: Sequence[int] = (),
    key: str | None = None,
    scores: dict[str, Any] | None = None,
) -> str:
    return canonical_json(
        {
            "summary": summary,
            "key": key,
            "other_learner_ids": list(other_learner_ids),
            "scores": _clean(scores or {}),
            "evidence": [
                {
                    "chain_id": e.chain_id,
                    "seq": e.seq,
                    "hash": e.hash,
                    "evidence_sha256": e.evidence_sha256,
                    "scores": _clean(e.scores),
                }
                for e in evidence
            ],
        }
    )


def _clean(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()}


def raised_event(flag: Flag, summary: str, at: datetime) -> se.FlagRaised:
    others = view(flag).other_learner_ids
    learners = ((flag.learner_id,) if flag.learner_id is not None else ()) + tuple(
        i for i in others if i != flag.learner_id
    )
    return se.FlagRaised(
        flag.id,
        flag.kind,
        flag.institution_id,
        learners,
        summary,
        hashlib.sha256(flag.details.encode()).hexdigest(),
        at,
    )


def view(flag: Flag) -> FlagView:
    """The flag's summary, other learners and evidence, also for flags raised before
    evidence lists existed (their details become one evidence entry)."""
    try:
        details = json.loads(flag.details)
    except ValueError:
        details = {}
    if not isinstance(details, dict):
        details = {}
    others = details.get("other_learner_ids")
    if not isinstance(others, list):
        others = [flag.other_learner_id] if flag.other_learner_id is not None else []
    summary = details.get("summary") or SUMMARIES.get(flag.kind, flag.kind.replace("_", " "))
    found = details.get("evidence")
    evidence: list[EvidenceRef] = []
    if isinstance(found, list):
        for e in found:
            if isinstance(e, dict):
                evidence.append(
                    EvidenceRef(
                        e.get("chain_id"),
                        e.get("seq"),
                        e.get("hash"),
                        e.get("evidence_sha256"),
                        e.get("scores") or {},
                    )
                )
    else:
        scores = {k: v for k, v in details.items() if isinstance(v, int | float) and k != "flag_id"}
        chain = details.get("session_id")
        evidence.append(
            EvidenceRef(
                f"session:{chain}" if isinstance(chain, str) else None,
                None,
                None,
                details.get("evidence_sha256"),
                scores,
            )
        )
    key = details.get("key")
    return FlagView(flag, str(summary), tuple(int(i) for i in others), tuple(evidence), key)

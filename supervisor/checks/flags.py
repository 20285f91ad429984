"""Raising a fraud flag: the one way, from every wing that finds one.

A flag is raised in the registry (where staff list and decide it) and recorded in
its own ledger chain (`flag:<id>`) in the same call, with its evidence in its
details (`supervisor.rules.flags`). Checks raise them after a check (an impostor),
live supervision after repeated spoof signs, enrolment on a duplicate face,
classroom supervision on an assessment's headcount, and the fraud scan. A flag
always carries its evidence: each entry names a recorded event or a kept frame,
and this is checked here, for every wing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage import Storage
from storage.types import Flag
from supervisor.ledger import codec
from supervisor.ledger import subsidy as se
from supervisor.rules.flags import (
    EvidenceRef,
    MissingEvidence,
    details_json,
    evidence_problem,
    raised_event,
    view,
)


def raise_flag(
    storage: Storage,
    kind: str,
    institution_id: int | None,
    learner_id: int | None,
    other_learner_ids: Sequence[int],
    summary: str,
    evidence: Sequence[EvidenceRef],
    at: datetime,
    key: str | None = None,
    scores: dict[str, Any] | None = None,
) -> Flag:
    """Raise a flag in the registry and record it in its ledger chain (blocking).

    Raises `MissingEvidence` (and raises nothing) when `evidence` does not say what
    the flag rests on (`supervisor.rules.flags.evidence_problem`)."""
    problem = evidence_problem(learner_id, evidence)
    if problem is not None:
        raise MissingEvidence(f"{kind} flag not raised: {problem}")
    details = details_json(summary, evidence, other_learner_ids, key, scores)
    flag = storage.registry.raise_flag(
        kind,
        details,
        institution_id,
        learner_id,
        other_learner_ids[0] if other_learner_ids else None,
    )
    record_raised(storage, flag, at)
    return flag


def record_raised(storage: Storage, flag: Flag, at: datetime) -> None:
    """Put a flag raised in the registry into the ledger (blocking; once per flag)."""
    chain = se.flag_chain(flag.id)
    storage.ledger.append_once(
        chain, "raised", [codec.encode(raised_event(flag, view(flag).summary, at))]
    )

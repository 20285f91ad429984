"""The integrity alarm: the one way to report a chain found broken, from every wing.

A chain found broken (by a seal, or by a scan for eligibility, claims or reports) is
put in the storage register of broken chains: appends to it are refused from then
on and no money is paid from it. The first time a chain is registered, the alarm
goes off once: a `chain_break_found` event in the `integrity` chain, the
`supervisor_chain_breaks` metric, and a `chain_broken` flag for the bureau naming
the learner and institution the chain belongs to (when it can be told).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime

from storage import Storage
from storage.exceptions import BrokenChain, StorageError
from storage.types import BrokenRecord
from supervisor.checks.flags import raise_flag
from supervisor.ledger import codec
from supervisor.ledger.inspection import INTEGRITY_CHAIN, ChainBreakFound
from supervisor.metrics import Metrics
from supervisor.rules.flags import EvidenceRef

log = logging.getLogger(__name__)

FLAG_KIND = "chain_broken"
_CLASS_LEARNER = re.compile(r"class:(\d+):learner:(\d+)")
_NUMBERED = re.compile(r"(learner|course|institution|flag|class):(\d+)")


def owner(storage: Storage, chain_id: str) -> tuple[int | None, int | None]:
    """(learner, institution) a chain belongs to, as far as the registry tells
    (blocking). Nothing is read from the chain itself: it is not trusted."""
    try:
        if chain_id.startswith("session:"):
            s = storage.registry.get_session(chain_id.split(":", 1)[1])
            return s.learner_id, s.institution_id
        m = _CLASS_LEARNER.fullmatch(chain_id)
        if m is not None:
            c = storage.classroom.get_class(int(m.group(1)))
            return int(m.group(2)), c.institution_id
        m = _NUMBERED.fullmatch(chain_id)
        if m is None:
            return None, None
        kind, n = m.group(1), int(m.group(2))
        if kind == "learner":
            return n, storage.registry.get_learner(n).institution_id
        if kind == "course":
            return None, storage.registry.get_course(n).institution_id
        if kind == "institution":
            return None, n
        if kind == "flag":
            f = storage.subsidy.get_flag(n)
            return f.learner_id, f.institution_id
        return None, storage.classroom.get_class(n).institution_id
    except StorageError:  # unknown: the flag names nobody, the bureau still sees it
        return None, None


def report_breaks(
    storage: Storage,
    found: Sequence[BrokenRecord],
    at: datetime,
    *,
    seal_id: int | None = None,
    metrics: Metrics | None = None,
) -> list[BrokenRecord]:
    """Register chains found broken and raise the alarm for each one not registered
    before (blocking). Returns those. Safe to call again with the same chains."""
    new = storage.ledger.mark_broken(list(found))
    for r in new:
        log.error("integrity alarm: chain %s broken at seq %d (%s)", r.chain_id, r.seq, r.reason)
        if metrics is not None:
            metrics.chain_breaks.labels(found_by=r.found_by).inc()
        learner_id, institution_id = owner(storage, r.chain_id)
        # The alarm is recorded first, in the integrity chain: the flag for the bureau
        # rests on that event (the broken chain's own events are what cannot be trusted,
        # and a truncated chain may no longer hold the event at its first bad seq).
        event = ChainBreakFound(r.chain_id, r.seq, r.reason, r.found_by, at, seal_id, None)
        evidence: list[EvidenceRef] = []
        try:
            (stored,) = storage.ledger.append(INTEGRITY_CHAIN, [codec.encode(event)])
            evidence.append(
                EvidenceRef(
                    stored.chain_id,
                    stored.seq,
                    stored.hash,
                    None,
                    {"found_by": r.found_by, "broken_chain": r.chain_id, "first_bad_seq": r.seq},
                )
            )
        except BrokenChain:  # the integrity chain itself: registered above
            log.error("the integrity chain is broken; alarm for %s not recorded in it", r.chain_id)
        if not evidence:
            continue  # a flag with no evidence is never raised; the register holds it
        try:
            raise_flag(
                storage,
                FLAG_KIND,
                institution_id,
                learner_id,
                (),
                f"chain {r.chain_id} is broken at event {r.seq}: {r.reason}",
                evidence,
                at,
                key=f"{FLAG_KIND}:{r.chain_id}",
            )
        except StorageError:
            log.exception("could not raise the flag of broken chain %s", r.chain_id)
    return new

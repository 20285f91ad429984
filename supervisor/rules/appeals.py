"""Appeals as the rules read them: a pure function of the appeal chains.

A learner's appeal (`supervisor.ledger.appeals`) names a flag, or a check or a roll
call by the (chain, seq) of its ledger event. Once the bureau or an inspector upholds
it, it reaches eligibility:

- on a flag, through the flag itself: the decision appends a `flag_decided`
  (dismissed, its note naming the appeal) to the flag's chain, and the flag stops
  holding the learner up like any other dismissed flag;
- on a failed check (`check` not passed, or `check_missed`) or a missed roll call
  (`class_presence` absent), by an override: when the chain is credited, that one
  event is read as a passed check at its own moment (a missed check at the moment it
  was asked for), and the one crediting rule (`supervisor.rules.crediting`) runs
  unchanged over the chain.

How much comes back: at most the interval the failure had stopped, never more than
the course's rules allow. The failure stopped the clock from the last passed check
before it until the next passed check (or resumption) after it; read as passed, it
credits the gap before it and the gap after it, each only if it is at most the
rule's `max_gap`, and nothing across a pause, an outage, another failure or the end
of a session, which still stop the clock as before. An override on an event that is
not a failure (a passed check, any other kind) changes nothing; an open or dismissed
appeal changes nothing.

The stored chain summaries (`storage.summaries`) stay summaries of the chains alone,
keyed by their verified heads: the readers (`supervisor.subsidy.scan`) fold the
chains named by an upheld appeal again from their events with the overrides, after
reading the summaries, so an appeal decided after a summary was stored takes effect
at the next reading.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from supervisor.ledger import appeals as ae
from supervisor.ledger import events as ev

OPEN, UPHELD, DISMISSED = "open", "upheld", "dismissed"


@dataclass(frozen=True, slots=True)
class AppealSummary:
    appeal_id: int
    learner_id: int
    subject: str  # flag | check | roll_call
    flag_id: int | None
    chain_id: str | None
    seq: int | None
    status: str  # open | upheld | dismissed
    filed_at: datetime
    decided_at: datetime | None


def summarise_appeal(events: Iterable[ev.Event]) -> AppealSummary | None:
    """An appeal chain's filing and its (first) decision; None without a filing."""
    filed: ae.AppealFiled | None = None
    decided: ae.AppealDecided | None = None
    for e in events:
        if isinstance(e, ae.AppealFiled) and filed is None:
            filed = e
        elif isinstance(e, ae.AppealDecided) and decided is None:
            decided = e
    if filed is None:
        return None
    status = OPEN if decided is None else (UPHELD if decided.upheld else DISMISSED)
    return AppealSummary(
        filed.appeal_id,
        filed.learner_id,
        filed.subject,
        filed.flag_id,
        filed.chain_id,
        filed.seq,
        status,
        filed.at,
        decided.at if decided is not None else None,
    )


def overrides(appeals: Iterable[AppealSummary]) -> dict[str, frozenset[int]]:
    """chain -> the seqs of its events that upheld appeals on checks and roll calls
    have the crediting read as passed."""
    found: dict[str, set[int]] = {}
    for a in appeals:
        if a.status != UPHELD or a.subject == "flag" or a.chain_id is None or a.seq is None:
            continue
        found.setdefault(a.chain_id, set()).add(a.seq)
    return {c: frozenset(s) for c, s in found.items()}


def credited_back(
    events: Iterable[tuple[int, ev.Event]], upheld: Collection[int]
) -> list[ev.Event]:
    """The chain's events (with their seqs, in ledger order) as the crediting reads them
    once the failures at `upheld` seqs are overturned: a failed check or roll call
    becomes passed, a missed check a passed check at the moment it was asked for."""
    out: list[ev.Event] = []
    for seq, e in events:
        if seq in upheld:
            if isinstance(e, ev.CheckRecorded) and not e.passed:
                e = replace(e, passed=True)
            elif isinstance(e, ev.CheckMissed):
                e = ev.CheckRecorded(
                    e.check_id,
                    e.check_kind,
                    "scheduled",
                    "missed_upheld_on_appeal",
                    True,
                    e.scheduled_at,
                    None,
                    None,
                    (),
                    0,
                    0,
                    None,
                    e.scheduled_at,
                )
        out.append(e)
    return out


def is_failure(e: ev.Event) -> bool:
    """An event an appeal on a check or a roll call can name."""
    return (isinstance(e, ev.CheckRecorded) and not e.passed) or isinstance(e, ev.CheckMissed)

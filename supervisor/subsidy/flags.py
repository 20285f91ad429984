"""Deciding a fraud flag: each decision is a new `flag_decided` event in the flag's chain.

A flag may be decided again; each decision names the decision it supersedes
(nothing is overwritten in the ledger). An operator may not overturn a decision
made by an inspector or admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage import Storage
from storage.types import Flag, FlagDecision, FlagStatus, LedgerEvent
from supervisor.checks.flags import record_raised
from supervisor.ledger import codec
from supervisor.ledger import subsidy as se


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision: FlagDecision
    event: LedgerEvent


def decide(
    storage: Storage,
    flag: Flag,
    status: str,
    note: str,
    by: str,
    by_operator: bool,
    at: datetime,
) -> DecisionRecord:
    """Append a decision to the flag's chain and record it (blocking).

    Raises `PermissionError` when an operator would overturn a staff decision."""
    chain = se.flag_chain(flag.id)
    record_raised(storage, flag, flag.created_at)
    previous: tuple[LedgerEvent, se.FlagDecided] | None = None
    for stored, e in codec.decode_all(storage.ledger.read_chain(chain)):
        if isinstance(e, se.FlagDecided):
            previous = (stored, e)
    if previous is not None and by_operator and not previous[1].decided_by.startswith("operator:"):
        raise PermissionError("an operator cannot overturn an inspector's or admin's decision")
    event = se.FlagDecided(flag.id, status, note, by, previous[0].seq if previous else None, at)
    (stored,) = storage.ledger.append(chain, [codec.encode(event)])
    decision = storage.subsidy.record_decision(
        flag.id, FlagStatus(status), note, by, at, (stored.chain_id, stored.seq, stored.hash)
    )
    return DecisionRecord(decision, stored)

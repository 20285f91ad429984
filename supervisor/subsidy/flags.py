"""Deciding a fraud flag, and the institution's statements on one: events in the flag's chain.

A flag is decided by the bureau or an inspector, never by the institution it is
about. It may be decided again; each decision is a new `flag_decided` event naming
the decision it supersedes (nothing is overwritten in the ledger). A confirmation
holds against the flagged learner and, when it names them, against the other
learners the flag names. The institution may attach statements (`flag_statement`),
which are recorded and shown but decide nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    at: datetime,
    against: Sequence[int] = (),
) -> DecisionRecord:
    """Append a decision to the flag's chain and record it (blocking). `against`: the
    other learners a confirmation also holds against (a subset of those it names)."""
    chain = se.flag_chain(flag.id)
    record_raised(storage, flag, flag.created_at)
    previous: LedgerEvent | None = None
    for stored, e in codec.decode_all(storage.ledger.read_chain(chain)):
        if isinstance(e, se.FlagDecided):
            previous = stored
    event = se.FlagDecided(
        flag.id,
        status,
        note,
        by,
        previous.seq if previous is not None else None,
        at,
        tuple(sorted(set(against))) if against else None,
    )
    (stored,) = storage.ledger.append(chain, [codec.encode(event)])
    decision = storage.subsidy.record_decision(
        flag.id, FlagStatus(status), note, by, at, (stored.chain_id, stored.seq, stored.hash)
    )
    return DecisionRecord(decision, stored)


def add_statement(storage: Storage, flag: Flag, statement: str, by: str, at: datetime) -> None:
    """Record the institution's statement on a flag (blocking)."""
    record_raised(storage, flag, flag.created_at)
    event = se.FlagStatement(flag.id, statement, by, at)
    storage.ledger.append(se.flag_chain(flag.id), [codec.encode(event)])


def statements(storage: Storage, flag_id: int) -> list[se.FlagStatement]:
    """The statements on a flag, in the order they were made (blocking)."""
    return [
        e
        for _, e in codec.decode_all(storage.ledger.read_chain(se.flag_chain(flag_id)))
        if isinstance(e, se.FlagStatement)
    ]

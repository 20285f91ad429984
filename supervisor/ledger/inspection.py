"""Ledger events of inspection: spot-check draws, the inspectors' verdicts, and
the integrity alarms.

One chain per draw, `spotcheck:<draw_id>`: first `spot_check_drawn` with the seed
and the inputs from which the sample was drawn (so anyone can redraw it and get
the same sessions), then one `spot_check_verdict` per reviewed session.

One chain, `integrity`, holds a `chain_break_found` per chain found broken (by a
seal, a scan for claims or eligibility): the alarm, with the flag it raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


def spot_check_chain(draw_id: str) -> str:
    return f"spotcheck:{draw_id}"


@dataclass(frozen=True, slots=True)
class SpotCheckDrawn(ev.Event):
    """`population` is every session of the institution started in [period_start,
    period_end), in code-point order of session id; `sessions` the sample that
    `supervisor.inspect.spot_checks.draw_sample(population, seed, sample_size)` returns."""

    KIND: ClassVar[str] = "spot_check_drawn"
    draw_id: str
    institution_id: int
    period_start: datetime
    period_end: datetime
    seed: str
    sample_size: int
    population: int
    population_sha256: str  # SHA-256 of the population ids joined by "\n"
    sessions: tuple[str, ...]
    drawn_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SpotCheckVerdict(ev.Event):
    KIND: ClassVar[str] = "spot_check_verdict"
    draw_id: str
    session_id: str
    verdict: str  # regular | irregular
    note: str
    decided_by: str
    at: datetime


INTEGRITY_CHAIN = "integrity"


@dataclass(frozen=True, slots=True)
class ChainBreakFound(ev.Event):
    """A chain was found broken: appends to it are refused from now on, and no money
    is paid from it. Recorded once per chain."""

    KIND: ClassVar[str] = "chain_break_found"
    chain_id: str
    seq: int  # its first bad event
    reason: str
    found_by: str  # seal | scan | eligibility
    at: datetime
    seal_id: int | None = ev.optional()  # the seal that recorded it broken
    flag_id: int | None = ev.optional()  # the flag raised for the bureau


VERDICTS = ("regular", "irregular")

# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (SpotCheckDrawn, SpotCheckVerdict, ChainBreakFound)

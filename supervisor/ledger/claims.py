"""Ledger events of claim review (issue "The bureau's month").

One chain per claim, `claim:<id>`, replayed like a session's:
`claim_submitted` (the eligible learners frozen with the chain heads they rest on),
`claim_verified` (for a sampled claim), `claim_decided` (approved or rejected, with
the amount), `claim_notice_published` (the public notice, 公示, and its window),
`claim_objection_received` / `claim_objection_decided` (an open objection blocks
payment), `claim_paid` (the claim went into a payment export).

One chain per sampling draw, `claimdraw:<draw_id>`: `claim_sample_drawn`, with the seed,
the rates and the population, so anyone can redraw it and get the same claims.
Amounts are yuan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


def claim_chain(claim_id: int) -> str:
    return f"claim:{claim_id}"


def claim_draw_chain(draw_id: str) -> str:
    return f"claimdraw:{draw_id}"


@dataclass(frozen=True, slots=True)
class ClaimSubmitted(ev.Event):
    """`lines_sha256` covers the canonical JSON of the frozen lines (learner, course,
    hours, amount, and the chain heads each rests on), kept beside the ledger."""

    KIND: ClassVar[str] = "claim_submitted"
    claim_id: int
    institution_id: int
    period_start: datetime
    period_end: datetime
    learners: int
    amount: float
    lines_sha256: str
    submitted_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimSampleDrawn(ev.Event):
    KIND: ClassVar[str] = "claim_sample_drawn"
    draw_id: str
    period_start: datetime
    period_end: datetime
    seed: str
    base_rate: float
    population: tuple[int, ...]  # claim ids, ascending
    rates: tuple[float, ...]  # each claim's rate, by its institution's risk
    sampled: tuple[int, ...]
    drawn_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimVerified(ev.Event):
    KIND: ClassVar[str] = "claim_verified"
    claim_id: int
    verdict: str  # verified | irregular
    note: str
    rejected_learners: tuple[int, ...]
    decided_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimDecided(ev.Event):
    KIND: ClassVar[str] = "claim_decided"
    claim_id: int
    status: str  # approved | rejected
    amount_approved: float
    note: str
    decided_by: str
    at: datetime
    # Learners whose lines the decision leaves out besides the verification's: a chain
    # a line rests on found no longer intact when the claim was decided (`chain_broken`).
    rejected_learners: tuple[int, ...] | None = ev.optional()


@dataclass(frozen=True, slots=True)
class ClaimNoticePublished(ev.Event):
    KIND: ClassVar[str] = "claim_notice_published"
    claim_id: int
    notice_from: datetime
    notice_until: datetime
    published_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimObjectionReceived(ev.Event):
    KIND: ClassVar[str] = "claim_objection_received"
    claim_id: int
    objection_id: int
    learner_id: int | None
    statement_sha256: str
    received_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimObjectionDecided(ev.Event):
    """`amount_withdrawn`: what an upheld objection took out of the approved amount (the
    named learner's lines, or all that was left of the claim), so that the ledger alone
    says how much of a claim stays approved."""

    KIND: ClassVar[str] = "claim_objection_decided"
    claim_id: int
    objection_id: int
    upheld: bool
    note: str
    decided_by: str
    at: datetime
    amount_withdrawn: float | None = ev.optional()


@dataclass(frozen=True, slots=True)
class ClaimPaid(ev.Event):
    KIND: ClassVar[str] = "claim_paid"
    claim_id: int
    export_id: str
    amount: float
    exported_by: str
    at: datetime


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (
    ClaimSubmitted,
    ClaimSampleDrawn,
    ClaimVerified,
    ClaimDecided,
    ClaimNoticePublished,
    ClaimObjectionReceived,
    ClaimObjectionDecided,
    ClaimPaid,
)

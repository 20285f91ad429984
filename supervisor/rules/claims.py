"""Claim review as pure functions: the digest of a claim's frozen lines, the sampling
rate by an institution's risk, the reproducible draw, and a claim's state replayed
from its ledger chain (`claim:<id>`).

Nothing here reads storage, the clock or settings: an inspector who exports a claim's
chain and a draw's chain gets the same state and the same sample.

**The sampling rule.** Every submitted claim in a draw's population is sampled on its
own (Poisson sampling), with the rate

    rate = min(1, base_rate * 2 ** risk_factors)

where `risk_factors` counts what is true of the claim's institution when the draw is
made (0 to 4):

- a fraud flag on it was **confirmed** (by the bureau or an inspector);
- it was ever **suspended** or expelled (its status history);
- an inspector's spot check of its sessions found one **irregular**;
- a claim of it was **rejected**, in whole or in part (by the bureau's decision, a
  verification, a broken chain or an upheld public objection).

So with a base rate of 10 % an institution with no history is sampled at 10 %, one
with a confirmed flag at 20 %, one with all four at 100 %. Claim `c` is sampled when
`u(seed, c) < rate(c)`, where `u` is the first 8 bytes of SHA-256("seed:c") read as a
fraction of 2**64: the same seed, population and rates give the same sample, in any
order, and each claim's chance is its own rate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from storage.canonical import canonical_json
from storage.types import NewClaimLine
from supervisor.ledger import claims as ce
from supervisor.ledger import events as ev

VERDICTS = ("verified", "irregular")
DECISIONS = ("approved", "rejected")


def lines_body(lines: Sequence[NewClaimLine]) -> list[dict[str, object]]:
    """The lines as the digest covers them (and as a claim's JSON shows them)."""
    return [
        {
            "learner_id": x.learner_id,
            "course_id": x.course_id,
            "credited_hours": x.credited_hours,
            "amount": x.amount,
            "chains": [[c.chain_id, c.seq, c.hash] for c in x.chains],
        }
        for x in lines
    ]


def lines_sha256(lines: Sequence[NewClaimLine]) -> str:
    """SHA-256 (hex) of the canonical JSON (`storage.canonical.canonical_json`) of the
    lines in their order: what `ClaimSubmitted.lines_sha256` holds."""
    return hashlib.sha256(canonical_json(lines_body(lines)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class InstitutionRisk:
    confirmed_flags: int = 0
    suspensions: int = 0  # suspensions or expulsions in its status history
    irregular_spot_checks: int = 0
    rejected_claims: int = 0  # claims rejected in whole or in part

    @property
    def factors(self) -> int:
        return (
            (self.confirmed_flags > 0)
            + (self.suspensions > 0)
            + (self.irregular_spot_checks > 0)
            + (self.rejected_claims > 0)
        )


def claim_rate(base_rate: float, risk: InstitutionRisk) -> float:
    """The chance a claim of an institution with `risk` is sampled (module docstring)."""
    if not 0.0 <= base_rate <= 1.0:
        raise ValueError("the base rate is a fraction from 0 to 1")
    return min(1.0, round(base_rate * 2**risk.factors, 6))


def uniform(seed: str, claim_id: int) -> float:
    """A fraction in [0, 1) fixed by the seed and the claim."""
    digest = hashlib.sha256(f"{seed}:{claim_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw_claims(population: Sequence[int], rates: Sequence[float], seed: str) -> tuple[int, ...]:
    """The sampled claims, ascending: each claim of the population with its own rate."""
    if len(population) != len(rates):
        raise ValueError("one rate per claim")
    return tuple(sorted(c for c, r in zip(population, rates, strict=True) if uniform(seed, c) < r))


def redraw(event: ce.ClaimSampleDrawn) -> bool:
    """Whether the recorded draw follows from its recorded seed, population and rates."""
    try:
        again = draw_claims(event.population, event.rates, event.seed)
    except ValueError:
        return False
    return again == tuple(event.sampled)


# -- a claim's state, replayed from its chain -----------------------------------------


@dataclass(frozen=True, slots=True)
class Objection:
    received: ce.ClaimObjectionReceived
    decided: ce.ClaimObjectionDecided | None = None

    @property
    def open(self) -> bool:
        return self.decided is None


@dataclass(frozen=True, slots=True)
class ClaimState:
    claim_id: int
    submitted: ce.ClaimSubmitted | None = None
    verified: ce.ClaimVerified | None = None
    decided: ce.ClaimDecided | None = None
    notice: ce.ClaimNoticePublished | None = None
    objections: tuple[Objection, ...] = ()
    paid: ce.ClaimPaid | None = None
    events: int = 0
    rejected: frozenset[int] = field(default_factory=frozenset)  # learners whose lines are out

    @property
    def rejected_by_objection(self) -> bool:
        """An upheld objection against the whole claim."""
        return any(
            o.decided is not None and o.decided.upheld and o.received.learner_id is None
            for o in self.objections
        )

    @property
    def open_objections(self) -> tuple[Objection, ...]:
        return tuple(o for o in self.objections if o.open)

    @property
    def status(self) -> str:
        """submitted | verified | approved | rejected | paid."""
        if self.paid is not None:
            return "paid"
        if self.decided is not None and self.decided.status == "rejected":
            return "rejected"
        if self.rejected_by_objection:
            return "rejected"
        if self.decided is not None:
            return "approved"
        if self.verified is not None:
            return "verified"
        return "submitted"


def claim_state(claim_id: int, events: Iterable[ev.Event]) -> ClaimState:
    """Fold a claim's chain: the first verdict and decision count (later ones are
    refused before they are appended); learners rejected by the verification, by the
    decision's chain check and by upheld objections naming them are out."""
    submitted = verified = decided = notice = paid = None
    objections: dict[int, Objection] = {}
    rejected: set[int] = set()
    n = 0
    for e in events:
        n += 1
        if isinstance(e, ce.ClaimSubmitted) and submitted is None:
            submitted = e
        elif isinstance(e, ce.ClaimVerified) and verified is None:
            verified = e
            rejected.update(e.rejected_learners)
        elif isinstance(e, ce.ClaimDecided) and decided is None:
            decided = e
            rejected.update(e.rejected_learners or ())
        elif isinstance(e, ce.ClaimNoticePublished) and notice is None:
            notice = e
        elif isinstance(e, ce.ClaimObjectionReceived):
            objections[e.objection_id] = Objection(e)
        elif isinstance(e, ce.ClaimObjectionDecided):
            found = objections.get(e.objection_id)
            if found is not None and found.decided is None:
                objections[e.objection_id] = Objection(found.received, e)
                if e.upheld and found.received.learner_id is not None:
                    rejected.add(found.received.learner_id)
        elif isinstance(e, ce.ClaimPaid) and paid is None:
            paid = e
    return ClaimState(
        claim_id,
        submitted,
        verified,
        decided,
        notice,
        tuple(objections[k] for k in sorted(objections)),
        paid,
        n,
        frozenset(rejected),
    )

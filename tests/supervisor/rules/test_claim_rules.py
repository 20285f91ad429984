"""The pure rules of claim review: the sampling rate by risk, the reproducible draw,
the lines' digest and a claim's state replayed from its chain."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from storage.canonical import canonical_json
from storage.types import LineChain, NewClaimLine
from supervisor.ledger import claims as ce
from supervisor.rules.claims import (
    InstitutionRisk,
    claim_rate,
    claim_state,
    draw_claims,
    lines_body,
    lines_sha256,
    redraw,
)
from supervisor.rules.dispatch import summarise_claim

T = datetime(2026, 10, 1, tzinfo=UTC)


def test_the_rate_doubles_per_risk_factor_up_to_one() -> None:
    assert claim_rate(0.1, InstitutionRisk()) == 0.1
    assert claim_rate(0.1, InstitutionRisk(confirmed_flags=3)) == 0.2
    assert claim_rate(0.1, InstitutionRisk(1, 1)) == 0.4
    assert claim_rate(0.1, InstitutionRisk(1, 2, 5)) == 0.8
    assert claim_rate(0.3, InstitutionRisk(1, 1, 1)) == 1.0
    assert claim_rate(0.0, InstitutionRisk(1, 1, 1)) == 0.0
    # A claim rejected in whole or in part is a risk factor of its own: a resubmission
    # after an upheld objection is sampled more, not less.
    assert claim_rate(0.1, InstitutionRisk(rejected_claims=1)) == 0.2
    assert claim_rate(0.1, InstitutionRisk(1, 1, 1, 1)) == 1.0
    with pytest.raises(ValueError):
        claim_rate(1.5, InstitutionRisk())


def test_the_same_seed_gives_the_same_sample_in_any_order() -> None:
    population = list(range(1, 2001))
    rates = [0.1 if c % 2 else 0.8 for c in population]
    first = draw_claims(population, rates, "seed-1")
    assert first == draw_claims(population[::-1], rates[::-1], "seed-1")
    assert first != draw_claims(population, rates, "seed-2")
    # Each claim at its own rate: the risky half is sampled about eight times as often.
    odd = sum(1 for c in first if c % 2)
    even = len(first) - odd
    assert 60 < odd < 140 and 720 < even < 880
    assert draw_claims(population, [0.0] * 2000, "s") == ()
    assert draw_claims(population, [1.0] * 2000, "s") == tuple(population)
    event = ce.ClaimSampleDrawn(
        "d" * 32, T, T + timedelta(days=30), "seed-1", 0.1, tuple(population), tuple(rates),
        first, "bureau:1", T,
    )  # fmt: skip
    assert redraw(event)
    assert not redraw(
        ce.ClaimSampleDrawn(
            "d" * 32, T, T, "seed-1", 0.1, tuple(population), tuple(rates), first[1:], "b", T
        )
    )


def test_the_digest_is_the_sha256_of_the_canonical_lines() -> None:
    lines = [NewClaimLine(7, 3, 40.5, 1500.0, (LineChain("learner:7", 4, "ab" * 32),))]
    want = hashlib.sha256(canonical_json(lines_body(lines)).encode()).hexdigest()
    assert lines_sha256(lines) == want
    changed = [NewClaimLine(7, 3, 40.5, 1500.01, lines[0].chains)]
    assert lines_sha256(changed) != want


def test_a_claim_state_replays_from_its_events() -> None:
    sub = ce.ClaimSubmitted(1, 2, T, T + timedelta(days=30), 3, 4500.0, "ab" * 32, "op", T)
    state = claim_state(1, [sub])
    assert state.status == "submitted" and not state.rejected
    ver = ce.ClaimVerified(1, "irregular", "absent", (11,), "insp", T)
    dec = ce.ClaimDecided(1, "approved", 3000.0, "", "bureau", T, (12,))
    notice = ce.ClaimNoticePublished(1, T, T + timedelta(days=7), "bureau", T)
    got = ce.ClaimObjectionReceived(1, 5, 13, "cd" * 32, "public", T)
    state = claim_state(1, [sub, ver, dec, notice, got])
    assert state.status == "approved" and state.rejected == {11, 12}
    assert len(state.open_objections) == 1
    upheld = ce.ClaimObjectionDecided(1, 5, True, "he was abroad", "bureau", T)
    state = claim_state(1, [sub, ver, dec, notice, got, upheld])
    assert state.rejected == {11, 12, 13} and not state.open_objections
    whole = ce.ClaimObjectionReceived(1, 6, None, "cd" * 32, "public", T)
    state = claim_state(
        1, [sub, dec, notice, whole, ce.ClaimObjectionDecided(1, 6, True, "x", "b", T)]
    )
    assert state.status == "rejected"
    paid = ce.ClaimPaid(1, "e" * 32, 3000.0, "bureau", T)
    assert claim_state(1, [sub, dec, notice, paid]).status == "paid"


def test_the_dispatch_reports_what_objections_left_of_an_approval() -> None:
    """The approved amount the dispatch report reads is the decision's, less what upheld
    objections took out (`amount_withdrawn`); nothing left reads as rejected."""
    t = datetime(2026, 11, 3, tzinfo=UTC)
    events = [
        ce.ClaimSubmitted(7, 1, t, t + timedelta(days=30), 2, 3000.0, "0" * 64, "op", t),
        ce.ClaimDecided(7, "approved", 3000.0, "", "bureau", t + timedelta(days=1)),
        ce.ClaimObjectionDecided(7, 1, False, "", "bureau", t + timedelta(days=2), None),
        ce.ClaimObjectionDecided(
            7, 2, True, "proxy study", "bureau", t + timedelta(days=3), 1500.0
        ),
    ]
    fact = summarise_claim(events)
    assert fact is not None and fact.status == "approved" and fact.approved == 1500.0
    more = [
        *events,
        ce.ClaimObjectionDecided(7, 3, True, "all", "b", t + timedelta(days=4), 1500.0),
    ]
    fact = summarise_claim(more)
    assert fact is not None and fact.status == "rejected" and fact.approved == 0.0

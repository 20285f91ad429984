"""Contract of the claim store (claim review), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import Storage
from storage.exceptions import Duplicate, InvalidInput, NotFound
from storage.types import ClaimDraw, ClaimNotice, LineChain, NewClaimLine

T0 = datetime(2026, 10, 1, tzinfo=UTC)
T1 = datetime(2026, 11, 1, tzinfo=UTC)
HEX = "ab" * 32


def lines(n: int, course: int = 7) -> list[NewClaimLine]:
    return [
        NewClaimLine(
            100 + i,
            course,
            12.5,
            1500.0,
            (LineChain(f"learner:{100 + i}", 3, HEX), LineChain(f"session:s{i}", 40, "cd" * 32)),
        )
        for i in range(n)
    ]


def test_a_claim_keeps_its_lines_and_chain_heads(store: Storage) -> None:
    inst = store.registry.create_institution("School A")
    claim = store.claims.add_claim(inst.id, T0, T1, lines(6_001), HEX, "operator:1", T1)
    assert claim.learners == 6_001 and claim.amount == round(6_001 * 1500.0, 2)
    assert claim.courses == (7,) and claim.period_start == T0 and claim.period_end == T1
    assert store.claims.get_claim(claim.id) == claim
    got = store.claims.lines(claim.id)
    assert [x.line_no for x in got] == list(range(1, 6_002))
    assert got[0].chains == (
        LineChain("learner:100", 3, HEX),
        LineChain("session:s0", 40, "cd" * 32),
    )
    other = store.claims.add_claim(inst.id, T1, T1 + timedelta(days=30), lines(1, 8), HEX, "o", T1)
    assert [c.id for c in store.claims.list_claims(inst.id)] == [claim.id, other.id]
    # Overlap: periods are [start, end).
    assert [c.id for c in store.claims.list_claims(inst.id, T1, T1 + timedelta(days=1))] == [
        other.id
    ]
    assert store.claims.list_claims(inst.id + 1) == []
    with pytest.raises(NotFound):
        store.claims.get_claim(10**6)
    with pytest.raises(InvalidInput):
        store.claims.add_claim(inst.id, T1, T0, lines(1), HEX, "o", T1)
    with pytest.raises(InvalidInput):
        store.claims.add_claim(inst.id, T0, T1, lines(1), "not hex", "o", T1)


def test_objections_draws_and_a_claim_paid_only_once(store: Storage) -> None:
    inst = store.registry.create_institution("School B")
    a = store.claims.add_claim(inst.id, T0, T1, lines(2), HEX, "o", T1)
    b = store.claims.add_claim(inst.id, T0, T1, lines(1, 9), HEX, "o", T1)
    o = store.claims.add_objection(a.id, 101, "他没来上课", HEX, T1, "public")
    assert store.claims.objections(a.id) == [o] and store.claims.get_objection(o.id) == o
    assert o.learner_id == 101 and o.statement == "他没来上课"
    draw = ClaimDraw("d" * 32, T0, T1, "seed", 0.1, (b.id,), "bureau:1", T1, (a.id, b.id))
    assert store.claims.add_draw(draw) == draw
    assert store.claims.draws() == [draw] and store.claims.sampled() == {b.id: "d" * 32}
    assert store.claims.sampled([a.id]) == {}
    assert store.claims.drawn() == {a.id: "d" * 32, b.id: "d" * 32}
    with pytest.raises(Duplicate):
        store.claims.add_draw(draw)
    # A claim is in one draw's population at most: the second draw is not written.
    again = ClaimDraw("e" * 32, T0, T1, "seed", 0.1, (), "bureau:1", T1, (a.id,))
    with pytest.raises(Duplicate):
        store.claims.add_draw(again)
    assert [d.draw_id for d in store.claims.draws()] == ["d" * 32]

    notice = ClaimNotice(a.id, T1, T1 + timedelta(days=7))
    assert store.claims.add_notice(notice) == notice
    assert store.claims.notices_open(T1 + timedelta(days=1)) == [notice]
    assert store.claims.notices_open(T1 + timedelta(days=7)) == []
    assert store.claims.notices_open(T1 - timedelta(seconds=1)) == []
    with pytest.raises(Duplicate):
        store.claims.add_notice(notice)

    export = store.claims.add_payment_export("e" * 32, T1, "bureau:1", [(a.id, 3000.0)])
    assert export.claims == 1 and export.amount == 3000.0
    assert store.claims.paid()[a.id].export_id == "e" * 32
    # A second payment of the same claim fails as a whole: b is not paid either.
    with pytest.raises(Duplicate):
        store.claims.add_payment_export("f" * 32, T1, "bureau:1", [(b.id, 1500.0), (a.id, 1.0)])
    assert set(store.claims.paid()) == {a.id}
    assert [e.export_id for e in store.claims.payment_exports()] == ["e" * 32]
    with pytest.raises(NotFound):
        store.claims.payment_export("f" * 32)

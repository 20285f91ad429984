"""A seal vouches only for what it verified; money only from intact chains.

A generated ledger on SQLite and PostgreSQL, tampered with through the database as
its owner could (`tamper`: append-only guards off): a session chain truncated, a
payload rewritten, check times moved. The next seal records each one broken and
raises the integrity alarm (an event in the `integrity` chain, the metric, a flag
for the bureau); `verify-seal` fails against the earlier seal; eligibility and
claims say `chain_broken` and pay nothing from them; appends to them are refused.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from config import Settings
from config.settings import DEV_SEAL_KEY
from storage import Storage
from storage.canonical import canonical_json
from storage.exceptions import BrokenChain
from storage.types import NewEvent
from supervisor.checks.integrity import FLAG_KIND
from supervisor.inspect import seals as sl
from supervisor.inspect.sealing import (
    make_seal,
    sweep_share,
    verify_chain_against_all_seals,
    verify_chain_against_seal,
)
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger.inspection import INTEGRITY_CHAIN, ChainBreakFound
from supervisor.metrics import Metrics
from supervisor.rules.eligibility import SessionSummary
from supervisor.rules.flags import view
from supervisor.subsidy.report import claims
from supervisor.subsidy.scan import Snapshot, learner_snapshot, scan
from tests import ledgergen as lg
from tests.storage.helpers import raw_rows, tamper
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames

T1 = datetime(2026, 11, 1, tzinfo=UTC)


def _eligible_online(snap: Snapshot, world: lg.World, n: int) -> list[tuple[int, int, str]]:
    """(learner, course, one of its online session chains) of `n` eligible learners."""
    found = []
    for learner_id in world.learner_ids:
        for course_id in world.course_ids:
            e = snap.eligibility(learner_id, course_id)
            online = [s.chain_id for s in e.sessions if s.kind == "online"]
            if e.eligible and online:
                found.append((learner_id, course_id, online[0]))
                break
        if len(found) == n:
            return found
    raise AssertionError("the generated world has too few eligible learners")


def _grow(storage: Storage, session: SessionSummary, n: int = 3) -> None:
    """Append passed presence checks to a session chain, a minute apart."""
    more = [
        ev.CheckRecorded(
            f"grow-{session.chain_id[-6:]}-{k}",
            "presence",
            "scheduled",
            "present",
            True,
            session.last_at + timedelta(minutes=k),
            None,
            None,
            (),
            1,
            3,
            None,
        )  # fmt: skip
        for k in range(1, n + 1)
    ]
    storage.ledger.append(session.chain_id, [codec.encode(e) for e in more])


def _session(snap: Snapshot, chain_id: str) -> SessionSummary:
    return next(s for s in snap.all_sessions() if s.chain_id == chain_id)


def _events(storage: Storage, but: tuple[str, ...] = ()) -> int:
    rows = raw_rows(storage, "SELECT chain_id, count(*) FROM ledger_events GROUP BY chain_id")
    return sum(int(n) for c, n in rows if c not in but and not str(c).startswith("flag:"))


def _tamper_three(storage: Storage, chains: list[str]) -> None:
    cut, rewritten, moved = chains
    # 1. Truncated: its last two events deleted (the head index still names the last).
    head = storage.ledger.head(cut)
    assert head is not None
    tamper(storage, "DELETE FROM ledger_events WHERE chain_id = :c AND seq > :s", c=cut,
           s=head.seq - 2)  # fmt: skip
    # 2. A payload rewritten after the last seal: a presence check now says absent.
    last = storage.ledger.read_chain(rewritten)[-2]
    forged = last.payload.replace('"passed":true', '"passed":false')
    assert forged != last.payload
    tamper(storage, "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
           p=forged, c=rewritten, s=last.seq)  # fmt: skip
    # 3. Check times moved: the last check an hour later, for more credited time.
    last = storage.ledger.read_chain(moved)[-1]
    at = json.loads(last.payload)["at"]
    later = (datetime.fromisoformat(at) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    tamper(storage, "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
           p=last.payload.replace(at, later), c=moved, s=last.seq)  # fmt: skip


def test_the_next_seal_records_tampered_chains_broken_and_no_money_is_paid_from_them(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=60, institutions=3))
    lg.load(storage, world)
    truth = scan(storage, settings, use_summaries=False)
    assert truth.broken == {}
    picked = _eligible_online(truth, world, 3)
    chains = [c for _, _, c in picked]

    first = make_seal(storage, DEV_SEAL_KEY, T1)
    assert first is not None
    fields = sl.statement_fields(first.statement)
    assert fields["format"] == "supervisor-seal/2" and fields["broken"] == 0
    assert scan(storage, settings).broken == {}  # summaries now cover every head
    # The chains grow after the seal and the summaries; the forger edits the new part.
    for c in chains:
        _grow(storage, _session(truth, c))
    _tamper_three(storage, chains)
    before = _events(storage)

    metrics = Metrics()
    second = make_seal(storage, DEV_SEAL_KEY, T1 + timedelta(hours=1), metrics=metrics)
    assert second is not None
    assert sl.statement_fields(second.statement)["broken"] == 3
    leaves = {h.chain_id: h for h in storage.seals.leaves(second.id)}
    sealed_before = {h.chain_id: h for h in storage.seals.leaves(first.id)}
    for c in chains:
        # Recorded broken, with the head the earlier seal vouched for as its last good one.
        assert leaves[c].broken is not None
        assert (leaves[c].seq, leaves[c].hash) == (sealed_before[c].seq, sealed_before[c].hash)
    # Every other chain is vouched for as it is.
    intact = [h for c, h in leaves.items() if c not in chains]
    assert all(h.broken is None for h in intact)
    assert sl.merkle_root(sl.sorted_heads(leaves.values())) == second.root

    # The alarm: one event per chain in the integrity chain, the metric, a flag each.
    alarms = [e for _, e in codec.decode_all(storage.ledger.read_chain(INTEGRITY_CHAIN))]
    assert sorted(a.chain_id for a in alarms if isinstance(a, ChainBreakFound)) == sorted(chains)
    assert {a.found_by for a in alarms if isinstance(a, ChainBreakFound)} == {"seal"}
    assert {a.seal_id for a in alarms if isinstance(a, ChainBreakFound)} == {second.id}
    assert metrics.chain_breaks.labels(found_by="seal")._value.get() == 3
    flags = storage.subsidy.find_flags(kind=FLAG_KIND)
    assert sorted(f.learner_id for f in flags) == sorted(lid for lid, _, _ in picked)
    assert all(f.institution_id is not None for f in flags)
    # Each flag rests on its alarm event, in full (the broken chain's own events are what
    # cannot be trusted).
    stored = {e.seq: e.hash for e in storage.ledger.read_chain(INTEGRITY_CHAIN)}
    for f in flags:
        (ref,) = view(f).evidence
        assert ref.chain_id == INTEGRITY_CHAIN and ref.seq is not None
        assert ref.hash == stored[ref.seq]
        assert ref.scores["broken_chain"] in chains
    # Sealing again raises nothing new: the chains stay broken, the alarm went off once.
    third = make_seal(storage, DEV_SEAL_KEY, T1 + timedelta(hours=2), metrics=metrics)
    assert third is not None and sl.statement_fields(third.statement)["broken"] == 3
    assert len(storage.ledger.read_chain(INTEGRITY_CHAIN)) == 3
    assert len(storage.subsidy.find_flags(kind=FLAG_KIND)) == 3

    # verify-seal fails against the earlier seal, and against every seal that covered it.
    for c in chains:
        assert verify_chain_against_seal(storage, c, first) is not None
        verdicts, whole = verify_chain_against_all_seals(storage, c)
        assert [v.seal_id for v in verdicts] == [first.id, second.id, third.id]
        assert all(v.problem is not None for v in verdicts[1:])
        assert "recorded it broken" in (verdicts[1].problem or "")
    assert verify_chain_against_all_seals(storage, intact[0].chain_id)[0][0].problem is None

    # Eligibility and claims: chain_broken, not eligible, nothing credited from it.
    snap = scan(storage, settings)
    again = scan(storage, settings, use_summaries=False)
    for learner_id, course_id, chain_id in picked:
        for s in (snap, again, learner_snapshot(storage, settings, learner_id, course_id)):
            e = s.eligibility(learner_id, course_id)
            assert not e.eligible and e.amount == 0
            assert "chain_broken" in e.reasons and chain_id in e.broken_chains
            assert chain_id not in [x.chain_id for x in e.sessions]
        assert chain_id in snap.broken
        assert chain_id not in [s.chain_id for s in snap.all_sessions()]
    courses = {c.id: c for c in storage.registry.list_courses()}
    learners = {lr.id: lr for lr in storage.registry.list_learners()}
    rows = claims(snap, courses, learners, None, lg.Plan().month_start, T1 + timedelta(days=60))
    by_learner = {(r.eligibility.learner_id, r.eligibility.course_id): r for r in rows}
    for learner_id, course_id, _ in picked:
        row = by_learner[(learner_id, course_id)].as_dict()
        assert row["eligible"] is False and "chain_broken" in row["reasons"]
    # Everyone else is paid as before.
    others = [
        (lid, cid)
        for lid in world.learner_ids[:20]
        for cid in world.course_ids
        if lid not in {p[0] for p in picked}
    ]
    for lid, cid in others:
        assert snap.eligibility(lid, cid) == truth.eligibility(lid, cid)

    # Appends to the broken chains are refused; the ledger is otherwise unchanged.
    for c in chains:
        with pytest.raises(BrokenChain):
            storage.ledger.append(c, [NewEvent("note", canonical_json({"late": 1}))])
    assert _events(storage, (INTEGRITY_CHAIN,)) == before


def test_a_scan_finds_a_break_first_and_the_seal_then_records_it(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=30, institutions=2))
    lg.load(storage, world)
    truth = scan(storage, settings)
    ((learner_id, course_id, chain_id),) = _eligible_online(truth, world, 1)
    assert make_seal(storage, DEV_SEAL_KEY, T1) is not None
    _grow(storage, _session(truth, chain_id))
    last = storage.ledger.read_chain(chain_id)[-2]
    tamper(storage, "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
           p=last.payload.replace('"faces":1', '"faces":2'), c=chain_id, s=last.seq)  # fmt: skip
    # The report's scan re-hashes only what grew since the summaries, and finds it.
    snap = scan(storage, settings)
    assert snap.broken[chain_id][0] == last.seq
    assert "chain_broken" in snap.eligibility(learner_id, course_id).reasons
    (alarm,) = codec.decode_all(storage.ledger.read_chain(INTEGRITY_CHAIN))
    assert isinstance(alarm[1], ChainBreakFound) and alarm[1].found_by == "scan"
    # The break is kept: the next scan reads it from the summary and the register.
    assert chain_id in scan(storage, settings).broken
    # The seal records it broken too, without a second alarm.
    seal = make_seal(storage, DEV_SEAL_KEY, T1 + timedelta(hours=1))
    assert seal is not None and sl.statement_fields(seal.statement)["broken"] == 1
    assert len(storage.ledger.read_chain(INTEGRITY_CHAIN)) == 1
    assert len(storage.subsidy.find_flags(kind=FLAG_KIND)) == 1


def test_a_chain_cut_and_its_head_index_rewritten_is_shorter_than_sealed(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=30, institutions=2))
    lg.load(storage, world)
    truth = scan(storage, settings)
    ((learner_id, course_id, chain_id),) = _eligible_online(truth, world, 1)
    assert make_seal(storage, DEV_SEAL_KEY, T1) is not None
    kept = storage.ledger.read_chain(chain_id)[-4]
    tamper(storage, "DELETE FROM ledger_events WHERE chain_id = :c AND seq > :s", c=chain_id,
           s=kept.seq)  # fmt: skip
    tamper(storage, "UPDATE ledger_heads SET seq = :s, hash = :h WHERE chain_id = :c",
           s=kept.seq, h=kept.hash, c=chain_id)  # fmt: skip
    assert storage.ledger.verify([chain_id]).ok  # the chain alone looks intact
    # A scan compares with its summaries: shorter than verified before.
    assert "shorter" in scan(storage, settings).broken[chain_id][1]
    seal = make_seal(storage, DEV_SEAL_KEY, T1 + timedelta(hours=1))
    assert seal is not None
    (leaf,) = [h for h in storage.seals.leaves(seal.id) if h.chain_id == chain_id]
    assert leaf.broken is not None
    assert (
        "chain_broken"
        in learner_snapshot(storage, settings, learner_id, course_id)
        .eligibility(learner_id, course_id)
        .reasons
    )


def test_through_the_api_a_session_with_moved_check_times_pays_nothing_and_takes_nothing(
    service: Service,
) -> None:
    from tests.supervisor.subsidy.test_subsidy_api import _course, _eligibility, _publish

    w = service.world()
    course = _course(service, w)
    _publish(service, w, course)
    r = service.call(
        "POST", f"/api/v1/courses/{course}/enrolments", w.operator,
        json={"learner_ids": [w.learner_id]},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = service.call(
        "POST", f"/api/v1/courses/{course}/assessments", w.operator,
        json={"learner_id": w.learner_id, "passed": True, "score": 90},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = service.sign_in(w.learner, course, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    page = StillFrames(service, w.learner, sid).attach()
    # The course asks for 1.8 s of study: answer the first check only after that.
    time.sleep(2.5)
    assert page.check(HOPPER_FRAME)["passed"]
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert e["eligible"] and e["amount"] == 1500, json.dumps(e)
    chain = f"session:{sid}"

    # The sign-in check moved an hour back in the database: more credited time.
    start = next(x for x in service.storage.ledger.read_chain(chain) if x.kind == "check")
    at = json.loads(start.payload)["at"]
    earlier = (datetime.fromisoformat(at) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    tamper(
        service.storage,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
        p=start.payload.replace(at, earlier),
        c=chain,
        s=start.seq,
    )
    before = _events(service.storage, (INTEGRITY_CHAIN,))

    e = _eligibility(service, w.operator, w.learner_id, course)
    assert not e["eligible"] and e["amount"] == 0
    assert "chain_broken" in e["reasons"] and e["broken_chains"] == [chain]
    assert e["credited_hours"] == 0 and e["sessions"] == []
    now = datetime.now(UTC)
    period = {
        "from": (now - timedelta(days=1)).isoformat(),
        "until": (now + timedelta(days=1)).isoformat(),
        "institution_id": w.institution_id,
    }
    r = service.call("GET", "/api/v1/claims", service.bureau, params=period)
    assert r.status_code == 200, r.text
    (row,) = [x for x in r.json() if x["course_id"] == course]
    assert row["eligible"] is False and "chain_broken" in row["reasons"] and row["amount"] == 0
    # The bureau has the flag; the metric counts the alarm.
    r = service.call("GET", "/api/v1/flags", service.bureau, params={"status": "open"})
    assert r.status_code == 200, r.text
    # (The service is shared by the session's tests, some of which break chains of their
    # own learners on purpose: this learner's flag is the one this test raised.)
    mine = [f for f in r.json() if f["kind"] == FLAG_KIND and f["learner_id"] == w.learner_id]
    assert len(mine) == 1, r.json()
    found = re.search(
        r'supervisor_chain_breaks_total\{found_by="scan"\} ([0-9.]+)',
        service.client.get("/metrics").text,
    )
    assert found is not None and float(found.group(1)) >= 1.0
    # The learner's page can add nothing to the chain any more.
    r = service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
    assert r.status_code == 409 and r.json()["reason"] == "chain_broken", r.text
    assert _events(service.storage, (INTEGRITY_CHAIN,)) == before
    # The next seal records it broken (with any chain other tests broke on purpose).
    r = service.call("POST", "/api/v1/seals", service.admin)
    assert r.status_code == 201 and r.json()["broken"] >= 1, r.text


def test_an_edit_inside_a_sealed_part_is_found_by_the_sweep_within_its_rounds(
    generated: tuple[Storage, Settings],
) -> None:
    """An owner rewrites an old check (not the sealed head, which it leaves intact, nor
    its stored hash): re-hashing from the sealed head cannot see it. The sweep re-hashes
    the chains of one share in `rounds` from their start: the chain's own round finds
    it, the other rounds do not look, so it is found within `rounds` seals."""
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=30, institutions=2))
    lg.load(storage, world)
    truth = scan(storage, settings)
    ((learner_id, course_id, chain_id),) = _eligible_online(truth, world, 1)
    rounds = 3
    own = sweep_share(chain_id, rounds)
    others = [r for r in range(rounds) if r != own]
    assert make_seal(storage, DEV_SEAL_KEY, T1, sweep_rounds=rounds, sweep_round=others[0])
    events = storage.ledger.read_chain(chain_id)
    old = next(e for e in events[1:-1] if '"passed":true' in e.payload)
    tamper(storage, "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
           p=old.payload.replace('"passed":true', '"passed":false'), c=chain_id,
           s=old.seq)  # fmt: skip
    before = _events(storage)
    # Not this chain's round: the incremental check reads only the sealed head, which
    # is untouched, so the seal vouches for it again (what the sweep exists for).
    missed = make_seal(
        storage, DEV_SEAL_KEY, T1 + timedelta(hours=1), sweep_rounds=rounds, sweep_round=others[1]
    )
    assert missed is not None
    (leaf,) = [h for h in storage.seals.leaves(missed.id) if h.chain_id == chain_id]
    assert leaf.broken is None
    # Its round: re-hashed from the start, recorded broken at the edited event, with
    # the event before it as the last good head; the alarm is raised.
    found = make_seal(
        storage, DEV_SEAL_KEY, T1 + timedelta(hours=2), sweep_rounds=rounds, sweep_round=own
    )
    assert found is not None
    (leaf,) = [h for h in storage.seals.leaves(found.id) if h.chain_id == chain_id]
    assert leaf.broken == old.seq
    assert (leaf.seq, leaf.hash) == (events[old.seq - 2].seq, events[old.seq - 2].hash)
    ((_, alarm),) = codec.decode_all(storage.ledger.read_chain(INTEGRITY_CHAIN))
    assert isinstance(alarm, ChainBreakFound) and alarm.chain_id == chain_id
    assert alarm.seq == old.seq and "part sealed up to" in alarm.reason
    # Money stops: eligibility reads the register.
    assert (
        "chain_broken"
        in learner_snapshot(storage, settings, learner_id, course_id)
        .eligibility(learner_id, course_id)
        .reasons
    )
    # Nothing but the alarm's own chain (and its flag) was appended.
    assert _events(storage, but=(INTEGRITY_CHAIN,)) == before


def test_the_sweep_share_is_stable_and_covers_every_round() -> None:
    ids = [f"session:{n:04d}" for n in range(400)]
    shares = [sweep_share(c, 24) for c in ids]
    assert shares == [sweep_share(c, 24) for c in ids]
    assert set(shares) == set(range(24))
    assert {sweep_share(c, 1) for c in ids} == {0}

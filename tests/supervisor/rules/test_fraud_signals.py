"""Fraud signals over generated ledgers (thousands of chains written in bulk with
valid hash chains), on SQLite and PostgreSQL; and the institution patterns on
their own."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from config import Settings
from config.settings import SubsidySettings
from storage import Storage
from supervisor.ledger import codec
from supervisor.ledger.classroom import ClassPresence, learner_class_chain
from supervisor.rules.eligibility import SessionSummary
from supervisor.rules.flags import view
from supervisor.rules.fraud import institution_patterns
from supervisor.rules.months import month_bounds
from supervisor.subsidy.report import monthly_report
from supervisor.subsidy.scan import learner_snapshot, scan
from supervisor.subsidy.service import fraud_scan
from tests import ledgergen as lg


def test_signals_found_in_a_generated_ledger(generated: tuple[Storage, Settings]) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=600, institutions=12))
    lg.load(storage, world)
    sample = [f"learner:{i}" for i in world.learner_ids[:50]]
    report = storage.ledger.verify(sample)
    assert report.ok and report.events > 0
    snap = scan(storage, settings)
    assert snap.events == world.events and snap.events == storage.ledger.verify(None).events

    # Plant one classroom presence during an online session of a blended learner.
    blended = next(
        s for s in snap.all_sessions() if s.course_id in world.class_ids and s.kind == "online"
    )
    class_id = world.class_ids[blended.course_id]
    at = blended.started_at + timedelta(minutes=5)
    presence = ClassPresence(
        check_id="rc-planted",
        check_kind="roll_call",
        purpose="random",
        verdict="present",
        passed=True,
        at=at,
        distance=0.4,
        threshold=0.53,
        issues=(),
        faces=12,
        frames=3,
        evidence_sha256=None,
        class_id=class_id,
        learner_id=blended.learner_id,
        run_id=1,
    )
    storage.ledger.append(
        learner_class_chain(class_id, blended.learner_id), [codec.encode(presence)]
    )

    now = datetime.now(UTC)
    raised = fraud_scan(storage, settings, None, now)
    kinds: dict[str, list[int]] = {}
    for f in raised:
        kinds.setdefault(f.kind, []).append(f.id)
    assert len(kinds.get("two_places_online", [])) == world.planted["overlaps"] >= 1
    assert len(kinds.get("replayed_image", [])) == world.planted["replays"] >= 1
    assert len(kinds["two_places_classroom"]) >= 1
    planted = [
        f for f in raised if f.kind == "two_places_classroom" and f.learner_id == blended.learner_id
    ]
    assert len(planted) == 1
    assert [e.chain_id for e in view(planted[0]).evidence][0] == blended.chain_id
    (rate,) = [f for f in raised if f.kind == "pass_rate_outlier"]
    assert rate.institution_id == world.institution_ids[-1]
    (burst,) = [f for f in raised if f.kind == "odd_hour_burst"]
    assert burst.institution_id == world.institution_ids[0]
    assert view(burst).evidence and all(e.hash for e in view(burst).evidence)
    # Every flag is in the ledger; a second scan raises nothing new.
    for f in raised:
        assert storage.ledger.read_chain(f"flag:{f.id}")[0].kind == "flag_raised"
    assert fraud_scan(storage, settings, None, now) == []

    # The bulk scan and the per-learner reader agree, flag and all.
    snap = scan(storage, settings)
    for learner_id in world.learner_ids[:40] + [blended.learner_id]:
        summary = snap.learners[learner_id]
        for course in summary.courses:
            one = learner_snapshot(storage, settings, learner_id, course)
            assert one.eligibility(learner_id, course) == snap.eligibility(learner_id, course)
    e = snap.eligibility(blended.learner_id, blended.course_id)
    assert "open_fraud_flag" in e.reasons

    start, end = month_bounds("2026-10", settings.subsidy.timezone)
    courses = {c.id: c for c in storage.registry.list_courses()}
    report = monthly_report(
        scan(storage, settings, end),
        storage.registry.list_institutions(),
        courses,
        "2026-10",
        start,
        end,
        settings.subsidy.timezone,
    )
    total_sessions = sum(i["totals"]["sessions"] for i in report["institutions"])
    assert total_sessions == sum(1 for s in snap.all_sessions() if s.kind == "online")
    bad = next(
        i for i in report["institutions"] if i["institution_id"] == world.institution_ids[-1]
    )
    good = next(
        i for i in report["institutions"] if i["institution_id"] == world.institution_ids[1]
    )
    assert bad["totals"]["passed_checks"] / bad["totals"]["checks"] < 0.8
    assert good["totals"]["passed_checks"] / good["totals"]["checks"] > 0.95
    # Flags count in the month they were raised (now), not in the month of the data.
    assert bad["flags"] == {}
    month = now.astimezone(ZoneInfo(settings.subsidy.timezone)).strftime("%Y-%m")
    start, end = month_bounds(month, settings.subsidy.timezone)
    report = monthly_report(
        scan(storage, settings, end),
        storage.registry.list_institutions(),
        courses,
        month,
        start,
        end,
        settings.subsidy.timezone,
        world.institution_ids[-1],
    )
    (bad,) = report["institutions"]
    assert bad["flags"]["pass_rate_outlier"] == {"open": 1, "confirmed": 0, "dismissed": 0}


def _summary(inst: int, n: int, gap: float, checks: int = 20, passed: int = 20) -> SessionSummary:
    at = datetime(2026, 10, 5, 3 + n % 10, tzinfo=UTC)
    return SessionSummary(
        f"session:{inst}-{n}",
        "online",
        1000 * inst + n,
        1,
        inst,
        at,
        at,
        0.0,
        (),
        True,
        checks,
        passed,
        gap,
        (),
        (),
        (f"session:{inst}-{n}", 1, "a" * 64),
    )


def test_check_timing_far_from_peers_is_flagged_and_near_is_not() -> None:
    cfg = SubsidySettings()
    sessions = [_summary(inst, n, 60.0 + (inst % 3)) for inst in range(1, 7) for n in range(12)]
    assert institution_patterns(sessions, cfg, "2026-10") == []
    odd = [replace(s, check_interval_s=600.0) for s in sessions if s.institution_id == 6]
    signals = institution_patterns(
        [s for s in sessions if s.institution_id != 6] + odd, cfg, "2026-10"
    )
    assert [(s.kind, s.institution_id) for s in signals] == [("check_timing_outlier", 6)]
    assert signals[0].scores["median_interval_s"] == 600.0

"""Upheld appeals in the full scan: a roll call that found the learner absent and a
failed online check, overturned after every chain's summary was stored, are credited
at the next scan, equal to folding every event; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config import Settings
from storage import Storage
from supervisor.ledger import appeals as ae
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger.classroom import ClassPresence
from supervisor.subsidy.scan import Snapshot, scan
from tests import ledgergen as lg
from tests.supervisor.subsidy.test_summaries import _plain


def _credited(snap: Snapshot, chain_id: str) -> float:
    (s,) = [s for s in snap.all_sessions() if s.chain_id == chain_id]
    return s.credited_seconds


def _roll_call(class_id: int, learner_id: int, n: int, at: object, present: bool) -> ClassPresence:
    return ClassPresence(
        check_id=f"appeal-rc-{n}",
        check_kind="roll_call",
        purpose="random",
        verdict="present" if present else "absent",
        passed=present,
        at=at,  # type: ignore[arg-type]
        distance=0.4 if present else None,
        threshold=0.53,
        issues=(),
        faces=20,
        frames=3,
        evidence_sha256=None,
        class_id=class_id,
        learner_id=learner_id,
        run_id=1,
    )


def _appeal(storage: Storage, appeal_id: int, learner_id: int, subject: str, chain: str,
            seq: int, upheld: bool) -> None:  # fmt: skip
    head = storage.ledger.read_chain(chain)[seq - 1]
    filed = ae.AppealFiled(appeal_id, learner_id, subject, "I was there", head.recorded_at,
                           None, chain, seq)  # fmt: skip
    decided = ae.AppealDecided(appeal_id, upheld, "checked", "bureau:1", head.recorded_at)
    storage.ledger.append(ae.appeal_chain(appeal_id), [codec.encode(filed), codec.encode(decided)])


def test_upheld_appeals_reach_a_scan_whose_summaries_predate_them(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=60, institutions=2, classroom_share=0.5))
    lg.load(storage, world)
    first = scan(storage, settings)  # every chain's summary stored

    # A learner's class chain grows: absent at a roll call between two that found them.
    cls = next(s for s in first.all_sessions() if s.kind == "classroom")
    class_id = int(cls.chain_id.split(":")[1])
    last = cls.last_at
    step = timedelta(minutes=10)
    storage.ledger.append(cls.chain_id, [codec.encode(e) for e in (
        _roll_call(class_id, cls.learner_id, 1, last + step, False),
        _roll_call(class_id, cls.learner_id, 2, last + 2 * step, True),
        _roll_call(class_id, cls.learner_id, 3, last + 3 * step, True),
    )])  # fmt: skip
    absent_seq = storage.ledger.head(cls.chain_id).seq - 2  # type: ignore[union-attr]
    # An online session with a failed check between two passed ones.
    online = [s for s in first.all_sessions() if s.kind == "online"]
    session, failed_seq, stopped = None, 0, 0.0
    for s in online:
        stored = list(codec.decode_all(storage.ledger.read_chain(s.chain_id)))
        checks = [(x.seq, e) for x, e in stored if isinstance(e, ev.CheckRecorded)]
        for (_, a), (seq, b), (_, c) in zip(checks, checks[1:], checks[2:], strict=False):
            if a.passed and not b.passed and c.passed:
                session, failed_seq, stopped = s, seq, (c.at - a.at).total_seconds()
                break
        if session is not None:
            break
    assert session is not None, "the generated ledger has failed checks"

    grown = scan(storage, settings)  # summaries stored again, before any appeal
    class_before = _credited(grown, cls.chain_id)
    assert class_before == cls.credited_seconds + step.total_seconds()
    online_before = _credited(grown, session.chain_id)

    cut = datetime.now(UTC)
    # Dismissed appeals change nothing; upheld ones credit what the failure stopped.
    _appeal(storage, 1, cls.learner_id, "roll_call", cls.chain_id, absent_seq, False)
    _appeal(storage, 2, session.learner_id, "check", session.chain_id, failed_seq, False)
    dismissed = scan(storage, settings)
    assert _credited(dismissed, cls.chain_id) == class_before
    assert _credited(dismissed, session.chain_id) == online_before
    _appeal(storage, 3, cls.learner_id, "roll_call", cls.chain_id, absent_seq, True)
    _appeal(storage, 4, session.learner_id, "check", session.chain_id, failed_seq, True)
    after = scan(storage, settings)
    assert _credited(after, cls.chain_id) - class_before == 2 * step.total_seconds()
    assert abs(_credited(after, session.chain_id) - online_before - stopped) < 1e-6
    truth = scan(storage, settings, use_summaries=False)
    assert _plain(after) == _plain(truth) and after.appeals == truth.appeals
    assert [a.status for a in after.appeals] == ["dismissed", "dismissed", "upheld", "upheld"]
    assert _plain(scan(storage, settings)) == _plain(truth)
    # The stored summaries are still those of the chains alone: a scan cut before the
    # appeals were recorded credits as before.
    earlier = scan(storage, settings, cut)
    assert _credited(earlier, cls.chain_id) == class_before and earlier.appeals == []
    assert _credited(earlier, session.chain_id) == online_before

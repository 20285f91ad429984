"""Chain summaries beside the ledger: a scan that reads them gives exactly the snapshot
that folding every event gives, first time, again, after the ledger grew, cut at a
moment, and under other settings; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy.exc import OperationalError

from config import Settings
from storage import Storage
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import subsidy as se
from supervisor.rules.months import month_bounds
from supervisor.subsidy.scan import Snapshot, scan, summary_version
from tests import ledgergen as lg


def _plain(snap: Snapshot) -> tuple[object, ...]:
    return (
        snap.chains,
        snap.events,
        snap.terms,
        snap.learners,
        snap.sessions,
        snap.flags,
        snap.registered,
        snap.standings,
        snap.classified,
        snap.claims,
    )


def _stored(storage: Storage, version: str) -> dict[str, tuple[int, dict[str, object]]]:
    out = {}
    for batch in storage.summaries.chains(version):
        for cid, _hseq, _h, _rec, _complete, sseq, _sh, _usable, body, _state in batch:
            if sseq is not None:
                out[cid] = (sseq, orjson.loads(body))
    return out


def test_a_summarised_scan_equals_the_scan_of_every_event(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=240, institutions=6))
    lg.load(storage, world)
    version = summary_version(settings)
    truth = scan(storage, settings, use_summaries=False)
    assert truth.chains == world.chains and truth.events == world.events
    assert _stored(storage, version) == {}  # the independent recomputation writes nothing

    first = scan(storage, settings)  # folds every chain, stores a summary of each
    assert _plain(first) == _plain(truth)
    stored = _stored(storage, version)
    assert len(stored) == world.chains
    heads = {h.chain_id: h.seq for h in storage.ledger.heads()}
    assert {c: seq for c, (seq, _) in stored.items()} == heads
    assert _plain(scan(storage, settings)) == _plain(truth)  # from the summaries alone

    # The ledger grows: a session gets two more passed checks, a learner a new
    # assessment result, and a new session starts.
    session = next(s for s in truth.all_sessions() if s.kind == "online")
    last = max(s.last_at for s in truth.all_sessions() if s.chain_id == session.chain_id)
    more = [
        ev.CheckRecorded(
            f"grow-{n}",
            "presence",
            "scheduled",
            "present",
            True,
            last + timedelta(minutes=n),
            None,
            None,
            (),
            1,
            3,
            None,
        )  # fmt: skip
        for n in (1, 2)
    ]
    storage.ledger.append(session.chain_id, [codec.encode(e) for e in more])
    learner_id = session.learner_id
    storage.ledger.append(
        ev.learner_chain(learner_id),
        [
            codec.encode(
                se.AssessmentRecorded(
                    learner_id, session.course_id, 2, False, 10.0, last, "op:1", last
                )
            )
        ],
    )
    started = ev.SessionStarted(
        "grown", learner_id, session.course_id, session.institution_id, "upload", last
    )
    storage.ledger.append(ev.session_chain("grown"), [codec.encode(started)])
    truth = scan(storage, settings, use_summaries=False)
    grown = scan(storage, settings)
    assert _plain(grown) == _plain(truth)
    assert grown.eligibility(learner_id, session.course_id).reasons == (
        truth.eligibility(learner_id, session.course_id).reasons
    )
    assert "assessment_failed" in grown.eligibility(learner_id, session.course_id).reasons
    stored = _stored(storage, version)
    assert stored[session.chain_id][0] == storage.ledger.head(session.chain_id).seq  # type: ignore[union-attr]
    assert ev.session_chain("grown") in stored

    # Cut at the end of the generated month (every event is inside it) and before it.
    for month in ("2026-10", "2026-09"):
        _, end = month_bounds(month, settings.subsidy.timezone)
        assert _plain(scan(storage, settings, end)) == _plain(
            scan(storage, settings, end, use_summaries=False)
        )

    # Other settings fold other summaries: the old ones are not used, and are replaced.
    utc = settings.model_copy(
        update={"subsidy": settings.subsidy.model_copy(update={"timezone": "UTC"})}
    )
    assert summary_version(utc) != version
    assert _plain(scan(storage, utc)) == _plain(scan(storage, utc, use_summaries=False))
    assert len(_stored(storage, summary_version(utc))) == len(heads) + 1
    assert _stored(storage, version) == {}


def test_summaries_are_a_cache_the_independent_recomputation_does_not_trust(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=30, institutions=2))
    lg.load(storage, world)
    scan(storage, settings)
    version = summary_version(settings)
    # Someone with write access to the database edits a stored summary.
    target = next(c for c in _stored(storage, version) if c.startswith("session:"))
    seq, body = _stored(storage, version)[target]
    head = storage.ledger.head(target)
    assert head is not None and head.seq == seq
    forged = dict(body, total=1e6)  # type: ignore[arg-type]
    raw = next(
        row[3] for batch in storage.summaries.chains(version) for row in batch if row[0] == target
    )
    forged_text = orjson.dumps(forged).decode()
    storage.summaries.put(version, [(target, seq, head.hash, raw, forged_text, "")])
    cached = {s.chain_id: s for s in scan(storage, settings).all_sessions()}
    truth = {s.chain_id: s for s in scan(storage, settings, use_summaries=False).all_sessions()}
    assert cached[target].credited_seconds == 1e6  # the cache is what it is ...
    assert truth[target].credited_seconds < 1e4  # ... and recomputation does not use it
    assert storage.summaries.clear() == world.chains
    assert {s.chain_id: s for s in scan(storage, settings).all_sessions()} == truth


def test_a_damaged_summary_is_refolded_not_trusted_or_fatal(
    generated: tuple[Storage, Settings],
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=20, institutions=2))
    lg.load(storage, world)
    truth = _plain(scan(storage, settings, use_summaries=False))
    scan(storage, settings)
    version = summary_version(settings)
    stored = _stored(storage, version)
    rows = {row[0]: row for batch in storage.summaries.chains(version) for row in batch}
    session, learner = (
        next(c for c in stored if c.startswith("session:")),
        next(c for c in stored if c.startswith("learner:")),
    )
    damaged = [
        (session, rows[session][1], rows[session][2], rows[session][3], "{not json", ""),
        (learner, rows[learner][1], rows[learner][2], rows[learner][3], '{"k": "learner"}', ""),
    ]
    storage.summaries.put(version, damaged)
    assert _plain(scan(storage, settings)) == truth
    # ... and the scan stored good summaries in their place.
    assert _stored(storage, version)[session] == stored[session]
    assert _stored(storage, version)[learner] == stored[learner]


def test_a_failed_cache_write_does_not_fail_the_scan(
    generated: tuple[Storage, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=10, institutions=1))
    lg.load(storage, world)
    truth = _plain(scan(storage, settings, use_summaries=False))

    def refuse(version: str, rows: object) -> None:
        # Stands in for a write the database refuses (a lock held past the busy
        # timeout, a dropped connection), which a test cannot produce on demand.
        raise OperationalError("INSERT", None, Exception("database is locked"))

    monkeypatch.setattr(storage.summaries, "put", refuse)
    assert _plain(scan(storage, settings)) == truth
    monkeypatch.undo()
    assert _stored(storage, summary_version(settings)) == {}
    assert _plain(scan(storage, settings)) == truth
    assert len(_stored(storage, summary_version(settings))) == world.chains

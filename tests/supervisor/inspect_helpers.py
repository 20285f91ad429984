"""Recorded study sessions for the inspector's tests and benchmarks.

A session is written the way the service writes one (registry row, ledger events
in order, evidence frames stored by hash), without running the face checks: the
workspace reads records, so its tests need records of a known shape, with real
image bytes as evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from storage import Storage
from supervisor.ledger import codec
from supervisor.ledger import events as ev


def record_session(
    storage: Storage,
    institution_id: int,
    course_id: int,
    learner_id: int,
    started_at: datetime,
    frames: Sequence[bytes],
    *,
    checks: int = 6,
    every: timedelta = timedelta(minutes=5),
    fail_at: Sequence[int] = (3,),
    miss_at: Sequence[int] = (),
    end: bool = True,
) -> str:
    """A session with `checks` checks `every` apart; returns its id.

    Check n (0-based) fails when n is in `fail_at` (a mismatch, with its distance
    and a quality reason), is missed when in `miss_at`, and passes otherwise; a
    failed check pauses the session and the next passed one resumes it. Each
    non-missed check keeps one frame (cycling through `frames`).
    """
    sid = str(uuid.uuid4())
    chain = ev.session_chain(sid)
    if storage.registry.active_consent(learner_id) is None:
        storage.registry.record_consent(learner_id, "2026-11-v1", started_at)
    storage.registry.create_session(sid, chain, learner_id, course_id, institution_id, started_at)
    retain = started_at + timedelta(days=365 * 5)
    hashes = [storage.evidence.put(f, "image/jpeg", retain).sha256 for f in frames]
    out: list[ev.Event] = [
        ev.SessionStarted(sid, learner_id, course_id, institution_id, "webrtc", started_at)
    ]
    paused = False
    for n in range(checks):
        at = started_at + every * n + timedelta(seconds=1)
        if n in miss_at:
            out.append(
                ev.CheckMissed(f"c{n}", "identity", at - timedelta(seconds=30), at, "timeout")
            )
            continue
        failed = n in fail_at
        out.append(
            ev.CheckRecorded(
                check_id=f"c{n}",
                check_kind="identity",
                purpose="start" if n == 0 else "scheduled",
                verdict="mismatch" if failed else "match",
                passed=not failed,
                at=at,
                distance=0.71 if failed else 0.32,
                threshold=0.5,
                issues=("blurred",) if failed else (),
                faces=1,
                frames=1,
                evidence_sha256=hashes[n % len(hashes)] if hashes else None,
                scheduled_at=None if n == 0 else at - timedelta(seconds=20),
            )
        )
        if failed and not paused:
            out.append(ev.StateChanged("active", "paused", "failed_check", at))
            paused = True
        elif not failed and paused:
            out.append(ev.StateChanged("paused", "active", "check_passed", at))
            paused = False
    if end:
        out.append(ev.SessionEnded("learner", started_at + every * checks))
    storage.ledger.append(chain, [codec.encode(e) for e in out])
    if end:
        storage.registry.end_session(sid, started_at + every * checks)
    return sid

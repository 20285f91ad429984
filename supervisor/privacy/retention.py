"""Retention per kind of personal data, enforced by `supervisor purge`.

- Evidence frames: past their retention date (`evidence.retention_days` when stored)
  the file goes; the row and the hash stay, so the ledger still says it existed.
- Face templates: `privacy.templates_days_after_course_end` after the end of the
  learner's last course. A learner's courses are those they are enrolled in or
  studied in; a course without an end date (`valid_until`), or an open session,
  keeps the templates. Each deletion is an event in the learner's chain. The
  enrolment photos go with them (those no check, roll call or flag rests on; see
  `supervisor.registry.frames`).
- The access log: entries older than `privacy.access_log_days`.
Withdrawn consent needs no purge: the templates and enrolment photos go at the moment
of withdrawal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from config import Settings
from storage import Storage
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import privacy as pev
from supervisor.registry.frames import enrolment_photos_to_delete


@dataclass(frozen=True, slots=True)
class PurgeReport:
    evidence_frames: int
    templates: dict[int, int]  # learner id -> templates deleted
    access_log_entries: int
    session_clients: int = 0  # sessions' client address and device hash records
    frame_signatures: int = 0  # signatures of kept frames whose frames are past retention


def templates_due(storage: Storage, settings: Settings, now: datetime) -> dict[int, datetime]:
    """Learners whose templates are past retention, with the end of their last course."""
    keep_for = timedelta(days=settings.privacy.templates_days_after_course_end)
    rules = storage.subsidy.all_course_rules()
    due: dict[int, datetime] = {}
    for learner_id in storage.templates.learner_ids():
        courses = {e.course_id for e in storage.subsidy.enrolments(learner_id=learner_id)}
        sessions = storage.registry.list_sessions(None, learner_id, False)
        if any(s.ended_at is None for s in sessions):
            continue  # studying now
        courses |= {s.course_id for s in sessions}
        if not courses:
            continue  # no course yet: nothing has ended
        ends = [rules[c].valid_until if c in rules else None for c in courses]
        if any(end is None for end in ends):
            continue  # a course without an end keeps the templates
        last = max(end for end in ends if end is not None)
        if last + keep_for <= now:
            due[learner_id] = last
    return due


def purge(storage: Storage, settings: Settings, now: datetime) -> PurgeReport:
    """Apply every retention rule at `now`. Blocking: run from the CLI or a thread."""
    frames = storage.evidence.purge_expired(now)
    deleted: dict[int, int] = {}
    for learner_id, last_end in templates_due(storage, settings, now).items():
        photos = enrolment_photos_to_delete(storage, learner_id)
        n = storage.templates.delete_for_learner(learner_id)
        if n:
            deleted[learner_id] = n
            erased = len(storage.evidence.erase(photos, now))
            event = pev.TemplatesPurged(learner_id, n, "retention", last_end, now, erased)
            storage.ledger.append(ev.learner_chain(learner_id), [codec.encode(event)])
    cutoff = now - timedelta(days=settings.privacy.access_log_days)
    entries = storage.access_log.purge_before(cutoff)
    clients = storage.registry.purge_session_clients(now)
    signatures = storage.signatures.purge_expired(now)
    return PurgeReport(len(frames), deleted, entries, clients, signatures)

"""A learner's personal-data rights: see what is held, and a path without face recognition.

The rules on face recognition forbid making it the only way to verify a person. A
learner may ask for the non-face path; an operator of the institution approves or
refuses it. With an approved path the learner studies at the institution under its
staff: an operator opens the session after checking the ID card in person, and
attests the learner's presence during and at the end of it. Those attestations are
checks in the session's ledger chain like any other (`check_kind` `in_person`), so
credited hours come from the same ledger function, and an inspector sees who attested
what and when. Requests and decisions are events in the learner's own chain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.types import StudySession
from supervisor.auth import (
    Principal,
    can_act_for_learner_in_person,
    can_read_learner,
    require_bureau,
)
from supervisor.context import Context
from supervisor.errors import Conflict, OtherInstitution
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import privacy as pev
from supervisor.online.sessions import SessionService
from supervisor.registry.frames import (
    AFTER_WITHDRAWAL,
    LearnerFrame,
    learner_flags,
    learner_frames,
)
from supervisor.registry.identity import mask_id_number
from supervisor.registry.status import ensure_active
from supervisor.rules import session_state as sm
from supervisor.rules.session_state import SessionState

IN_PERSON = "in_person"


@dataclass(frozen=True, slots=True)
class AlternativeState:
    """Where the learner's non-face path stands: none, requested, approved or refused."""

    status: str
    reason: str | None
    method: str | None
    note: str | None
    decided_by: str | None
    at: datetime | None


def alternative_state(events: list[ev.Event]) -> AlternativeState:
    """The state of the non-face path from the learner chain's events (newest wins)."""
    state = AlternativeState("none", None, None, None, None, None)
    for e in events:
        if isinstance(e, pev.AlternativeRequested):
            state = AlternativeState("requested", e.reason, None, None, None, e.at)
        elif isinstance(e, pev.AlternativeDecided):
            state = AlternativeState(
                "approved" if e.approved else "refused",
                state.reason,
                e.method,
                e.note,
                e.decided_by,
                e.at,
            )
    return state


class PrivacyService:
    def __init__(self, ctx: Context, sessions: SessionService) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.store = ctx.storage.registry

    async def _learner_events(self, learner_id: int) -> list[ev.Event]:
        stored = await self.ctx.db(self.ctx.storage.ledger.read_chain, ev.learner_chain(learner_id))
        return [e for _, e in codec.decode_all(stored)]

    # -- what is held ----------------------------------------------------------

    async def learner_data(self, p: Principal, learner_id: int) -> dict[str, Any]:
        """Everything held about one learner, except the face vectors themselves.

        Giving it out is recorded in the learner's chain (who asked, when).
        """
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_read_learner(p, learner.id, learner.institution_id)
        storage = self.ctx.storage
        institution = await self.ctx.db(self.store.get_institution, learner.institution_id)
        chain = await self._learner_events(learner.id)
        templates = await self.ctx.db(storage.templates.for_learner, learner.id)
        sessions = await self.ctx.db(self.store.list_sessions, None, learner.id, False)
        session_rows = []
        for s in sessions:
            stored = await self.sessions.chain(s)
            decoded = [e for _, e in codec.decode_all(stored)]
            credit = self.sessions.credit_of(stored)
            session_rows.append(
                {
                    "session_id": s.id,
                    "course_id": s.course_id,
                    "started_at": s.started_at,
                    "ended_at": s.ended_at,
                    "checks": sum(isinstance(e, ev.CheckRecorded) for e in decoded),
                    "credited_seconds": round(credit.credited_seconds, 3),
                }
            )
        # Every frame that concerns the learner: enrolment photos (also of templates
        # already deleted), check and roll-call frames, and what flags rest on.
        by_sha: dict[str, list[LearnerFrame]] = {}
        for f in await self.ctx.db(learner_frames, storage, learner.id):
            by_sha.setdefault(f.sha256, []).append(f)
        records = await self.ctx.db(storage.evidence.records, list(by_sha))
        evidence = []
        for sha, found in sorted(by_sha.items()):
            record = records.get(sha)
            kinds = [f.kind for f in found]
            evidence.append(
                {
                    "sha256": sha,
                    "what": found[0].what,
                    "kinds": kinds,
                    "concerns": [f.what for f in found],
                    "after_withdrawal": (
                        "deleted"
                        if all(AFTER_WITHDRAWAL[k] == "deleted" for k in kinds)
                        else "kept_until_retention"
                    ),
                    "retain_until": record.retain_until if record else None,
                    "deleted_at": record.purged_at if record else None,
                }
            )
        flags = await self.ctx.db(learner_flags, storage, learner.id)
        consents = [
            {
                "event": e.KIND,
                "text_version": getattr(e, "text_version", None),
                "templates_deleted": getattr(e, "templates_deleted", None),
                "photos_deleted": getattr(e, "photos_deleted", None),
                "at": e.at,
            }
            for e in chain
            if isinstance(e, ev.ConsentGiven | ev.ConsentWithdrawn)
        ]
        alt = alternative_state(chain)
        reads = await self.ctx.db(storage.access_log.entries, learner_id=learner.id, limit=200)
        now = self.ctx.clock()
        await self.ctx.append(
            ev.learner_chain(learner.id),
            [codec.encode(pev.DataExported(learner.id, p.actor, now))],
        )
        return {
            "learner": {
                "id": learner.id,
                "full_name": learner.full_name,
                "id_number_masked": mask_id_number(learner.id_number),
                "institution": {"id": institution.id, "name": institution.name},
                "registered_at": learner.created_at,
            },
            "consents": consents,
            "face_templates": [
                {"id": t.id, "created_at": t.created_at, "evidence_sha256": t.evidence_sha256}
                for t in templates
            ],
            "sessions": session_rows,
            "evidence_frames": evidence,
            "flags": [
                {"id": f.id, "kind": f.kind, "status": f.status.value, "raised_at": f.created_at}
                for f in flags
            ],
            "alternative_path": {
                "status": alt.status,
                "method": alt.method,
                "decided_at": alt.at if alt.status in ("approved", "refused") else None,
            },
            "read_by": [
                {"at": r.at, "who": r.actor, "role": r.role, "what": r.action} for r in reads
            ],
            "ledger_chain": ev.learner_chain(learner.id),
            "processing_record": "/privacy",
            "exported_at": now,
        }

    # -- the non-face path -----------------------------------------------------

    async def alternative(self, p: Principal, learner_id: int) -> AlternativeState:
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_read_learner(p, learner.id, learner.institution_id)
        return alternative_state(await self._learner_events(learner.id))

    async def request_alternative(
        self, p: Principal, learner_id: int, reason: str
    ) -> AlternativeState:
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_act_for_learner_in_person(p, learner.id)
        async with self.ctx.lock(f"learner:{learner.id}"):
            current = alternative_state(await self._learner_events(learner.id))
            if current.status in ("requested", "approved"):
                raise Conflict(
                    f"the non-face path is already {current.status}",
                    reason=f"alternative_already_{current.status}",
                )
            event = pev.AlternativeRequested(learner.id, reason, p.actor, self.ctx.clock())
            await self.ctx.append(ev.learner_chain(learner.id), [codec.encode(event)])
        return alternative_state(await self._learner_events(learner.id))

    async def decide_alternative(
        self, p: Principal, learner_id: int, approved: bool, method: str, note: str
    ) -> AlternativeState:
        """The bureau approves or refuses the non-face path: an institution that could
        approve it would exempt its own learners from face checks."""
        require_bureau(p)
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        async with self.ctx.lock(f"learner:{learner.id}"):
            current = alternative_state(await self._learner_events(learner.id))
            if current.status == "none":
                raise Conflict(
                    "the learner has not asked for the non-face path", reason="no_request"
                )
            event = pev.AlternativeDecided(
                learner.id, approved, method, note, p.actor, self.ctx.clock()
            )
            await self.ctx.append(ev.learner_chain(learner.id), [codec.encode(event)])
        return alternative_state(await self._learner_events(learner.id))

    async def start_in_person(
        self, p: Principal, learner_id: int, course_id: int, note: str
    ) -> tuple[SessionState, ev.CheckRecorded]:
        """Bureau staff open a session for a learner on the approved non-face path, after
        checking the ID card in person; that check is the session's start check."""
        require_bureau(p)
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        await ensure_active(self.ctx, learner.institution_id)
        course = await self.ctx.db(self.store.get_course, course_id)
        if course.institution_id != learner.institution_id:
            raise OtherInstitution("the course belongs to another institution")
        alt = alternative_state(await self._learner_events(learner.id))
        if alt.status != "approved":
            raise Conflict(
                "the learner is not on an approved non-face path",
                reason="alternative_not_approved",
                current=alt.status,
            )
        async with self.ctx.lock(f"learner:{learner.id}"):
            open_now = await self.ctx.db(self.store.list_sessions, None, learner.id, True)
            if open_now:
                raise Conflict(
                    "the learner already has a session open",
                    reason="session_already_open",
                    session_id=open_now[0].id,
                )
            now = self.ctx.clock()
            session_id = str(uuid.uuid4())
            chain_id = ev.session_chain(session_id)
            started = sm.start(
                session_id, learner.id, course.id, course.institution_id, IN_PERSON, now
            )
            check = _attestation("start", p, note, now)
            await self.ctx.append(chain_id, [codec.encode(started), codec.encode(check)])
            await self.ctx.db(
                self.store.create_session,
                session_id,
                chain_id,
                learner.id,
                course.id,
                course.institution_id,
                now,
                False,  # no face, so no biometric consent needed
            )
        return await self.sessions.state(p, session_id), check

    async def attest(
        self, p: Principal, session_id: str, note: str
    ) -> tuple[SessionState, ev.CheckRecorded]:
        """Staff attest, in person, that the learner of an in-person session is there."""
        session = await self._in_person_session(p, session_id)
        check = _attestation("attested", p, note, self.ctx.clock())
        state = await self.sessions.recorder.attest(session, check)
        return state, check

    async def _in_person_session(self, p: Principal, session_id: str) -> StudySession:
        # Bureau staff attest presence in person: the institution, which is paid for
        # the hours, never does.
        require_bureau(p)
        session = await self.ctx.db(self.store.get_session, session_id)
        stored = await self.sessions.chain(session)
        first = codec.decode(stored[0]) if stored else None
        if not isinstance(first, ev.SessionStarted) or first.mode != IN_PERSON:
            raise Conflict(
                "presence is attested only in sessions on the non-face path",
                reason="not_in_person",
            )
        return session


def _attestation(purpose: str, p: Principal, note: str, at: datetime) -> ev.CheckRecorded:
    return ev.CheckRecorded(
        check_id=uuid.uuid4().hex,
        check_kind=IN_PERSON,
        purpose=purpose,
        verdict="attested",
        passed=True,
        at=at,
        distance=None,
        threshold=None,
        issues=(f"attested_by:{p.actor}",) + ((f"note:{note}",) if note else ()),
        faces=0,
        frames=0,
        evidence_sha256=None,
    )

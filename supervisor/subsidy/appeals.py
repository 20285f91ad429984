"""Learners' appeals: the service behind `/api/v1/appeals` and the learner's page.

Who does what (`supervisor.auth`):

- the learner, with their own token and nobody else, files an appeal against a flag
  raised on them, a failed check of one of their sessions or a roll call that found
  them absent, with a statement. An operator (the institution under supervision),
  bureau staff or an inspector cannot file one (`learner_only`);
- bureau staff, an inspector or an admin decides it, once: upheld or dismissed,
  with a note. The institution never decides (`wrong_role`).

Every step is a ledger event in the appeal's chain `appeal:<id>`
(`supervisor.ledger.appeals`); the tables of `storage.appeals_sql` are projections
for queries. An upheld appeal reaches eligibility: on a flag, by dismissing it
through the flag-decision path (`supervisor.subsidy.flags.decide`, the note naming
the appeal); on a check or a roll call, through the rules, which read the failure
as passed when crediting (`supervisor.rules.appeals`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from storage.exceptions import Duplicate, NotFound
from storage.types import Appeal, AppealStatus, AppealSubject, Flag, FlagStatus, Role
from supervisor.auth import DECIDERS, Principal, can_act_as_learner, require_decider
from supervisor.context import Context
from supervisor.errors import Conflict, Forbidden, InvalidInput, UnknownId, WrongRole
from supervisor.ledger import appeals as ae
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import subsidy as se
from supervisor.ledger.classroom import ClassPresence, learner_class_chain
from supervisor.rules.appeals import is_failure
from supervisor.rules.flags import view
from supervisor.subsidy.flags import decide as decide_flag

MAX_STATEMENT = 2000
MAX_NOTE = 2000
# The failures the learner's page lists, newest first.
MAX_LISTED = 200

_SESSION = re.compile(r"session:([A-Za-z0-9._-]{1,56})")
_CLASS = re.compile(r"class:(\d{1,18}):learner:(\d{1,18})")


class NotYourSubject(Forbidden):
    reason = "not_your_subject"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed check or a roll call that found the learner absent: what can be appealed."""

    subject: AppealSubject  # check | roll_call
    chain_id: str
    seq: int
    at: datetime
    verdict: str
    course_id: int | None
    appeal: Appeal | None  # the latest appeal on it


@dataclass(frozen=True, slots=True)
class FlagOnLearner:
    """A flag as its learner sees it: never its details (they may name other learners)."""

    flag: Flag
    appeal: Appeal | None


@dataclass(frozen=True, slots=True)
class Appealable:
    flags: tuple[FlagOnLearner, ...]
    failures: tuple[Failure, ...]


def _latest(appeals: list[Appeal]) -> dict[str, Appeal]:
    out: dict[str, Appeal] = {}
    for a in appeals:
        out[a.subject_key] = a  # in id order: the latest wins
    return out


def _flag_holds(flag: Flag, learner_id: int, decisions: list[se.FlagDecided]) -> str | None:
    """How the flag holds the learner up: "subject" (the flagged learner, while open
    or confirmed), "against" (another learner a confirmation names), or None."""
    latest = decisions[-1] if decisions else None
    status = latest.status if latest is not None else FlagStatus.open.value
    if flag.learner_id == learner_id:
        return "subject" if status != FlagStatus.dismissed.value else None
    if latest is not None and status == FlagStatus.confirmed.value:
        if learner_id in (latest.against or ()):
            return "against"
    return None


class AppealService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.storage.appeals

    # -- reading ----------------------------------------------------------------------

    def _own(self, p: Principal, learner_id: int) -> None:
        if p.role is Role.learner:
            if p.learner_id != learner_id:
                raise Forbidden("a learner can only read their own appeals", reason="not_your_data")
            return
        if p.role not in DECIDERS:
            raise WrongRole("appeals are read by the learner, the bureau and inspectors")

    async def appealable(self, p: Principal, learner_id: int) -> Appealable:
        """The learner's flags, failed checks and missed roll calls, each with its latest
        appeal (the learner, or a decider)."""
        self._own(p, learner_id)
        learner = await self.ctx.db(self.ctx.storage.registry.get_learner, learner_id)
        return await self.ctx.db(self._appealable, learner.id, learner.institution_id)

    def _appealable(self, learner_id: int, institution_id: int) -> Appealable:
        storage = self.ctx.storage
        latest = _latest(self.store.find(learner_id=learner_id))
        flags = []
        for f in storage.subsidy.find_flags(learner_id=learner_id):
            a = latest.get(f"flag:{f.id}")
            if a is not None or _flag_holds(f, learner_id, self._decisions(f.id)) is not None:
                flags.append(FlagOnLearner(f, a))
        failures: list[Failure] = []
        for s in storage.registry.list_sessions(None, learner_id, False):
            for stored, e in codec.decode_all(storage.ledger.read_chain(s.chain_id)):
                if is_failure(e) and isinstance(e, ev.CheckRecorded | ev.CheckMissed):
                    failures.append(self._failure(AppealSubject.check, stored.chain_id,
                                                  stored.seq, e, s.course_id, latest))  # fmt: skip
        for c in storage.classroom.list_classes(institution_id=institution_id):
            chain = learner_class_chain(c.id, learner_id)
            for stored, e in codec.decode_all(storage.ledger.read_chain(chain)):
                if isinstance(e, ClassPresence) and not e.passed:
                    failures.append(self._failure(AppealSubject.roll_call, chain, stored.seq, e,
                                                  c.course_id, latest))  # fmt: skip
        failures.sort(key=lambda f: f.at, reverse=True)
        return Appealable(tuple(flags), tuple(failures[:MAX_LISTED]))

    @staticmethod
    def _failure(
        subject: AppealSubject,
        chain_id: str,
        seq: int,
        e: ev.CheckRecorded | ev.CheckMissed,
        course_id: int | None,
        latest: dict[str, Appeal],
    ) -> Failure:
        verdict = e.verdict if isinstance(e, ev.CheckRecorded) else "missed"
        at = e.at if isinstance(e, ev.CheckRecorded) else e.scheduled_at
        return Failure(
            subject, chain_id, seq, at, verdict, course_id, latest.get(f"{chain_id}#{seq}")
        )

    def _decisions(self, flag_id: int) -> list[se.FlagDecided]:
        chain = self.ctx.storage.ledger.read_chain(se.flag_chain(flag_id))
        return [e for _, e in codec.decode_all(chain) if isinstance(e, se.FlagDecided)]

    async def list(
        self,
        p: Principal,
        status: AppealStatus | None = None,
        learner_id: int | None = None,
    ) -> list[Appeal]:
        """Appeals (a learner: their own only; bureau, inspectors, admins: all)."""
        if p.role is Role.learner:
            if learner_id is not None and learner_id != p.learner_id:
                raise Forbidden("a learner can only read their own appeals", reason="not_your_data")
            learner_id = p.learner_id
        elif p.role not in DECIDERS:
            raise WrongRole("appeals are read by the learner, the bureau and inspectors")
        return await self.ctx.db(self.store.find, learner_id, status)

    async def get(self, p: Principal, appeal_id: int) -> Appeal:
        appeal = await self._appeal(appeal_id)
        self._own(p, appeal.learner_id)
        return appeal

    async def _appeal(self, appeal_id: int) -> Appeal:
        try:
            return await self.ctx.db(self.store.get, appeal_id)
        except NotFound:
            raise UnknownId(f"no appeal {appeal_id}", reason="unknown_appeal") from None

    # -- filing -----------------------------------------------------------------------

    async def file(
        self,
        p: Principal,
        subject: AppealSubject,
        statement: str,
        flag_id: int | None = None,
        chain_id: str | None = None,
        seq: int | None = None,
    ) -> Appeal:
        """File an appeal (the learner, with their own token). The subject must be the
        learner's own: a flag raised on them (or confirmed against them), a failed or
        missed check of their session, a roll call of theirs that found them absent."""
        if p.role is not Role.learner or p.learner_id is None:
            raise WrongRole(
                "only the learner, with their own token, can appeal", reason="learner_only"
            )
        learner_id = p.learner_id
        can_act_as_learner(p, learner_id)
        said = statement.strip()
        if not said:
            raise InvalidInput("the statement is empty", reason="empty_statement")
        if len(said) > MAX_STATEMENT:
            raise InvalidInput(
                f"the statement is longer than {MAX_STATEMENT} characters",
                reason="statement_too_long",
            )
        learner = await self.ctx.db(self.ctx.storage.registry.get_learner, learner_id)
        if subject is AppealSubject.flag:
            if flag_id is None or chain_id is not None or seq is not None:
                raise InvalidInput(
                    "an appeal on a flag names `flag_id` only", reason="wrong_subject"
                )
            await self.ctx.db(self._check_flag, learner_id, flag_id)
        else:
            if flag_id is not None or chain_id is None or seq is None:
                raise InvalidInput(
                    "an appeal on a check or a roll call names `chain_id` and `seq`",
                    reason="wrong_subject",
                )
            await self.ctx.db(self._check_failure, learner_id, subject, chain_id, seq)
        key = f"flag:{flag_id}" if subject is AppealSubject.flag else f"{chain_id}#{seq}"
        async with self.ctx.lock(f"appeal-subject:{learner_id}:{key}"):
            now = self.ctx.clock()
            try:
                appeal = await self.ctx.db(
                    self.store.file,
                    learner_id,
                    learner.institution_id,
                    subject,
                    flag_id,
                    chain_id,
                    seq,
                    said,
                    p.actor,
                    now,
                )
            except Duplicate:
                raise Conflict(
                    "this already has an open or upheld appeal", reason="appeal_exists"
                ) from None
            event = ae.AppealFiled(
                appeal.id, learner_id, subject.value, said, now, flag_id, chain_id, seq
            )
            await self.ctx.append(ae.appeal_chain(appeal.id), [codec.encode(event)])
        return appeal

    def _check_flag(self, learner_id: int, flag_id: int) -> None:
        try:
            flag = self.ctx.storage.subsidy.get_flag(flag_id)
        except NotFound:
            raise UnknownId(f"no flag {flag_id}", reason="unknown_subject") from None
        decisions = self._decisions(flag_id)
        named = flag.learner_id == learner_id or learner_id in view(flag).other_learner_ids
        if not named:
            raise NotYourSubject("a learner can only appeal what concerns them")
        if _flag_holds(flag, learner_id, decisions) is None:
            raise Conflict("the flag does not hold you up", reason="nothing_to_appeal")

    def _check_failure(
        self, learner_id: int, subject: AppealSubject, chain_id: str, seq: int
    ) -> None:
        storage = self.ctx.storage
        session = _SESSION.fullmatch(chain_id)
        in_class = _CLASS.fullmatch(chain_id)
        if session is not None:
            if subject is not AppealSubject.check:
                raise InvalidInput("a session's event is a check", reason="wrong_subject")
            try:
                owner = storage.registry.get_session(session.group(1)).learner_id
            except NotFound:
                raise UnknownId(f"no {chain_id}", reason="unknown_subject") from None
            if owner != learner_id:
                raise NotYourSubject("a learner can only appeal what concerns them")
        elif in_class is not None:
            if subject is not AppealSubject.roll_call:
                raise InvalidInput("a class chain's event is a roll call", reason="wrong_subject")
            if int(in_class.group(2)) != learner_id:
                raise NotYourSubject("a learner can only appeal what concerns them")
        else:
            raise InvalidInput(
                "only a session's check or a class roll call can be appealed",
                reason="wrong_subject",
            )
        if seq < 1:
            raise UnknownId(f"no event {seq} in {chain_id}", reason="unknown_subject")
        found = storage.ledger.read_chain(chain_id, seq - 1, 1)
        if not found or found[0].seq != seq:
            raise UnknownId(f"no event {seq} in {chain_id}", reason="unknown_subject")
        ((_, e),) = codec.decode_all(found)
        if subject is AppealSubject.roll_call:
            failed = isinstance(e, ClassPresence) and not e.passed
        else:
            failed = is_failure(e) and not isinstance(e, ClassPresence)
        if not failed:
            raise Conflict(
                f"event {seq} of {chain_id} is not a failed {subject.value.replace('_', ' ')}",
                reason="nothing_to_appeal",
            )

    # -- deciding ---------------------------------------------------------------------

    async def decide(self, p: Principal, appeal_id: int, upheld: bool, note: str) -> Appeal:
        """Uphold or dismiss (bureau, inspector, admin; once). Upheld on a flag: the flag
        is dismissed (for the flagged learner) or no longer held against the appellant
        (another learner a confirmation named), by a new decision in its chain."""
        require_decider(p)
        text = note.strip()
        if not text:
            raise InvalidInput("a decision needs a note", reason="appeal_note_required")
        if len(text) > MAX_NOTE:
            raise InvalidInput(
                f"the note is longer than {MAX_NOTE} characters", reason="appeal_note_too_long"
            )
        appeal = await self._appeal(appeal_id)
        if appeal.decision is not None:
            raise Conflict(f"appeal {appeal_id} is decided already", reason="appeal_decided")
        chain = ae.appeal_chain(appeal_id)
        async with self.ctx.lock(chain):
            now = self.ctx.clock()
            event = ae.AppealDecided(appeal_id, upheld, text, p.actor, now)
            # Once per appeal, across processes: the ledger keeps the key of the append.
            (stored,), made = await self.ctx.db(
                self.ctx.storage.ledger.append_once, chain, "decided", [codec.encode(event)]
            )
            if not made:
                raise Conflict(f"appeal {appeal_id} is decided already", reason="appeal_decided")
            decided = await self.ctx.db(
                self.store.decide,
                appeal_id,
                upheld,
                text,
                p.actor,
                now,
                (stored.chain_id, stored.seq, stored.hash),
            )
            if upheld and appeal.subject is AppealSubject.flag and appeal.flag_id is not None:
                await self._lift_flag(p, appeal, text)
        return decided

    async def _lift_flag(self, p: Principal, appeal: Appeal, note: str) -> None:
        assert appeal.flag_id is not None
        flag_id = appeal.flag_id
        async with self.ctx.lock(se.flag_chain(flag_id)):
            flag = await self.ctx.db(self.ctx.storage.subsidy.get_flag, flag_id)
            decisions = await self.ctx.db(self._decisions, flag_id)
            holds = _flag_holds(flag, appeal.learner_id, decisions)
            said = f"appeal {appeal.id} upheld: {note}"
            against: tuple[int, ...] = ()
            if holds == "subject":
                status = FlagStatus.dismissed.value
            elif holds == "against":
                status = FlagStatus.confirmed.value
                against = tuple(i for i in (decisions[-1].against or ()) if i != appeal.learner_id)
            else:
                return  # decided otherwise since the appeal was filed: nothing holds
            await self.ctx.db(
                decide_flag,
                self.ctx.storage,
                flag,
                status,
                said,
                p.actor,
                self.ctx.clock(),
                against,
            )

"""The records the bureau's statistics need: an institution's profile (GB/T 2260
division, licence, legal representative, address), a course's classification
(occupation code and skill level), a learner's key groups and skill-level certificates.

Who does what (the institution is the supervised party):

- the profile is the bureau's to record and correct (a correction names its reason);
  the institution's operator reads its own;
- a course is classified by its institution's operator while its rules are unpublished
  (at creation or later), and by the bureau at any time;
- key groups are added and removed by the institution's operator (its own learners,
  while it may train) or the bureau;
- a certificate is recorded by the bureau only, for the learner's latest assessment
  result of the course when it passed, at the course's skill level.

Each change is appended to the ledger (`supervisor.ledger.records`); the tables of
`storage.records_sql` are projections. A refusal changes neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from storage.exceptions import Duplicate
from storage.types import (
    Certificate,
    Course,
    CourseClassification,
    InstitutionProfile,
    Learner,
    LearnerGroup,
    PublicationStatus,
    Role,
)
from supervisor.auth import (
    BUREAU,
    READ_ALL,
    Principal,
    can_read_institution,
    can_read_learner,
    require_bureau,
    require_role,
)
from supervisor.context import Context
from supervisor.errors import Conflict, Forbidden, InvalidInput, UnknownId
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import records as rec
from supervisor.ledger import subsidy as se
from supervisor.registry.status import ensure_may_register
from supervisor.rules.divisions import Division, DivisionCodeError, parse_division
from supervisor.rules.occupations import (
    INVALID_OCCUPATION_CODE,
    INVALID_SKILL_LEVEL,
    occupation_problem,
    skill_level_problem,
)

FIRST_RECORD = "registered"  # the reason of an institution's first profile


@dataclass(frozen=True, slots=True)
class ProfileView:
    profile: InstitutionProfile
    division: Division


def division_of(code: str) -> Division:
    """The division a code names, or 422 `invalid_division_code`."""
    try:
        return parse_division(code)
    except DivisionCodeError as exc:
        raise InvalidInput(str(exc), reason=exc.reason) from None


def check_classification(occupation_code: str, skill_level: int) -> None:
    """422 `invalid_occupation_code` / `invalid_skill_level` unless both are valid."""
    problem = occupation_problem(occupation_code)
    if problem is not None:
        raise InvalidInput(
            f"occupation code {occupation_code!r} {problem}", reason=INVALID_OCCUPATION_CODE
        )
    problem = skill_level_problem(skill_level)
    if problem is not None:
        raise InvalidInput(f"skill level {problem}", reason=INVALID_SKILL_LEVEL)


def _one_line(value: str, what: str, reason: str, max_len: int) -> str:
    """A non-empty single line, inner whitespace collapsed."""
    text = " ".join(value.split())
    if not text or len(text) > max_len:
        raise InvalidInput(f"{what} must be 1 to {max_len} characters", reason=reason)
    return text


def _local_date(value: str, what: str, today: date) -> str:
    """A local date YYYY-MM-DD, not after `today`: 422 `invalid_date` / `future_date`."""
    try:
        if len(value) != 10:
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a date YYYY-MM-DD", reason="invalid_date") from None
    if day > today:
        raise InvalidInput(f"{what} cannot be in the future", reason="future_date")
    return day.isoformat()


class RecordsService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.storage.records
        self.registry = ctx.storage.registry

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.ctx.settings.subsidy.timezone)

    def _today(self) -> date:
        return self.ctx.clock().astimezone(self._zone()).date()

    # -- institutions' profiles -------------------------------------------------------

    async def record_profile(
        self,
        p: Principal,
        institution_id: int,
        division_code: str,
        licence_number: str,
        legal_representative: str,
        address: str,
        reason: str | None,
    ) -> ProfileView:
        """Record the profile (the bureau), or correct it: a correction needs a reason."""
        require_bureau(p)
        await self.ctx.db(self.registry.get_institution, institution_id)
        division = division_of(division_code)
        licence = _one_line(licence_number, "the licence number", "invalid_licence_number", 100)
        person = _one_line(
            legal_representative, "the legal representative", "invalid_legal_representative", 100
        )
        where = _one_line(address, "the address", "invalid_address", 500)
        chain = se.institution_chain(institution_id)
        async with self.ctx.lock(chain):
            current = await self.ctx.db(self.store.profile, institution_id)
            why = " ".join((reason or "").split())
            if current is None:
                why = why or FIRST_RECORD
            else:
                same = (
                    current.division_code,
                    current.licence_number,
                    current.legal_representative,
                    current.address,
                ) == (division.code, licence, person, where)
                if same:
                    raise Conflict("the profile is already recorded so", reason="same_profile")
                if not why:
                    raise InvalidInput(
                        "correcting a recorded profile needs a reason", reason="reason_required"
                    )
            if len(why) > 2000:
                raise InvalidInput("the reason is too long", reason="invalid_reason")
            now = self.ctx.clock()
            event = rec.InstitutionProfileRecorded(
                institution_id, division.code, licence, person, where, why, p.actor, now
            )
            await self.ctx.append(chain, [codec.encode(event)])
            profile = await self.ctx.db(
                self.store.record_profile,
                institution_id,
                division.code,
                licence,
                person,
                where,
                why,
                p.actor,
                now,
            )
        return ProfileView(profile, division)

    async def profile(self, p: Principal, institution_id: int) -> ProfileView:
        """The latest profile (the bureau, inspectors, the institution's operator);
        404 `no_profile` when none is recorded."""
        can_read_institution(p, institution_id)
        await self.ctx.db(self.registry.get_institution, institution_id)
        found = await self.ctx.db(self.store.profile, institution_id)
        if found is None:
            raise UnknownId("no profile is recorded for the institution", reason="no_profile")
        return ProfileView(found, parse_division(found.division_code))

    async def profiles(self, p: Principal) -> dict[int, ProfileView]:
        """Every institution's latest profile the principal may read."""
        require_role(p, *READ_ALL, Role.operator)
        found = await self.ctx.db(self.store.profiles)
        return {
            iid: ProfileView(prof, parse_division(prof.division_code))
            for iid, prof in found.items()
            if p.role is not Role.operator or iid == p.institution_id
        }

    # -- courses' classification -----------------------------------------------------

    async def _may_classify(self, p: Principal, course: Course) -> None:
        if p.role in BUREAU:
            return
        await ensure_may_register(self.ctx, p, course.institution_id)
        rules = await self.ctx.db(self.ctx.storage.subsidy.course_rules, course.id)
        if rules is not None and rules.status is not PublicationStatus.draft:
            raise Forbidden(
                f"the course's rules are {rules.status.value}: only the bureau can re-classify it",
                reason="rules_published",
            )

    async def classify(
        self, p: Principal, course_id: int, occupation_code: str, skill_level: int
    ) -> CourseClassification:
        """Classify a course (its operator while the rules are unpublished; the bureau)."""
        course = await self.ctx.db(self.registry.get_course, course_id)
        await self._may_classify(p, course)
        check_classification(occupation_code, skill_level)
        return await self.record_classification(p, course, occupation_code, skill_level)

    async def record_classification(
        self,
        p: Principal,
        course: Course,
        occupation_code: str,
        skill_level: int,
        *,
        same_is_conflict: bool = True,
    ) -> CourseClassification:
        """Append and store a classification already allowed and checked."""
        chain = se.course_chain(course.id)
        async with self.ctx.lock(chain):
            current = await self.ctx.db(self.store.classification, course.id)
            if current is not None and (current.occupation_code, current.skill_level) == (
                occupation_code,
                skill_level,
            ):
                if same_is_conflict:
                    raise Conflict(
                        "the course is already classified so", reason="same_classification"
                    )
                return current
            now = self.ctx.clock()
            event = rec.CourseClassified(
                course.id, course.institution_id, occupation_code, skill_level, p.actor, now
            )
            await self.ctx.append(chain, [codec.encode(event)])
            return await self.ctx.db(
                self.store.classify_course, course.id, occupation_code, skill_level, p.actor, now
            )

    async def classification(self, p: Principal, course_id: int) -> CourseClassification:
        course = await self.ctx.db(self.registry.get_course, course_id)
        can_read_institution(p, course.institution_id)
        found = await self.ctx.db(self.store.classification, course_id)
        if found is None:
            raise UnknownId("the course is not classified", reason="not_classified")
        return found

    async def classifications(self) -> dict[int, CourseClassification]:
        return await self.ctx.db(self.store.classifications)

    # -- learners' key groups ---------------------------------------------------------

    async def _learner_to_write(self, p: Principal, learner_id: int) -> Learner:
        learner = await self.ctx.db(self.registry.get_learner, learner_id)
        if p.role not in BUREAU:
            await ensure_may_register(self.ctx, p, learner.institution_id)
        return learner

    async def add_group(
        self, p: Principal, learner_id: int, group: str, since: str, source: str
    ) -> list[LearnerGroup]:
        """Add a key group (`since`: local date, not in the future; `source`: who
        attests it). The institution's operator or the bureau."""
        learner = await self._learner_to_write(p, learner_id)
        if group not in rec.KEY_GROUPS:
            raise InvalidInput(
                f"unknown group {group!r}; one of {', '.join(rec.KEY_GROUPS)}",
                reason="invalid_group",
            )
        day = _local_date(since, "since", self._today())
        born = learner.id_number[6:14]  # YYYYMMDD in a resident ID number (GB 11643)
        if born.isdigit() and day.replace("-", "") < born:
            raise InvalidInput(
                "a learner cannot belong to a group before they were born",
                reason="before_birth",
            )
        origin = _one_line(source, "the source", "invalid_source", 200)
        chain = ev.learner_chain(learner.id)
        async with self.ctx.lock(chain):
            held = await self._held(learner.id)
            if group in held:
                raise Conflict("the learner is in this group already", reason="group_already_held")
            now = self.ctx.clock()
            event = rec.LearnerGroupAdded(learner.id, group, day, origin, p.actor, now)
            await self.ctx.append(chain, [codec.encode(event)])
            await self.ctx.db(
                self.store.change_group, learner.id, group, True, day, origin, None, p.actor, now
            )
        return await self.groups_of(learner.id)

    async def remove_group(
        self, p: Principal, learner_id: int, group: str, reason: str
    ) -> list[LearnerGroup]:
        learner = await self._learner_to_write(p, learner_id)
        if group not in rec.KEY_GROUPS:
            raise InvalidInput(f"unknown group {group!r}", reason="invalid_group")
        why = " ".join(reason.split())
        if not why or len(why) > 2000:
            raise InvalidInput("a removal needs a reason", reason="reason_required")
        chain = ev.learner_chain(learner.id)
        async with self.ctx.lock(chain):
            if group not in await self._held(learner.id):
                raise Conflict("the learner is not in this group", reason="group_not_held")
            now = self.ctx.clock()
            event = rec.LearnerGroupRemoved(learner.id, group, why, p.actor, now)
            await self.ctx.append(chain, [codec.encode(event)])
            await self.ctx.db(
                self.store.change_group, learner.id, group, False, None, None, why, p.actor, now
            )
        return await self.groups_of(learner.id)

    async def _held(self, learner_id: int) -> set[str]:
        return {g.group for g in await self.groups_of(learner_id)}

    async def groups_of(self, learner_id: int) -> list[LearnerGroup]:
        found = await self.ctx.db(self.store.groups, [learner_id])
        return found.get(learner_id, [])

    async def groups_by_learner(self, learner_ids: list[int]) -> dict[int, list[LearnerGroup]]:
        """The key groups of learners the caller has already been allowed to read."""
        if not learner_ids:
            return {}
        return await self.ctx.db(self.store.groups, learner_ids)

    async def groups(self, p: Principal, learner_id: int) -> list[LearnerGroup]:
        learner = await self.ctx.db(self.registry.get_learner, learner_id)
        can_read_learner(p, learner.id, learner.institution_id)
        return await self.groups_of(learner.id)

    # -- certificates ------------------------------------------------------------------

    async def issue_certificate(
        self,
        p: Principal,
        learner_id: int,
        course_id: int,
        number: str,
        skill_level: int,
        issued_on: str,
        issuing_body: str,
    ) -> Certificate:
        """Record a skill-level certificate (the bureau only) for the learner's latest
        assessment result of the course, which must have passed, at the course's level."""
        require_bureau(p)
        learner = await self.ctx.db(self.registry.get_learner, learner_id)
        course = await self.ctx.db(self.registry.get_course, course_id)
        if course.institution_id != learner.institution_id:
            raise Conflict(
                "the learner belongs to another institution than the course",
                reason="learner_other_institution",
            )
        results = await self.ctx.db(self.ctx.storage.subsidy.assessments, course.id, learner.id)
        # The latest result recorded counts, as for eligibility (a correction is a new one).
        latest = max(results, key=lambda r: r.id) if results else None
        if latest is None or not latest.passed:
            raise Conflict(
                "the learner has no passed assessment of this course",
                reason="assessment_not_passed",
            )
        problem = skill_level_problem(skill_level)
        if problem is not None:
            raise InvalidInput(f"skill level {problem}", reason=INVALID_SKILL_LEVEL)
        classified = await self.ctx.db(self.store.classification, course.id)
        if classified is None:
            raise Conflict(
                "the course has no occupation code and skill level yet",
                reason="not_classified",
            )
        if classified.skill_level != skill_level:
            raise InvalidInput(
                f"the course trains for level {classified.skill_level}, not {skill_level}",
                reason="level_mismatch",
                course_level=classified.skill_level,
            )
        day = _local_date(issued_on, "issued_on", self._today())
        assessed = latest.assessed_at.astimezone(self._zone()).date()
        if date.fromisoformat(day) < assessed:
            raise InvalidInput(
                "a certificate cannot be dated before its assessment", reason="before_assessment"
            )
        cert_number = _one_line(number, "the certificate number", "invalid_certificate_number", 64)
        body = _one_line(issuing_body, "the issuing body", "invalid_issuing_body", 200)
        chain = ev.learner_chain(learner.id)
        async with self.ctx.lock(chain):
            now = self.ctx.clock()
            try:
                cert = await self.ctx.db(
                    self.store.add_certificate,
                    cert_number,
                    latest.id,
                    skill_level,
                    classified.occupation_code,
                    day,
                    body,
                    p.actor,
                    now,
                )
            except Duplicate as exc:
                if "number" in str(exc):
                    raise Conflict(
                        "a certificate with this number exists already",
                        reason="duplicate_certificate_number",
                    ) from None
                raise Conflict(
                    "this assessment result has a certificate already",
                    reason="already_certified",
                ) from None
            event = rec.CertificateIssued(
                cert.id,
                learner.id,
                course.id,
                latest.id,
                cert.number,
                cert.skill_level,
                cert.occupation_code,
                cert.issued_on,
                cert.issuing_body,
                p.actor,
                now,
            )
            await self.ctx.append(chain, [codec.encode(event)])
        return cert

    async def certificates(self, p: Principal, learner_id: int) -> list[Certificate]:
        learner = await self.ctx.db(self.registry.get_learner, learner_id)
        can_read_learner(p, learner.id, learner.institution_id)
        return await self.ctx.db(self.store.certificates, learner.id)

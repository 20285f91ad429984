"""Real-name registry: institutions, courses, learners, consent and enrolment."""

from __future__ import annotations

from dataclasses import dataclass

from storage.exceptions import Duplicate
from storage.types import (
    Consent,
    Course,
    DeliveryMode,
    Institution,
    Learner,
    Role,
    Template,
    TemplateModel,
    Token,
)
from supervisor.auth import (
    READ_ALL,
    Principal,
    can_act_for_learner_in_person,
    can_read_institution,
    can_read_learner,
    require_bureau,
    require_role,
)
from supervisor.checks.flags import raise_flag
from supervisor.context import Context
from supervisor.errors import CheckRefused, Conflict, InvalidInput, image_refusal
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import subsidy as se
from supervisor.registry.consent import base_version
from supervisor.registry.credit_code import code_problem, normalise
from supervisor.registry.frames import enrolment_photos_to_delete
from supervisor.registry.identity import id_number_problem, normalise_id_number
from supervisor.registry.records import RecordsService, check_classification
from supervisor.registry.status import ensure_may_register
from supervisor.rules.flags import EvidenceRef
from verification.exceptions import EnrolmentRejected, ImageError
from verification.matching import as_matrix, search

DUPLICATE_FLAG = "duplicate_identity"


@dataclass(frozen=True, slots=True)
class Enrolment:
    template: Template
    evidence_sha256: str
    face_width_px: int


class RegistryService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.storage.registry

    # -- institutions and courses -------------------------------------------

    async def create_institution(self, p: Principal, name: str, credit_code: str) -> Institution:
        """File an institution (the bureau): its name and unified social credit code, both
        unique, recorded in the institution's chain."""
        require_bureau(p)
        problem = code_problem(credit_code)
        if problem is not None:
            raise InvalidInput(
                f"unified social credit code {problem}", reason="invalid_credit_code"
            )
        code = normalise(credit_code)
        name = " ".join(name.split())
        if not name:
            raise InvalidInput("the institution's name is empty", reason="invalid_name")
        try:
            inst = await self.ctx.db(self.store.create_institution, name, code)
        except Duplicate as exc:
            reason = "duplicate_credit_code" if "code" in str(exc) else "duplicate_name"
            raise Conflict(str(exc), reason=reason) from None
        event = se.InstitutionRegistered(inst.id, inst.name, code, p.actor, self.ctx.clock())
        await self.ctx.append(se.institution_chain(inst.id), [codec.encode(event)])
        return inst

    async def get_institution(self, p: Principal, institution_id: int) -> Institution:
        can_read_institution(p, institution_id)
        return await self.ctx.db(self.store.get_institution, institution_id)

    async def list_institutions(self, p: Principal) -> list[Institution]:
        require_role(p, *READ_ALL, Role.operator)
        found = await self.ctx.db(self.store.list_institutions)
        if p.role is Role.operator:
            found = [i for i in found if i.id == p.institution_id]
        return found

    async def create_course(
        self,
        p: Principal,
        institution_id: int,
        name: str,
        required_hours: float,
        delivery_mode: DeliveryMode,
        occupation_code: str | None = None,
        skill_level: int | None = None,
    ) -> Course:
        """Add a course; with its occupation code and skill level (both or neither),
        classified at once (`course_classified` in the course's chain)."""
        await self.ctx.db(self.store.get_institution, institution_id)
        await ensure_may_register(self.ctx, p, institution_id)
        if (occupation_code is None) != (skill_level is None):
            raise InvalidInput(
                "give both the occupation code and the skill level, or neither",
                reason="incomplete_classification",
            )
        if occupation_code is not None and skill_level is not None:
            check_classification(occupation_code, skill_level)
        course = await self.ctx.db(
            self.store.create_course, institution_id, name, required_hours, delivery_mode
        )
        if occupation_code is not None and skill_level is not None:
            records = RecordsService(self.ctx)
            await records.record_classification(p, course, occupation_code, skill_level)
        return course

    async def get_course(self, p: Principal, course_id: int) -> Course:
        course = await self.ctx.db(self.store.get_course, course_id)
        if p.role is Role.learner:
            learner = await self.ctx.db(self.store.get_learner, p.learner_id or -1)
            can_read_learner(p, learner.id, course.institution_id)
            if learner.institution_id != course.institution_id:
                can_read_institution(p, course.institution_id)
        else:
            can_read_institution(p, course.institution_id)
        return course

    async def list_courses(self, p: Principal, institution_id: int | None) -> list[Course]:
        if p.role is Role.operator:
            institution_id = p.institution_id
        elif p.role is Role.learner:
            learner = await self.ctx.db(self.store.get_learner, p.learner_id or -1)
            institution_id = learner.institution_id
        return await self.ctx.db(self.store.list_courses, institution_id)

    # -- learners ----------------------------------------------------------

    async def create_learner(
        self, p: Principal, institution_id: int, full_name: str, id_number: str
    ) -> Learner:
        await self.ctx.db(self.store.get_institution, institution_id)
        await ensure_may_register(self.ctx, p, institution_id)
        name = " ".join(full_name.split())
        if not name:
            raise InvalidInput("the full name is empty", reason="invalid_name")
        problem = id_number_problem(id_number, self.ctx.clock().date())
        if problem is not None:
            raise InvalidInput(f"resident ID number {problem}", reason="invalid_id_number")
        return await self.ctx.db(
            self.store.create_learner, institution_id, name, normalise_id_number(id_number)
        )

    async def get_learner(self, p: Principal, learner_id: int) -> Learner:
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_read_learner(p, learner.id, learner.institution_id)
        return learner

    async def list_learners(self, p: Principal, institution_id: int | None) -> list[Learner]:
        require_role(p, *READ_ALL, Role.operator)
        if p.role is Role.operator:
            institution_id = p.institution_id
        return await self.ctx.db(self.store.list_learners, institution_id)

    async def issue_learner_token(self, p: Principal, learner_id: int) -> tuple[Token, str]:
        """A learner's own credential, issued by the bureau to the person whose ID card it
        has checked: never by the institution, which could then act as its learners."""
        require_bureau(p)
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        return await self.ctx.db(
            self.store.create_token,
            Role.learner,
            f"learner {learner.id}",
            learner.institution_id,
            learner.id,
        )

    # -- consent -------------------------------------------------------------

    async def give_consent(
        self, p: Principal, learner_id: int, text_version: str, form_sha256: str | None = None
    ) -> Consent:
        """Consent given by the learner on their own page, or recorded by bureau staff
        from a form the learner signed in person (`form_sha256`: the scanned form's
        SHA-256, required then and only then)."""
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_act_for_learner_in_person(p, learner.id)
        in_person = p.role is not Role.learner
        if in_person and form_sha256 is None:
            raise InvalidInput(
                "consent recorded in person needs the SHA-256 of the signed form",
                reason="signed_form_required",
            )
        if not in_person and form_sha256 is not None:
            raise InvalidInput(
                "a learner gives consent on their own page, without a form",
                reason="form_not_expected",
            )
        current = self.ctx.settings.security.consent_text_version
        # Consent to a translation of the version in force (2026-11-v1-zh-CN) is consent
        # to that version; the ledger records the one read, which names its language.
        if base_version(text_version) != current:
            raise Conflict(
                f"consent was given to text version {text_version!r}; the current text is "
                f"{current!r}",
                reason="consent_version_outdated",
                current_version=current,
            )
        if await self.ctx.db(self.store.active_consent, learner.id) is not None:
            raise Conflict("biometric consent is already active", reason="consent_already_given")
        now = self.ctx.clock()
        consent = await self.ctx.db(self.store.record_consent, learner.id, text_version, now)
        await self.ctx.append(
            ev.learner_chain(learner.id),
            [
                codec.encode(
                    ev.ConsentGiven(learner.id, consent.id, text_version, p.actor, now, form_sha256)
                )
            ],
        )
        return consent

    async def active_consent(self, p: Principal, learner_id: int) -> Consent | None:
        learner = await self.get_learner(p, learner_id)
        return await self.ctx.db(self.store.active_consent, learner.id)

    async def withdraw_consent(self, p: Principal, learner_id: int) -> tuple[Consent, int]:
        """Withdraw consent and delete the templates; open sessions end (see SessionService).
        The learner, or bureau staff for a learner who asks in person."""
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_act_for_learner_in_person(p, learner.id)
        if await self.ctx.db(self.store.active_consent, learner.id) is None:
            raise Conflict("there is no active biometric consent", reason="no_consent")
        now = self.ctx.clock()
        # The enrolment photos go with the templates computed from them; check, roll-call
        # and flag frames stay until their retention (supervisor.registry.frames).
        storage = self.ctx.storage
        photos = await self.ctx.db(enrolment_photos_to_delete, storage, learner.id)
        consent, deleted = await self.ctx.db(self.store.withdraw_consent, learner.id, now)
        erased = await self.ctx.db(storage.evidence.erase, photos, now)
        event = ev.ConsentWithdrawn(learner.id, consent.id, deleted, p.actor, now, len(erased))
        await self.ctx.append(ev.learner_chain(learner.id), [codec.encode(event)])
        return consent, deleted

    # -- enrolment -------------------------------------------------------------

    async def enrol(self, p: Principal, learner_id: int, photo: bytes) -> Enrolment:
        """Add a face template from a photo that passes every quality gate.

        The face is first searched among all other learners' templates (1:N): a
        face already enrolled under another identity is refused and flagged. The learner
        enrols on their own page, or bureau staff take the photo in person: never the
        institution, which could enrol someone else's face for its learner.
        """
        learner = await self.ctx.db(self.store.get_learner, learner_id)
        can_act_for_learner_in_person(p, learner.id)
        if await self.ctx.db(self.store.active_consent, learner.id) is None:
            raise Conflict(
                "biometric consent must be given before a face is enrolled", reason="no_consent"
            )
        try:
            outcome = await self.ctx.pool.enrol(photo)
        except EnrolmentRejected as exc:
            raise CheckRefused(str(exc), reason=exc.verdict, issues=list(exc.issues)) from None
        except ImageError as exc:  # not an image, or too large: 415/413, nothing stored
            raise image_refusal(exc.reason, exc.message) from None
        vector = outcome.encoding.vector
        # Templates record the model that made them; duplicates are searched among the
        # same model's templates only (encodings of two models never meet).
        model = TemplateModel(outcome.model.engine, outcome.model.model_hash)
        others = [
            t
            for t in await self.ctx.db(self.ctx.storage.templates.all, model)
            if t.learner_id != learner.id
        ]
        if others:
            threshold = self.ctx.settings.face.engine_thresholds().duplicate_threshold
            matrix = as_matrix([t.vector for t in others])
            hits = await self.ctx.db(search, vector, matrix, 3, threshold, outcome.model.metric)
            if hits:
                other = others[hits[0].index]
                evidence = await self.ctx.db(
                    self.ctx.storage.evidence.put,
                    outcome.evidence_jpeg,
                    "image/jpeg",
                    self.ctx.retain_until(),
                )
                # The later enrolment is the suspect; the earlier learner is named, and
                # held up only if the bureau confirms against them too. An operator never
                # sees the other learner's id when it is another institution's.
                elsewhere = await self.ctx.db(self.store.get_learner, other.learner_id)
                cross = elsewhere.institution_id != learner.institution_id
                flag = await self.ctx.db(
                    raise_flag,
                    self.ctx.storage,
                    DUPLICATE_FLAG,
                    learner.institution_id,
                    learner.id,
                    [other.learner_id],
                    "the same face is already enrolled under another identity"
                    + (" at another institution: for the bureau" if cross else ""),
                    [
                        EvidenceRef(
                            None,
                            None,
                            None,
                            evidence.sha256,
                            {"distance": hits[0].distance, "threshold": threshold},
                        )
                    ],
                    self.ctx.clock(),
                    scores={"stage": "enrolment", "cross_institution": cross},
                )
                raise Conflict(
                    "this face is already enrolled under another identity; the bureau "
                    "has been alerted",
                    reason="duplicate_identity",
                    flag_id=flag.id,
                )
        evidence = await self.ctx.db(
            self.ctx.storage.evidence.put,
            outcome.evidence_jpeg,
            "image/jpeg",
            self.ctx.retain_until(),
        )
        template = await self.ctx.db(
            self.ctx.storage.templates.add, learner.id, vector, evidence.sha256, model
        )
        if outcome.signature is not None:
            # The photo posted again as a check or sign-in frame is refused as a replay.
            await self.ctx.db(
                self.ctx.storage.signatures.add,
                learner.id,
                evidence.sha256,
                "enrolment",
                outcome.signature,
                self.ctx.retain_until(),
            )
        width = outcome.encoding.box.width
        await self.ctx.append(
            ev.learner_chain(learner.id),
            [
                codec.encode(
                    ev.TemplateEnrolled(
                        learner.id, template.id, evidence.sha256, width, p.actor, self.ctx.clock()
                    )
                )
            ],
        )
        return Enrolment(template, evidence.sha256, width)

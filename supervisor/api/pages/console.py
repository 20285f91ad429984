"""The operator console: server-rendered pages (Jinja2, autoescaped, Chinese first) for
an institution's staff and for bureau staff. No inline script; the one small static
script (`console.js`) only adds conveniences.

Sign-in, the session and CSRF are `supervisor.api.pages.signin` (one place). Pages act
through the same services as the JSON API, so the same duties and scope rules apply:
- an institution's operator (or an admin): learners, roster import with its per-row
  report, classes and their rosters and cameras, the institution's flags with a
  statement, the live view;
- bureau staff and inspectors (and admins): institutions and their status, the
  catalogue with its subsidy standards, flags.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData, UploadFile

from storage import exceptions as se
from storage.types import (
    ClassMode,
    DeliveryMode,
    FlagStatus,
    InstitutionStatus,
    Role,
    SubsidyKind,
)
from supervisor.api.deps import get_ctx, get_registry
from supervisor.api.errors import STORAGE_ERRORS
from supervisor.api.pages.common import error_text, render
from supervisor.api.pages.signin import WorkspaceSignIn
from supervisor.api.routes.classes import get_classroom
from supervisor.api.routes.records import get_records
from supervisor.api.routes.roster import (
    ImportMode,
    import_out,
    read_roster_upload,
    run_import,
)
from supervisor.api.routes.subsidy import get_subsidy
from supervisor.api.speech import speech_of, translator_of
from supervisor.auth import READ_ALL, Principal
from supervisor.classroom.cameras import masked_url
from supervisor.classroom.service import CameraTest
from supervisor.errors import InvalidInput, ServiceError, UnknownId, WrongRole
from supervisor.i18n import N_

router = APIRouter(prefix="/console", include_in_schema=False)
SIGN_IN = WorkspaceSignIn("sv_console", "/console", "/console/login", "/console")
# Who does the institution's registration duties, and who reads for the bureau.
STAFF = (Role.operator, Role.admin)
BUREAU_SIDE = READ_ALL
STATEMENT_MAX = 4000

Page = Callable[[Request, Principal, dict[str, Any]], Awaitable[Response]]


def _error(
    request: Request, status: int, reason: str, message: str, base: dict[str, Any]
) -> Response:
    text = error_text(request, reason, message)
    return render(request, "console_error.html", status, reason=reason, message=text, **base)


async def _page(request: Request, body: Page, form: FormData | None = None) -> Response:
    """Sign-in, CSRF on forms, and domain errors shown as a page with their status."""
    try:
        found = await SIGN_IN.principal(request)
    except ServiceError as exc:  # the failed sign-in limit
        return _error(request, exc.status, exc.reason, exc.message, {})
    if found is None:
        return RedirectResponse(SIGN_IN.login_url, status_code=303)
    p, secret = found
    base: dict[str, Any] = {
        "me": p,
        "csrf": SIGN_IN.csrf(secret),
        "is_staff": p.role in STAFF,
        "is_bureau": p.role in BUREAU_SIDE,
    }
    try:
        if p.role is Role.learner:
            raise WrongRole("learners have no console")
        if form is not None:
            SIGN_IN.check_form(request, secret, form.get("csrf"))
        return await body(request, p, base)
    except ServiceError as exc:
        message = error_text(request, exc.reason, exc.message, **exc.details)
        return render(
            request, "console_error.html", exc.status, reason=exc.reason, message=message, **base
        )
    except se.StorageError as exc:
        for cls, status, reason in STORAGE_ERRORS:
            if isinstance(exc, cls) and status < 500:
                return _error(request, status, reason, str(exc), base)
        raise


def _int(value: object, what: str) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"{what} must be a positive number")
    return int(text)


def _institution(p: Principal, value: object) -> int | None:
    """The institution a page is about: an operator's own; for others, the one asked."""
    if p.role is Role.operator:
        return p.institution_id
    return _int(value, "institution")


def _require(p: Principal, roles: tuple[Role, ...], what: str) -> None:
    if p.role not in roles:
        raise WrongRole(f"{what} is not for the role {p.role.value}")


# -- sign-in ----------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "console_login.html", error="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    t = translator_of(request)
    secret = str(form.get("token", "")).strip()
    try:
        token = await SIGN_IN.resolve(request, secret)
    except ServiceError as exc:
        message = error_text(request, exc.reason, exc.message, **exc.details)
        return render(request, "console_login.html", exc.status, error=message)
    if token is None:
        error = t(N_("The token is unknown or revoked."))
        return render(request, "console_login.html", 401, error=error)
    if token.role is Role.learner:
        error = t(N_("Learners have no console; please use the learner's page."))
        return render(request, "console_login.html", 403, error=error)
    return await SIGN_IN.open(request, token)


@router.post("/logout")
async def logout(request: Request) -> Response:
    return await SIGN_IN.close(request)


@router.get("")
async def home(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        target = "/console/learners" if p.role in STAFF else "/console/institutions"
        return RedirectResponse(target, status_code=303)

    return await _page(request, body)


# -- learners and roster import ---------------------------------------------------------


@router.get("/learners")
async def learners_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        institution = _institution(p, request.query_params.get("institution_id"))
        rows = []
        if institution is not None:
            rows = await get_registry(request).list_learners(p, institution)
        groups = await get_records(request).groups_by_learner([lr.id for lr in rows])
        return render(
            request,
            "console_learners.html",
            learners=rows,
            groups=groups,
            institution=institution,
            **base,
        )

    return await _page(request, body)


async def _import_choices(
    request: Request, p: Principal, institution: int | None
) -> dict[str, Any]:
    if institution is None:
        return {"courses": [], "classes": []}
    courses = await get_registry(request).list_courses(p, institution)
    classes = await get_classroom(request).list_classes(p, institution, None)
    return {"courses": courses, "classes": classes}


@router.get("/import")
async def import_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        _require(p, STAFF, "roster import")
        institution = _institution(p, request.query_params.get("institution_id"))
        limits = get_ctx(request).settings.roster
        return render(
            request,
            "console_import.html",
            institution=institution,
            result=None,
            file_error="",
            limits=limits,
            chosen={"class_id": None, "course_id": None},
            **(await _import_choices(request, p, institution)),
            **base,
        )

    return await _page(request, body)


@router.post("/import")
async def import_post(request: Request) -> Response:
    form = await request.form(max_files=1, max_fields=20)

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        _require(p, STAFF, "roster import")
        institution = _institution(p, form.get("institution_id"))
        if institution is None:
            raise InvalidInput("choose the institution first")
        try:
            mode = ImportMode(str(form.get("mode", "check")))
        except ValueError:
            raise InvalidInput("unknown import mode") from None
        class_id = _int(form.get("class_id"), "class")
        course_id = _int(form.get("course_id"), "course")
        upload = form.get("file")
        t = translator_of(request)
        chosen = {"class_id": class_id, "course_id": course_id}
        context: dict[str, Any] = {
            "institution": institution,
            "limits": get_ctx(request).settings.roster,
            "chosen": chosen,
            **(await _import_choices(request, p, institution)),
            **base,
        }
        status = 200
        result: dict[str, Any] | None = None
        file_error = ""
        try:
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise InvalidInput("choose a file to upload", reason="roster_empty")
            data = await read_roster_upload(request, upload)  # type: ignore[arg-type]
            report, outcome = await run_import(
                request, p, institution, data, mode, class_id, course_id
            )
            result = import_out(report, outcome, mode, class_id, t, course_id).model_dump(
                mode="json"
            )
        except ServiceError as exc:
            status = exc.status
            if exc.reason == "roster_has_errors":
                result = exc.details["report"]
            file_error = error_text(request, exc.reason, exc.message, **exc.details)
        return render(
            request,
            "console_import.html",
            status,
            result=result,
            file_error=file_error,
            filename=getattr(upload, "filename", "") or "",
            **context,
        )

    try:
        return await _page(request, body, form)
    finally:
        await form.close()  # the upload's spooled file


# -- classes and rosters ----------------------------------------------------------------


@router.get("/classes")
async def classes_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        institution = _institution(p, request.query_params.get("institution_id"))
        classes = []
        courses = []
        if institution is not None:
            classes = await get_classroom(request).list_classes(p, institution, None)
            courses = [
                c
                for c in await get_registry(request).list_courses(p, institution)
                if c.delivery_mode is not DeliveryMode.online
            ]
        return render(
            request,
            "console_classes.html",
            classes=classes,
            courses=courses,
            institution=institution,
            **base,
        )

    return await _page(request, body)


def _local_time(request: Request, value: object, what: str) -> datetime:
    """A `datetime-local` field (`2026-12-07T09:00`) as a time in the display zone."""
    text = str(value or "").strip()
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} is not a date and time", reason="invalid_schedule") from None
    if naive.tzinfo is not None:
        raise InvalidInput(f"{what} is not a date and time", reason="invalid_schedule")
    return naive.replace(tzinfo=speech_of(request).clock.zone)


@router.post("/classes")
async def class_create(request: Request) -> Response:
    """A new class of a classroom or blended course (staff), its times in local time."""
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        _require(p, STAFF, "creating a class")
        course = _int(form.get("course_id"), "the course")
        if course is None:
            raise InvalidInput("choose a course")
        mode = str(form.get("mode", "training"))
        if mode not in ClassMode.__members__:
            raise InvalidInput("a class is for training or an assessment")
        made = await get_classroom(request).create_class(
            p,
            course,
            _text(form, "name", 200, "the class's name"),
            ClassMode(mode),
            _local_time(request, form.get("starts_at"), "the start"),
            _local_time(request, form.get("ends_at"), "the end"),
        )
        return RedirectResponse(f"/console/classes/{made.id}", status_code=303)

    return await _page(request, body, form)


async def _class_page(
    request: Request,
    p: Principal,
    base: dict[str, Any],
    class_id: int,
    camera_test: CameraTest | None = None,
) -> Response:
    classroom = get_classroom(request)
    cls = await classroom.get_class(p, class_id)
    roster = await classroom.roster(p, class_id)
    cameras = [(c, masked_url(c)) for c in await classroom.cameras(p, class_id)]
    try:
        filing = await classroom.filing(p, class_id)
    except UnknownId:
        filing = None
    on_roster = {e.learner_id for e, _ in roster}
    candidates = []
    if p.role in STAFF:
        everyone = await get_registry(request).list_learners(p, cls.institution_id)
        candidates = [lr for lr in everyone if lr.id not in on_roster]
    return render(
        request,
        "console_class.html",
        cls=cls,
        roster=roster,
        cameras=cameras,
        filing=filing,
        candidates=candidates,
        camera_test=camera_test,
        **base,
    )


@router.get("/classes/{class_id}")
async def class_page(request: Request, class_id: int) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        return await _class_page(request, p, base, class_id)

    return await _page(request, body)


@router.post("/classes/{class_id}/roster")
async def roster_add(request: Request, class_id: int) -> Response:
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        ids = [_int(v, "learner") for v in form.getlist("learner_id")]
        chosen = [i for i in ids if i is not None]
        if not chosen:
            raise InvalidInput("choose at least one learner")
        await get_classroom(request).add_to_roster(p, class_id, chosen)
        return RedirectResponse(f"/console/classes/{class_id}", status_code=303)

    return await _page(request, body, form)


@router.post("/classes/{class_id}/roster/{learner_id}/remove")
async def roster_remove(request: Request, class_id: int, learner_id: int) -> Response:
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        await get_classroom(request).remove_from_roster(p, class_id, learner_id)
        return RedirectResponse(f"/console/classes/{class_id}", status_code=303)

    return await _page(request, body, form)


def _text(form: FormData, name: str, limit: int, what: str) -> str:
    value = str(form.get(name, "")).strip()
    if not value:
        raise InvalidInput(f"{what} is required")
    if len(value) > limit:
        raise InvalidInput(f"{what} may be at most {limit} characters")
    return value


@router.post("/classes/{class_id}/filing")
async def class_filing(request: Request, class_id: int) -> Response:
    """File the class before training (a ledger event, as through the API)."""
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        await get_classroom(request).file(
            p,
            class_id,
            _text(form, "teacher", 200, "the teacher"),
            _text(form, "teaching_plan", 20_000, "the teaching plan"),
            _text(form, "assessment_plan", 20_000, "the assessment plan"),
        )
        return RedirectResponse(f"/console/classes/{class_id}", status_code=303)

    return await _page(request, body, form)


@router.post("/classes/{class_id}/cameras")
async def class_camera(request: Request, class_id: int) -> Response:
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        await get_classroom(request).add_camera(
            p,
            class_id,
            _text(form, "url", 2000, "the camera's address"),
            str(form.get("label", "")).strip()[:200],
        )
        return RedirectResponse(f"/console/classes/{class_id}", status_code=303)

    return await _page(request, body, form)


@router.post("/classes/{class_id}/cameras/{camera_id}/test")
async def class_camera_test(request: Request, class_id: int, camera_id: int) -> Response:
    """The test-connection button: the class page again, with the camera's answer."""
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        tested = await get_classroom(request).test_camera(p, class_id, camera_id)
        return await _class_page(request, p, base, class_id, tested)

    return await _page(request, body, form)


# -- courses: enrolments and assessment results ---------------------------------------------


@router.get("/courses")
async def courses_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        institution = _institution(p, request.query_params.get("institution_id"))
        courses = []
        if institution is not None:
            courses = await get_registry(request).list_courses(p, institution)
        classified = await get_records(request).classifications()
        return render(
            request,
            "console_courses.html",
            courses=courses,
            classified=classified,
            institution=institution,
            **base,
        )

    return await _page(request, body)


@router.get("/courses/{course_id}")
async def course_page(request: Request, course_id: int) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        subsidy = get_subsidy(request)
        course = await get_registry(request).get_course(p, course_id)
        enrolments = await subsidy.enrolments(p, course_id)
        results = await subsidy.assessments(p, course_id)
        everyone = await get_registry(request).list_learners(p, course.institution_id)
        names = {lr.id: lr for lr in everyone}
        return render(
            request,
            "console_course.html",
            course=course,
            enrolments=enrolments,
            results=results,
            names=names,
            **base,
        )

    return await _page(request, body)


@router.post("/courses/{course_id}/assessments")
async def course_assessment(request: Request, course_id: int) -> Response:
    """Record an assessment result (a ledger event, as through the API)."""
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        learner = _int(form.get("learner_id"), "learner")
        if learner is None:
            raise InvalidInput("choose the learner")
        outcome = str(form.get("passed", ""))
        if outcome not in ("yes", "no"):
            raise InvalidInput("say whether the learner passed")
        raw = str(form.get("score", "")).strip()
        try:
            score = float(raw) if raw else None
        except ValueError:
            raise InvalidInput("the score must be a number") from None
        if score is not None and not 0 <= score <= 1000:
            raise InvalidInput("the score must be between 0 and 1000")
        await get_subsidy(request).record_assessment(
            p, course_id, learner, outcome == "yes", score, None
        )
        return RedirectResponse(f"/console/courses/{course_id}", status_code=303)

    return await _page(request, body, form)


# -- the catalogue: subsidy standards (the bureau) -------------------------------------------


@router.get("/catalogue/{course_id}")
async def standard_page(request: Request, course_id: int) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        course, rules = await get_subsidy(request).rules(p, course_id)
        may_set = p.role in (Role.admin, Role.bureau)
        return render(
            request, "console_standard.html", course=course, rules=rules, may_set=may_set, **base
        )

    return await _page(request, body)


def _amount(form: FormData, name: str, what: str, required: bool) -> float | None:
    raw = str(form.get(name, "")).strip()
    if not raw:
        if required:
            raise InvalidInput(f"{what} is required")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{what} must be a number") from None
    if not 0 <= value <= 1_000_000:
        raise InvalidInput(f"{what} must be between 0 and 1000000")
    return value


@router.post("/catalogue/{course_id}")
async def standard_set(request: Request, course_id: int) -> Response:
    """Set a draft's occupation, level and subsidy standard; or publish or withdraw it
    (`action`). The bureau's duty; publishing goes into the course's ledger chain."""
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        subsidy = get_subsidy(request)
        action = str(form.get("action", ""))
        if action == "publish":
            await subsidy.publish(p, course_id)
        elif action == "withdraw":
            await subsidy.withdraw(p, course_id)
        elif action == "set":
            try:
                kind = SubsidyKind(str(form.get("subsidy_kind", "")))
            except ValueError:
                raise InvalidInput("unknown kind of subsidy") from None
            level = _int(form.get("skill_level"), "the skill level")
            if level is None or level > 5:
                raise InvalidInput("the skill level is 1 to 5")
            amount = _amount(form, "subsidy_amount", "the subsidy", True)
            assert amount is not None
            await subsidy.set_rules(
                p,
                course_id,
                _text(form, "occupation", 200, "the occupation"),
                level,
                kind,
                amount,
                _amount(form, "subsidy_cap", "the cap", False),
                None,
                None,
            )
        else:
            raise InvalidInput("unknown action")
        return RedirectResponse(f"/console/catalogue/{course_id}", status_code=303)

    return await _page(request, body, form)


# -- flags --------------------------------------------------------------------------------


@router.get("/flags")
async def flags_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        raw = request.query_params.get("status", "open")
        if raw not in ("all", *(s.value for s in FlagStatus)):
            raise InvalidInput("unknown flag status")
        status = None if raw == "all" else FlagStatus(raw)
        institution = _institution(p, request.query_params.get("institution_id"))
        flags = await get_subsidy(request).list_flags(p, status, None, institution, None)
        return render(
            request, "console_flags.html", flags=flags, shown=raw, institution=institution, **base
        )

    return await _page(request, body)


@router.get("/flags/{flag_id}")
async def flag_page(request: Request, flag_id: int) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        detail = await get_subsidy(request).flag(p, flag_id)
        may_state = p.role in (Role.operator, Role.admin, Role.bureau)
        return render(request, "console_flag.html", d=detail, may_state=may_state, **base)

    return await _page(request, body)


@router.post("/flags/{flag_id}/statement")
async def flag_statement(request: Request, flag_id: int) -> Response:
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        text = str(form.get("statement", ""))
        if len(text) > STATEMENT_MAX:
            raise InvalidInput(f"a statement may be at most {STATEMENT_MAX} characters")
        await get_subsidy(request).add_statement(p, flag_id, text)
        return RedirectResponse(f"/console/flags/{flag_id}", status_code=303)

    return await _page(request, body, form)


# -- the bureau's side ----------------------------------------------------------------------


@router.get("/institutions")
async def institutions_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        found = await get_registry(request).list_institutions(p)
        may_change = p.role in (Role.admin, Role.bureau)
        profiles = await get_records(request).profiles(p)
        return render(
            request,
            "console_institutions.html",
            institutions=found,
            profiles=profiles,
            may_change=may_change,
            **base,
        )

    return await _page(request, body)


def _day(request: Request, value: str, what: str) -> datetime | None:
    """A day typed on a page, as its start in the display zone (`web.timezone`)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, time(), tzinfo=speech_of(request).clock.zone)


@router.get("/claims")
async def claims_page(request: Request) -> Response:
    """Subsidy claims of a period, from the ledger (the bureau; an operator sees its own)."""

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        qp = request.query_params
        institution = _institution(p, qp.get("institution_id"))
        start = _day(request, qp.get("date_from", ""), "from")
        end = _day(request, qp.get("date_to", ""), "to")
        rows = None
        if start is not None and end is not None:
            rows = await get_subsidy(request).claims(p, institution, start, end + timedelta(days=1))
        total = sum(r.eligibility.amount for r in rows or ())
        return render(
            request,
            "console_claims.html",
            rows=rows,
            total=total,
            institution=institution,
            f={"date_from": qp.get("date_from", ""), "date_to": qp.get("date_to", "")},
            **base,
        )

    return await _page(request, body)


@router.post("/institutions/status")
async def institution_status(request: Request) -> Response:
    """Suspend, expel or reinstate (the bureau), with a reason: a ledger event."""
    form = await request.form()

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        try:
            status = InstitutionStatus(str(form.get("status", "")))
        except ValueError:
            raise InvalidInput("unknown institution status") from None
        reason = _text(form, "reason", 2000, "the reason")
        institution = _int(form.get("institution_id"), "institution")
        if institution is None:
            raise InvalidInput("choose the institution")
        await get_subsidy(request).change_status(p, institution, status, reason, None)
        return RedirectResponse("/console/institutions", status_code=303)

    return await _page(request, body, form)


@router.get("/catalogue")
async def catalogue_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        institution = _institution(p, request.query_params.get("institution_id"))
        entries = await get_subsidy(request).catalogue(p, institution)
        names = {i.id: i.name for i in await get_registry(request).list_institutions(p)}
        return render(
            request,
            "console_catalogue.html",
            entries=entries,
            names=names,
            institution=institution,
            **base,
        )

    return await _page(request, body)

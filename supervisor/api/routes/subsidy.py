"""The catalogue, institution status, eligibility, claims, the monthly report and
fraud flags (`/api/v1/...`). The expelled list is public (no token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from storage.types import FlagStatus, InstitutionStatus
from supervisor.api.deps import PrincipalDep
from supervisor.api.errors import ErrorBody
from supervisor.api.schemas.common import checked_time
from supervisor.api.schemas.subsidy import (
    AssessmentIn,
    AssessmentOut,
    CatalogueEntryOut,
    CreditCodeIn,
    DecisionIn,
    DecisionOut,
    EligibilityOut,
    EnrolIn,
    EnrolmentOut,
    EvidenceOut,
    FlagDetailOut,
    FlagOut,
    InstitutionRecordOut,
    PublicCatalogueOut,
    PublicInstitutionOut,
    RulesIn,
    StatementIn,
    StatementOut,
    StatusIn,
)
from supervisor.api.speech import LanguageDep, speech_of
from supervisor.errors import InvalidInput
from supervisor.i18n import Language, Speech
from supervisor.subsidy.exports import XLSX_MEDIA_TYPE, Writer, claims_table, report_tables
from supervisor.subsidy.report import report_csp, report_html
from supervisor.subsidy.service import FlagDetail, SubsidyService

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def get_subsidy(request: Request) -> SubsidyService:
    service: SubsidyService = request.app.state.subsidy
    return service


SubsidyDep = Annotated[SubsidyService, Depends(get_subsidy)]
SpeechDep = Annotated[Speech, Depends(speech_of)]
Format = Literal["json", "csv", "xlsx"]


def _writer(speech: Speech, language: Language) -> Writer:
    return Writer(speech.translator(language), speech.clock)


def _file(data: str | bytes, media_type: str, name: str) -> Response:
    """An export as a download (the client's language and zone are in its headers)."""
    return Response(
        data.encode("utf-8") if isinstance(data, str) else data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- institutions -----------------------------------------------------------------------


@router.get(
    "/public/expelled-institutions",
    response_model=list[PublicInstitutionOut],
    tags=["public"],
)
async def expelled_institutions(svc: SubsidyDep) -> list[PublicInstitutionOut]:
    """Institutions expelled from the scheme, with reason and date (public, no token;
    also a page at `/public/expelled`)."""
    found = await svc.public_list(InstitutionStatus.expelled)
    return [PublicInstitutionOut.of(i, r) for i, r in found]


@router.get("/public/catalogue", response_model=PublicCatalogueOut, tags=["public"])
async def public_catalogue(
    svc: SubsidyDep,
    q: Annotated[
        str, Query(max_length=100, description="Text in a course, occupation or institution.")
    ] = "",
    status: InstitutionStatus | None = None,
) -> PublicCatalogueOut:
    """The published catalogue (public, no token): institutions with their status and
    the courses whose rules are published; also a page at `/public/catalogue`."""
    institutions, courses = await svc.public_catalogue(q, status)
    return PublicCatalogueOut.of(institutions, courses)


@router.get(
    "/institutions/{institution_id}/record",
    response_model=InstitutionRecordOut,
    tags=["institutions"],
)
async def institution_record(
    institution_id: int, p: PrincipalDep, svc: SubsidyDep
) -> InstitutionRecordOut:
    return InstitutionRecordOut.of(await svc.institution_record(p, institution_id))


@router.put(
    "/institutions/{institution_id}/credit-code",
    response_model=InstitutionRecordOut,
    tags=["institutions"],
)
async def set_credit_code(
    institution_id: int, body: CreditCodeIn, p: PrincipalDep, svc: SubsidyDep
) -> InstitutionRecordOut:
    """Record or correct the unified social credit code (the bureau; validated with its check
    character). A correction needs a `reason`; both are ledger events."""
    record = await svc.set_credit_code(p, institution_id, body.credit_code, body.reason)
    return InstitutionRecordOut.of(record)


@router.post(
    "/institutions/{institution_id}/status",
    response_model=InstitutionRecordOut,
    tags=["institutions"],
)
async def change_status(
    institution_id: int, body: StatusIn, p: PrincipalDep, svc: SubsidyDep
) -> InstitutionRecordOut:
    """Suspend, expel (with reason and date) or reinstate (admin or inspector)."""
    record = await svc.change_status(p, institution_id, body.status, body.reason, body.effective_at)
    return InstitutionRecordOut.of(record)


# -- the catalogue, enrolment and assessment -----------------------------------------------


@router.get("/catalogue", response_model=list[CatalogueEntryOut], tags=["catalogue"])
async def catalogue(
    p: PrincipalDep, svc: SubsidyDep, institution_id: Annotated[int | None, Query(ge=1)] = None
) -> list[CatalogueEntryOut]:
    """Courses with their rules (learners see published ones of their institution)."""
    return [CatalogueEntryOut.of(c, r) for c, r in await svc.catalogue(p, institution_id)]


@router.get("/courses/{course_id}/rules", response_model=CatalogueEntryOut, tags=["catalogue"])
async def get_rules(course_id: int, p: PrincipalDep, svc: SubsidyDep) -> CatalogueEntryOut:
    course, rules = await svc.rules(p, course_id)
    return CatalogueEntryOut.of(course, rules)


@router.put("/courses/{course_id}/rules", response_model=CatalogueEntryOut, tags=["catalogue"])
async def set_rules(
    course_id: int, body: RulesIn, p: PrincipalDep, svc: SubsidyDep
) -> CatalogueEntryOut:
    """Set a draft's occupation, skill level, subsidy standard and validity (frozen once
    published)."""
    await svc.set_rules(
        p,
        course_id,
        body.occupation,
        body.skill_level,
        body.subsidy_kind,
        body.subsidy_amount,
        body.subsidy_cap,
        body.valid_from,
        body.valid_until,
    )
    course, rules = await svc.rules(p, course_id)
    return CatalogueEntryOut.of(course, rules)


@router.post("/courses/{course_id}/publish", response_model=CatalogueEntryOut, tags=["catalogue"])
async def publish(course_id: int, p: PrincipalDep, svc: SubsidyDep) -> CatalogueEntryOut:
    """Publish the rules: they go into the course's ledger chain and are frozen."""
    await svc.publish(p, course_id)
    course, rules = await svc.rules(p, course_id)
    return CatalogueEntryOut.of(course, rules)


@router.post("/courses/{course_id}/withdraw", response_model=CatalogueEntryOut, tags=["catalogue"])
async def withdraw(course_id: int, p: PrincipalDep, svc: SubsidyDep) -> CatalogueEntryOut:
    await svc.withdraw(p, course_id)
    course, rules = await svc.rules(p, course_id)
    return CatalogueEntryOut.of(course, rules)


@router.post(
    "/courses/{course_id}/enrolments",
    response_model=list[EnrolmentOut],
    status_code=status.HTTP_201_CREATED,
    tags=["catalogue"],
)
async def enrol(
    course_id: int, body: EnrolIn, p: PrincipalDep, svc: SubsidyDep
) -> list[EnrolmentOut]:
    """Enrol learners of the course's institution (all or none)."""
    return [EnrolmentOut.of(e) for e in await svc.enrol(p, course_id, body.learner_ids)]


@router.get(
    "/courses/{course_id}/enrolments", response_model=list[EnrolmentOut], tags=["catalogue"]
)
async def enrolments(course_id: int, p: PrincipalDep, svc: SubsidyDep) -> list[EnrolmentOut]:
    return [EnrolmentOut.of(e) for e in await svc.enrolments(p, course_id)]


@router.post(
    "/courses/{course_id}/assessments",
    response_model=AssessmentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["catalogue"],
)
async def record_assessment(
    course_id: int, body: AssessmentIn, p: PrincipalDep, svc: SubsidyDep
) -> AssessmentOut:
    """Enter an assessment result (an operator of the institution; a correction is a new one)."""
    result = await svc.record_assessment(
        p, course_id, body.learner_id, body.passed, body.score, body.assessed_at
    )
    return AssessmentOut.of(result)


@router.get(
    "/courses/{course_id}/assessments", response_model=list[AssessmentOut], tags=["catalogue"]
)
async def assessments(course_id: int, p: PrincipalDep, svc: SubsidyDep) -> list[AssessmentOut]:
    return [AssessmentOut.of(a) for a in await svc.assessments(p, course_id)]


# -- eligibility, claims, report -------------------------------------------------------------

RECOMPUTE = (
    "Fold every chain from its events instead of reading the stored chain summaries "
    "(admins and inspectors; an independent recomputation, as slow as a first scan)."
)


@router.get(
    "/learners/{learner_id}/eligibility/{course_id}",
    response_model=EligibilityOut,
    tags=["subsidy"],
)
async def eligibility(
    learner_id: int, course_id: int, p: PrincipalDep, svc: SubsidyDep
) -> EligibilityOut:
    """Eligible with the amount, or every reason not; recomputed from the ledger."""
    return EligibilityOut.of(await svc.eligibility(p, learner_id, course_id))


@router.get(
    "/claims",
    tags=["subsidy"],
    response_model=None,
    responses={
        200: {
            "description": "The claims as JSON (a list of rows), CSV (`format=csv`: UTF-8 "
            "with a byte-order mark, headers in the request's language) or a spreadsheet "
            "(`format=xlsx`, with totals).",
            "content": {"application/json": {}, "text/csv": {}, XLSX_MEDIA_TYPE: {}},
        }
    },
)
async def claim_list(
    p: PrincipalDep,
    svc: SubsidyDep,
    speech: SpeechDep,
    language: LanguageDep,
    start: Annotated[datetime, Query(alias="from", description="Period start (aware).")],
    end: Annotated[datetime, Query(alias="until", description="Period end, exclusive.")],
    institution_id: Annotated[int | None, Query(ge=1)] = None,
    format: Format = "json",
    recompute: Annotated[bool, Query(description=RECOMPUTE)] = False,
) -> Response:
    """Claims of a period: learners whose assessment was taken in it, eligible or not,
    each with the chains its hours come from. JSON, CSV or xlsx."""
    start = checked_time(start, "from")
    end = checked_time(end, "until")
    rows = await svc.claims(p, institution_id, start, end, recompute)
    if format in ("csv", "xlsx"):
        writer = _writer(speech, language)
        table = claims_table(rows, writer.t)
        name = f"claims-{speech.clock.date(start)}"
        if format == "csv":
            return _file(writer.csv(table), "text/csv; charset=utf-8", f"{name}.csv")
        return _file(writer.xlsx([table]), XLSX_MEDIA_TYPE, f"{name}.xlsx")
    import json

    return Response(
        json.dumps([r.as_dict() for r in rows], ensure_ascii=False),
        media_type="application/json",
    )


@router.get(
    "/reports/monthly",
    tags=["subsidy"],
    response_model=None,
    responses={
        200: {
            "description": "The report as JSON, CSV (`format=csv`), a spreadsheet "
            "(`format=xlsx`) or an HTML page (`format=html`); the files and the page in the "
            "request's language, times in `web.timezone`.",
            "content": {
                "application/json": {},
                "text/csv": {},
                XLSX_MEDIA_TYPE: {},
                "text/html": {},
            },
        }
    },
)
async def monthly(
    p: PrincipalDep,
    svc: SubsidyDep,
    speech: SpeechDep,
    language: LanguageDep,
    month: Annotated[str, Query(description="YYYY-MM in `subsidy.timezone`.")],
    institution_id: Annotated[int | None, Query(ge=1)] = None,
    format: Literal["json", "csv", "xlsx", "html"] = "json",
    recompute: Annotated[bool, Query(description=RECOMPUTE)] = False,
) -> Response:
    """Per institution and course: learners, sessions, credited hours, checks and pass
    rates, flags by kind and status, eligible learners and subsidy total."""
    report = await svc.report(p, month, institution_id, recompute)
    writer = _writer(speech, language)
    if format == "csv":
        csv_text = writer.csv(report_tables(report, writer.t, speech.clock)[0])
        return _file(csv_text, "text/csv; charset=utf-8", f"monthly-report-{month}.csv")
    if format == "xlsx":
        data = writer.xlsx(report_tables(report, writer.t, speech.clock))
        return _file(data, XLSX_MEDIA_TYPE, f"monthly-report-{month}.xlsx")
    if format == "html":
        return HTMLResponse(
            report_html(report, speech, language),
            headers={"Content-Security-Policy": report_csp()},
        )
    import json

    return Response(json.dumps(report, ensure_ascii=False), media_type="application/json")


# -- flags -------------------------------------------------------------------------------


def _detail(d: FlagDetail) -> FlagDetailOut:
    base = FlagOut.of(d.view)
    ref = (
        EvidenceOut(
            chain_id=d.raised_ref[0],
            seq=d.raised_ref[1],
            hash=d.raised_ref[2],
            evidence_sha256=None,
            scores={},
        )
        if d.raised_ref
        else None
    )
    return FlagDetailOut(
        **base.model_dump(),
        raised_event=ref,
        decisions=[DecisionOut.of(x) for x in d.decisions],
        statements=[
            StatementOut(statement=s.statement, made_by=s.made_by, at=s.at) for s in d.statements
        ],
    )


@router.get("/flags", response_model=list[FlagOut], tags=["flags"])
async def list_flags(
    p: PrincipalDep,
    svc: SubsidyDep,
    status: FlagStatus | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    institution_id: Annotated[int | None, Query(ge=1)] = None,
    learner_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[FlagOut]:
    """Fraud flags (operator: own institution; inspector, admin: all; learner: 403)."""
    found = await svc.list_flags(p, status, kind, institution_id, learner_id)
    return [FlagOut.of(v) for v in found]


@router.get("/flags/{flag_id}", response_model=FlagDetailOut, tags=["flags"])
async def get_flag(flag_id: int, p: PrincipalDep, svc: SubsidyDep) -> FlagDetailOut:
    return _detail(await svc.flag(p, flag_id))


@router.post("/flags/{flag_id}/decision", response_model=FlagDetailOut, tags=["flags"])
async def decide_flag(
    flag_id: int, body: DecisionIn, p: PrincipalDep, svc: SubsidyDep
) -> FlagDetailOut:
    """Confirm or dismiss (bureau, inspector, admin; never the institution the flag is
    about: 403 `wrong_role`). Appended to the flag's ledger chain; deciding again is a new
    event that supersedes the earlier one. A confirmation holds against the flagged
    learner, and against the other learners it names only if `against` lists them."""
    decided = await svc.decide(p, flag_id, FlagStatus(body.status), body.note, body.against)
    return _detail(decided)


@router.post("/flags/{flag_id}/statements", response_model=FlagDetailOut, tags=["flags"])
async def add_statement(
    flag_id: int, body: StatementIn, p: PrincipalDep, svc: SubsidyDep
) -> FlagDetailOut:
    """The institution's statement on a flag about its learner (its operator). Recorded in
    the flag's ledger chain; it decides nothing."""
    return _detail(await svc.add_statement(p, flag_id, body.statement))


@router.post("/fraud/scan", response_model=list[FlagOut], tags=["flags"])
async def fraud_scan(
    p: PrincipalDep,
    svc: SubsidyDep,
    month: Annotated[str | None, Query(description="YYYY-MM; default: all.")] = None,
) -> list[FlagOut]:
    """Look for fraud signals in the ledger and raise the new ones (admin, inspector)."""
    from supervisor.rules.flags import view
    from supervisor.rules.months import month_bounds

    if month is not None:
        try:
            month_bounds(month, svc.ctx.settings.subsidy.timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc), reason="invalid_month") from None
    return [FlagOut.of(view(f)) for f in await svc.scan_fraud(p, month)]

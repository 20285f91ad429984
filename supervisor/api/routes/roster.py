"""Roster import: an institution's learners from an .xlsx or .csv file, with a per-row
validation report (see `supervisor.registry.roster_import`).

`run_import` is the one sequence used by the API route and by the operator console's
page: validate the file, check the class (when the learners are to go on its roster)
before anyone is registered, register, then put them on the roster.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from supervisor.api.deps import PrincipalDep, get_ctx, get_registry
from supervisor.api.errors import ERRORS
from supervisor.api.routes.classes import get_classroom
from supervisor.api.routes.subsidy import get_subsidy
from supervisor.api.speech import translator_of
from supervisor.auth import Principal
from supervisor.errors import InvalidInput, PayloadTooLarge
from supervisor.i18n import Translator
from supervisor.registry.identity import mask_id_number
from supervisor.registry.roster_import import (
    PROBLEMS,
    ImportOutcome,
    RosterImport,
    RosterReport,
    RosterRow,
    RowStatus,
)

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["learners"])


class ImportMode(StrEnum):
    check = "check"  # the report only; nothing registered
    all = "all"  # register every learner, only if no row has a problem
    clean_only = "clean_only"  # register the learners of the clean rows; skip the others


class RowProblemOut(BaseModel):
    column: str = Field(description="name, id_number or phone")
    code: str = Field(description="Stable English code of the problem.")
    message: str = Field(description="The problem for a person, in the request's language.")
    other_row: int | None = Field(None, description="duplicate_in_file: the earlier row.")


class RosterRowOut(BaseModel):
    row: int = Field(description="Row number as the spreadsheet shows it (header included).")
    status: RowStatus = Field(
        description="new: would be (or was) registered; existing: already registered at "
        "this institution; error: see problems."
    )
    full_name: str
    id_number_masked: str = Field(description="The ID number with its middle masked.")
    phone_masked: str = ""
    learner_id: int | None = Field(
        None, description="The learner registered now, or registered before (existing)."
    )
    problems: list[RowProblemOut] = []


class RosterImportOut(BaseModel):
    institution_id: int
    file_format: str = Field(description="xlsx or csv")
    encoding: str = Field(description="Of a CSV file: utf-8 or gb18030.")
    mode: ImportMode
    imported: bool = Field(description="Whether learners were registered by this request.")
    class_id: int | None = None
    course_id: int | None = None
    rows: int
    new: int
    existing: int
    errors: int
    registered: list[int] = Field(description="Learner ids registered by this request.")
    ignored_columns: list[str]
    report: list[RosterRowOut]


def _phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else ""


def row_out(row: RosterRow, t: Translator, learner_id: int | None) -> RosterRowOut:
    return RosterRowOut(
        row=row.row,
        status=row.status,
        full_name=row.name,
        id_number_masked=mask_id_number(row.id_number) if row.id_number else "",
        phone_masked=_phone(row.phone),
        learner_id=learner_id if learner_id is not None else row.existing_learner_id,
        problems=[
            RowProblemOut(
                column=str(pr.column),
                code=pr.code,
                message=t(PROBLEMS[pr.code], row=pr.other_row or ""),
                other_row=pr.other_row,
            )
            for pr in row.problems
        ],
    )


def import_out(
    report: RosterReport,
    outcome: ImportOutcome | None,
    mode: ImportMode,
    class_id: int | None,
    t: Translator,
    course_id: int | None = None,
) -> RosterImportOut:
    created = dict((n, lr.id) for n, lr in outcome.created) if outcome else {}
    return RosterImportOut(
        institution_id=report.institution_id,
        file_format=report.file_format,
        encoding=report.encoding,
        mode=mode,
        imported=outcome is not None,
        class_id=class_id,
        course_id=course_id,
        rows=len(report.rows),
        new=report.count(RowStatus.new),
        existing=report.count(RowStatus.existing),
        errors=report.count(RowStatus.error),
        registered=list(created.values()),
        ignored_columns=list(report.ignored_columns),
        report=[row_out(r, t, created.get(r.row)) for r in report.rows],
    )


async def read_roster_upload(request: Request, upload: UploadFile) -> bytes:
    limit = get_ctx(request).settings.roster.max_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"a roster file may be at most {limit} bytes",
            reason="roster_file_too_large",
            limit_bytes=limit,
        )
    return data


async def run_import(
    request: Request,
    p: Principal,
    institution_id: int,
    data: bytes,
    mode: ImportMode,
    class_id: int | None,
    course_id: int | None = None,
) -> tuple[RosterReport, ImportOutcome | None]:
    """Validate; check the class and the course; register (unless `mode` is check);
    enrol on the course (a ledger event per learner); put on the class's roster.

    Raises `roster_has_errors` (422, with the report) in mode `all` when a row has a
    problem: nothing is registered then."""
    importer = RosterImport(get_ctx(request), get_registry(request))
    report = await importer.check(p, institution_id, data)
    classroom = get_classroom(request)
    if class_id is not None:
        cls = await classroom.get_class(p, class_id)
        if cls.institution_id != institution_id:
            raise InvalidInput(
                "the class belongs to another institution than the learners",
                reason="class_other_institution",
            )
        registered = [
            r.existing_learner_id
            for r in report.rows
            if r.existing_learner_id is not None and r.status is RowStatus.existing
        ]
        await classroom.roster_room(p, class_id, registered, report.count(RowStatus.new))
    subsidy = get_subsidy(request)
    if course_id is not None:
        course = await get_registry(request).get_course(p, course_id)
        if course.institution_id != institution_id:
            raise InvalidInput(
                "the course belongs to another institution than the learners",
                reason="course_other_institution",
            )
    if mode is ImportMode.check:
        return report, None
    if mode is ImportMode.all and not report.clean:
        t = translator_of(request)
        body = import_out(report, None, mode, class_id, t, course_id)
        raise InvalidInput(
            f"{body.errors} rows of the file have problems; nothing was imported. "
            "Correct them, or import only the clean rows",
            reason="roster_has_errors",
            errors=body.errors,
            report=body.model_dump(mode="json"),
        )
    outcome = await importer.commit(p, report, only_clean=mode is ImportMode.clean_only)
    if course_id is not None and outcome.learner_ids:
        enrolled = {e.learner_id for e in await subsidy.enrolments(p, course_id)}
        joining = [i for i in outcome.learner_ids if i not in enrolled]
        if joining:
            await subsidy.enrol(p, course_id, joining)
    if class_id is not None and outcome.learner_ids:
        on_roster = {e.learner_id for e, _ in await classroom.roster(p, class_id)}
        adding = [i for i in outcome.learner_ids if i not in on_roster]
        if adding:
            await classroom.add_to_roster(p, class_id, adding)
    return report, outcome


@router.post(
    "/institutions/{institution_id}/roster-import",
    response_model=RosterImportOut,
    responses={
        201: {"model": RosterImportOut, "description": "Learners registered."},
        413: {"description": "The file is larger than `roster.max_bytes`."},
        415: {"description": "The file is not an .xlsx or .csv spreadsheet."},
    },
)
async def import_roster(
    institution_id: int,
    request: Request,
    p: PrincipalDep,
    file: Annotated[
        UploadFile,
        File(
            description=".xlsx or .csv (UTF-8 with or without BOM, or GBK); the first row "
            "names the columns 姓名/name and 身份证号/id_number, optionally 手机号/phone."
        ),
    ],
    mode: Annotated[ImportMode, Form()] = ImportMode.all,
    class_id: Annotated[int | None, Form(ge=1)] = None,
    course_id: Annotated[int | None, Form(ge=1)] = None,
) -> JSONResponse:
    """Import learners from a spreadsheet (admin, or the institution's operator).

    Every row is validated first: the ID number's check character, an ID number Excel
    stored as a number or in scientific notation, formulas, missing names, ID numbers
    twice in the file or already registered. `mode=check` returns the report only;
    `mode=all` (the default) registers every new learner, or nobody (422
    `roster_has_errors`, with the report) when a row has a problem; `mode=clean_only`
    registers the clean rows and reports the others. Learners already registered at
    the institution are not registered again. With `course_id`, the learners of the
    clean rows are enrolled on that course (a ledger event each); with `class_id`, they
    are put on that class's roster. A file that cannot be read as a
    whole is refused (413 `roster_file_too_large`, 415 `roster_not_a_spreadsheet`,
    422 `roster_empty`, `roster_too_many_rows`, `roster_missing_column`) and
    registers nobody."""
    data = await read_roster_upload(request, file)
    report, outcome = await run_import(request, p, institution_id, data, mode, class_id, course_id)
    body = import_out(report, outcome, mode, class_id, translator_of(request), course_id)
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if outcome else 200)

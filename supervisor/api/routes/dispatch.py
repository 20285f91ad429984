"""The monthly dispatch report (`/api/v1/reports/dispatch`): bureau staff, inspectors and
admins only (an institution's operator is the supervised party: 403 `wrong_role`)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from supervisor.api.deps import PrincipalDep
from supervisor.api.errors import ErrorBody
from supervisor.api.schemas.common import In
from supervisor.api.speech import LanguageDep, speech_of
from supervisor.i18n import Speech
from supervisor.subsidy.dispatch import DispatchService, Served
from supervisor.subsidy.dispatch_view import dispatch_csp, dispatch_html, dispatch_tables
from supervisor.subsidy.exports import XLSX_MEDIA_TYPE, Writer

router = APIRouter(
    prefix="/api/v1",
    responses={code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)},
)

PERIOD = "`YYYY-MM` (a month), `YYYY-Qn` (a quarter) or `YYYY` (a year), in `subsidy.timezone`."
REGION = (
    "A six-digit GB/T 2260 code at province (`110000`), city (`110100`) or county (`110105`) "
    "level; none: the whole country."
)


def get_dispatch(request: Request) -> DispatchService:
    service: DispatchService = request.app.state.dispatch
    return service


DispatchDep = Annotated[DispatchService, Depends(get_dispatch)]
SpeechDep = Annotated[Speech, Depends(speech_of)]


class CloseIn(In):
    period: str = Field(max_length=16, description=PERIOD)
    region: str | None = Field(None, max_length=16, description=REGION)


class CorrectIn(CloseIn):
    reason: str = Field(min_length=1, max_length=2000, description="Why the report is corrected.")


def _json(served: Served) -> Response:
    return Response(json.dumps(served.as_dict(), ensure_ascii=False), media_type="application/json")


@router.get(
    "/reports/dispatch",
    tags=["reports"],
    response_model=None,
    responses={
        200: {
            "description": "The report as JSON (`status` open or closed, `version`, `sha256` "
            "of the canonical JSON of `report`, the `changes` of a correction), a "
            "spreadsheet (`format=xlsx`) or a page with charts (`format=html`).",
            "content": {"application/json": {}, XLSX_MEDIA_TYPE: {}, "text/html": {}},
        }
    },
)
async def dispatch_report(
    p: PrincipalDep,
    svc: DispatchDep,
    speech: SpeechDep,
    language: LanguageDep,
    period: Annotated[str, Query(max_length=16, description=PERIOD)],
    region: Annotated[str | None, Query(max_length=16, description=REGION)] = None,
    version: Annotated[int | None, Query(ge=1, description="A kept version (closed).")] = None,
    format: Literal["json", "xlsx", "html"] = "json",
) -> Response:
    """The dispatch report of a period and a region, with each region under it
    (county -> city -> province) broken down by key group, occupation, skill level and
    delivery mode. A closed period is served from its kept, sealed copy; one past its
    end plus `subsidy.dispatch_close_grace_days` is closed at its first request."""
    served = await svc.report(p, period, region, version)
    if format == "xlsx":
        writer = Writer(speech.translator(language), speech.clock)
        data = writer.xlsx(dispatch_tables(served.as_dict(), writer.t, speech.clock))
        name = f"dispatch-{region or 'all'}-{served.report['period']}.xlsx"
        return Response(
            data,
            media_type=XLSX_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if format == "html":
        return HTMLResponse(
            dispatch_html(served.as_dict(), speech, language),
            headers={"Content-Security-Policy": dispatch_csp()},
        )
    return _json(served)


@router.post("/reports/dispatch/close", tags=["reports"], response_model=None)
async def close_report(body: CloseIn, p: PrincipalDep, svc: DispatchDep) -> Response:
    """Close a period's report now (bureau, admin): computed once, kept, and its SHA-256
    appended to the ledger (`dispatch_report_closed`). 409 `already_closed`."""
    return _json(await svc.close(p, body.period, body.region))


@router.post("/reports/dispatch/correct", tags=["reports"], response_model=None)
async def correct_report(body: CorrectIn, p: PrincipalDep, svc: DispatchDep) -> Response:
    """A correction of a closed report (bureau, admin): version n+1 on the ledger as it
    stands, with the figures that changed and the reason. 409 `not_closed`,
    `nothing_changed`."""
    return _json(await svc.correct(p, body.period, body.region, body.reason))

"""Public pages, no sign-in: the published catalogue of courses and institutions
(searchable, with each institution's status) and the list of expelled institutions.

Server-rendered in the reader's language, no script, nothing personal: the same data
as `/api/v1/public/...`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from storage.types import InstitutionStatus
from supervisor.api.pages.common import render
from supervisor.subsidy.service import SubsidyService

router = APIRouter(prefix="/public", include_in_schema=False)


def _subsidy(request: Request) -> SubsidyService:
    service: SubsidyService = request.app.state.subsidy
    return service


def status_filter(value: str) -> InstitutionStatus | None:
    """A status named in a query; anything else means every status."""
    try:
        return InstitutionStatus(value)
    except ValueError:
        return None


@router.get("")
async def public_home(request: Request) -> Response:
    return RedirectResponse("/public/catalogue", status_code=303)


@router.get("/catalogue")
async def catalogue_page(request: Request) -> Response:
    q = request.query_params.get("q", "")[:100]
    status = status_filter(request.query_params.get("status", ""))
    institutions, courses = await _subsidy(request).public_catalogue(q, status)
    return render(
        request,
        "public_catalogue.html",
        q=q,
        chosen=status.value if status else "",
        institutions=institutions,
        courses=courses,
    )


@router.get("/expelled")
async def expelled_page(request: Request) -> Response:
    expelled = await _subsidy(request).public_list(InstitutionStatus.expelled)
    return render(request, "public_expelled.html", expelled=expelled)

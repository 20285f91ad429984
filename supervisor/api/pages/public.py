"""Public pages, no sign-in: the published catalogue of courses and institutions
(searchable, with each institution's status), the list of expelled institutions and
the public notice of approved claims (公示) with its objection form.

Server-rendered in the reader's language, no script, nothing personal: the same data
as `/api/v1/public/...`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from storage.types import InstitutionStatus
from supervisor.api.pages.common import error_text, render
from supervisor.api.routes.claims import file_objection
from supervisor.api.schemas.claims import ObjectionIn
from supervisor.errors import InvalidInput, ServiceError
from supervisor.subsidy.claims import ClaimService
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


# -- the public notice of approved claims (公示) and objections --------------------------


def _claims(request: Request) -> ClaimService:
    service: ClaimService = request.app.state.claims
    return service


@router.get("/notices")
async def notices_page(request: Request) -> Response:
    """Approved claims on notice: names and ID numbers masked; an objection form each."""
    found = await _claims(request).notices()
    return render(request, "public_notices.html", notices=found, done=None, problem=None)


@router.post("/notices/{claim_id}/objections")
async def object_page(claim_id: int, request: Request) -> Response:
    """The objection form of the notice page (the same checks and limits as the API)."""
    svc = _claims(request)
    form = await request.form()
    statement = str(form.get("statement", ""))[:4000]
    learner = str(form.get("learner_id", "")).strip()
    problem: str | None = None
    done = None
    try:
        if learner and not (learner.isdigit() and len(learner) <= 12):
            raise InvalidInput("that learner is not on this claim", reason="not_in_claim")
        text = statement.strip()
        if not text or len(text) > 2000:
            raise InvalidInput("the statement is 1..2000 characters", reason="empty_statement")
        body = ObjectionIn(statement=text, learner_id=int(learner) if learner else None)
        done = await file_objection(request, svc, claim_id, body)
    except ServiceError as exc:
        problem = error_text(request, exc.reason, exc.message, **exc.details)
    found = await svc.notices()
    return render(
        request,
        "public_notices.html",
        status=201 if done is not None else 409,
        notices=found,
        done=done,
        problem=problem,
    )

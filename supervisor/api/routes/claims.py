"""Claim review (`/api/v1/submitted-claims`, `/claim-draws`, `/claim-payments`) and the
public notice (`/api/v1/public/claim-notices`, no token). See README, "Claim review"."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response

from storage.types import Role
from supervisor.api.deps import PrincipalDep
from supervisor.api.errors import ErrorBody
from supervisor.api.schemas.claims import (
    ClaimDetailOut,
    ClaimOut,
    DecideIn,
    DrawIn,
    DrawOut,
    NoticeOut,
    ObjectionDecisionIn,
    ObjectionIn,
    ObjectionReceivedOut,
    PaymentExportOut,
    PaymentIn,
    SubmitIn,
    VerifyIn,
)
from supervisor.api.schemas.common import EventOut, checked_time
from supervisor.api.speech import LanguageDep, speech_of
from supervisor.auth import Principal
from supervisor.errors import InvalidInput
from supervisor.i18n import Speech
from supervisor.rules.months import month_bounds
from supervisor.subsidy.claim_exports import payment_table
from supervisor.subsidy.claims import ClaimService
from supervisor.subsidy.exports import XLSX_MEDIA_TYPE, Writer

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["claim review"])
public = APIRouter(
    prefix="/api/v1/public",
    tags=["public"],
    responses={code: {"model": ErrorBody} for code in (404, 409, 422, 429)},
)


def get_claims(request: Request) -> ClaimService:
    service: ClaimService = request.app.state.claims
    return service


ClaimsDep = Annotated[ClaimService, Depends(get_claims)]
SpeechDep = Annotated[Speech, Depends(speech_of)]


def period(
    svc: ClaimService, month: str | None, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """A local month or an explicit [from, until), never both."""
    if month is not None:
        if start is not None or end is not None:
            raise InvalidInput("give a month or from/until, not both", reason="invalid_period")
        try:
            return month_bounds(month, svc.ctx.settings.subsidy.timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc), reason="invalid_month") from None
    if start is None or end is None:
        raise InvalidInput("give a month or from and until", reason="invalid_period")
    return checked_time(start, "from"), checked_time(end, "until")


@router.post(
    "/submitted-claims",
    response_model=ClaimDetailOut,
    status_code=status.HTTP_201_CREATED,
)
async def submit(body: SubmitIn, p: PrincipalDep, svc: ClaimsDep) -> ClaimDetailOut:
    """Submit the institution's claim for a period (its operator): the learners the
    scan finds eligible, frozen with the chain heads they rest on. Refused:
    `claim_overlaps`, `nothing_to_claim`, `institution_suspended`, `institution_expelled`,
    `other_institution`, `wrong_role`."""
    start, end = period(svc, body.month, body.from_, body.until)
    detail = await svc.submit(p, body.institution_id, start, end, body.course_id)
    return ClaimDetailOut.of_detail(detail, statements=_reads_statements(p))


@router.get("/submitted-claims", response_model=list[ClaimOut])
async def list_claims(
    p: PrincipalDep,
    svc: ClaimsDep,
    institution_id: Annotated[int | None, Query(ge=1)] = None,
    claim_status: Annotated[
        Literal["submitted", "verified", "approved", "rejected", "paid"] | None,
        Query(alias="status"),
    ] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="until")] = None,
) -> list[ClaimOut]:
    """Submitted claims (an operator: its institution's only)."""
    start = checked_time(start, "from") if start is not None else None
    end = checked_time(end, "until") if end is not None else None
    found = await svc.list_claims(p, institution_id, claim_status, start, end)
    return [ClaimOut.of(v) for v in found]


@router.get("/submitted-claims/{claim_id}", response_model=ClaimDetailOut)
async def get_claim(claim_id: int, p: PrincipalDep, svc: ClaimsDep) -> ClaimDetailOut:
    return ClaimDetailOut.of_detail(await svc.get(p, claim_id), statements=_reads_statements(p))


@router.get("/submitted-claims/{claim_id}/history")
async def history(claim_id: int, p: PrincipalDep, svc: ClaimsDep) -> dict[str, object]:
    """The claim's ledger chain `claim:<id>` in order, decoded, replayed like a
    session's: every step with its hash, and whether the chain verifies."""
    events, intact = await svc.history(p, claim_id)
    return {
        "claim_id": claim_id,
        "chain_id": f"claim:{claim_id}",
        "intact": intact,
        "events": [EventOut.of(e).model_dump(mode="json") for e in events],
    }


@router.post("/submitted-claims/{claim_id}/verification", response_model=ClaimDetailOut)
async def verify(claim_id: int, body: VerifyIn, p: PrincipalDep, svc: ClaimsDep) -> ClaimDetailOut:
    """The verdict on a sampled claim (bureau, inspector): `verified` or `irregular`,
    with learners rejected. The frozen chain heads are checked again; a line on a chain
    no longer intact is rejected (`chain_broken`, listed in the answer)."""
    detail, broken = await svc.verify(p, claim_id, body.verdict, body.note, body.rejected_learners)
    return ClaimDetailOut.of_detail(detail, broken)


@router.post("/submitted-claims/{claim_id}/decision", response_model=ClaimDetailOut)
async def decide(claim_id: int, body: DecideIn, p: PrincipalDep, svc: ClaimsDep) -> ClaimDetailOut:
    """Approve or reject (the bureau). A sampled claim is approved only after its
    verification (`claim_not_verified`). Approval puts it on the public notice."""
    detail, broken = await svc.decide(p, claim_id, body.status, body.note)
    return ClaimDetailOut.of_detail(detail, broken)


@router.post(
    "/submitted-claims/{claim_id}/objections/{objection_id}/decision",
    response_model=ClaimDetailOut,
)
async def decide_objection(
    claim_id: int, objection_id: int, body: ObjectionDecisionIn, p: PrincipalDep, svc: ClaimsDep
) -> ClaimDetailOut:
    """Uphold (the named learner's line, or the whole claim, is rejected) or dismiss."""
    detail = await svc.decide_objection(p, claim_id, objection_id, body.upheld, body.note)
    return ClaimDetailOut.of_detail(detail)


@router.post("/claim-draws", response_model=DrawOut, status_code=status.HTTP_201_CREATED)
async def draw(body: DrawIn, p: PrincipalDep, svc: ClaimsDep) -> DrawOut:
    """Sample the period's submitted claims for verification (bureau, inspector), each
    at its institution's risk rate; the seed, population and rates are in the ledger."""
    start, end = checked_time(body.from_, "from"), checked_time(body.until, "until")
    return DrawOut.of(await svc.draw(p, start, end, body.base_rate, body.seed))


@router.get("/claim-draws/{draw_id}", response_model=DrawOut)
async def get_draw(draw_id: str, p: PrincipalDep, svc: ClaimsDep) -> DrawOut:
    """A draw as the ledger holds it, redrawn from its seed (`reproduced`)."""
    return DrawOut.of(await svc.get_draw(p, draw_id))


@router.post(
    "/claim-payments", response_model=PaymentExportOut, status_code=status.HTTP_201_CREATED
)
async def export_payments(body: PaymentIn, p: PrincipalDep, svc: ClaimsDep) -> PaymentExportOut:
    """Pay approved claims whose notice has closed with no objection open (the bureau).
    Refused: `notice_open`, `objection_open`, `already_paid`, `claim_not_approved`,
    `nothing_to_pay`."""
    return PaymentExportOut.of(await svc.export_payments(p, body.claim_ids))


@router.get("/claim-payments", response_model=list[PaymentExportOut])
async def payment_exports(p: PrincipalDep, svc: ClaimsDep) -> list[PaymentExportOut]:
    return [PaymentExportOut.of(e) for e in await svc.payment_exports(p)]


@router.get(
    "/claim-payments/{export_id}",
    response_model=None,
    responses={
        200: {
            "description": "The payment file: JSON, CSV (UTF-8 with BOM) or xlsx; full names, "
            "ID numbers masked, formula cells neutralised.",
            "content": {"application/json": {}, "text/csv": {}, XLSX_MEDIA_TYPE: {}},
        }
    },
)
async def payment_file(
    export_id: str,
    p: PrincipalDep,
    svc: ClaimsDep,
    speech: SpeechDep,
    language: LanguageDep,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Response:
    export, rows = await svc.payment_rows(p, export_id)
    if format == "json":
        body = {
            **PaymentExportOut.of(export).model_dump(mode="json"),
            "lines": [
                {
                    "claim_id": r.claim_id,
                    "institution_id": r.institution_id,
                    "institution": r.institution,
                    "course_id": r.course_id,
                    "course_name": r.course_name,
                    "learner_id": r.learner_id,
                    "learner_name": r.learner_name,
                    "id_number": r.id_number_masked,
                    "credited_hours": r.credited_hours,
                    "amount": r.amount,
                }
                for r in rows
            ],
        }
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")
    writer = Writer(speech.translator(language), speech.clock)
    table = payment_table(rows, writer.t)
    name = f"payments-{export_id}"
    if format == "csv":
        return Response(
            writer.csv(table).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        writer.xlsx([table]),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )


# -- public: the notice (公示) and objections ------------------------------------------


@public.get("/claim-notices", response_model=list[NoticeOut])
async def notices(svc: ClaimsDep) -> list[NoticeOut]:
    """Approved claims on public notice (no token): institution, course, period, the
    learners with names and ID numbers masked, hours and amounts. Also a page at
    `/public/notices`."""
    return [NoticeOut.of(n) for n in await svc.notices()]


async def file_objection(
    request: Request, svc: ClaimService, claim_id: int, body: ObjectionIn
) -> ObjectionReceivedOut:
    client = request.client.host if request.client else "unknown"
    limits = svc.ctx.settings.subsidy
    await request.app.state.ratelimit.public_post(
        "objection", client, limits.objections_per_hour, 3600
    )
    o = await svc.object(claim_id, body.learner_id, body.statement, "public")
    return ObjectionReceivedOut(
        objection_id=o.id,
        claim_id=o.claim_id,
        statement_sha256=o.statement_sha256,
        received_at=o.received_at,
    )


@public.post(
    "/claim-notices/{claim_id}/objections",
    response_model=ObjectionReceivedOut,
    status_code=status.HTTP_201_CREATED,
)
async def object_to_claim(
    claim_id: int, body: ObjectionIn, request: Request, svc: ClaimsDep
) -> ObjectionReceivedOut:
    """Object to a claim on notice (anyone, no token; rate-limited per address): a
    statement and optionally the learner's line. Blocks payment until decided.
    Refused: `not_on_notice`, `notice_closed`, `not_in_claim`, `too_many_posts`."""
    return await file_objection(request, svc, claim_id, body)


def _reads_statements(p: Principal) -> bool:
    """Objectors' words go to those who decide, never to the institution claimed for."""
    return p.role is not Role.operator

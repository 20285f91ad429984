"""Learners' appeals (`/api/v1/appeals`): a learner disputes a flag, a failed check or a
missed roll call; bureau staff or an inspector decides (`supervisor.subsidy.appeals`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from storage.types import AppealStatus, AppealSubject
from supervisor.api.deps import PrincipalDep
from supervisor.api.errors import ErrorBody
from supervisor.api.schemas.appeals import AppealableOut, AppealDecisionIn, AppealIn, AppealOut
from supervisor.api.speech import speech_of
from supervisor.i18n import Speech
from supervisor.subsidy.appeals import AppealService

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["appeals"])


def get_appeals(request: Request) -> AppealService:
    service: AppealService = request.app.state.appeals
    return service


AppealsDep = Annotated[AppealService, Depends(get_appeals)]
SpeechDep = Annotated[Speech, Depends(speech_of)]


@router.post("/appeals", response_model=AppealOut, status_code=status.HTTP_201_CREATED)
async def file_appeal(
    body: AppealIn, p: PrincipalDep, svc: AppealsDep, speech: SpeechDep
) -> AppealOut:
    """File an appeal (the learner, with their own token: `learner_only` otherwise) against
    a flag raised on them, a failed or missed check of their session, or a roll call that
    found them absent. Refused: another learner's subject (403 `not_your_subject`), an
    unknown one (404 `unknown_subject`), one that does not hold them up (409
    `nothing_to_appeal`), one with an open or upheld appeal (409 `appeal_exists`), an
    empty or too long statement (422). Recorded as `appeal_filed` in `appeal:<id>`."""
    appeal = await svc.file(
        p, AppealSubject(body.subject), body.statement, body.flag_id, body.chain_id, body.seq
    )
    return AppealOut.of(appeal, speech.clock)


@router.get("/appeals", response_model=list[AppealOut])
async def list_appeals(
    p: PrincipalDep,
    svc: AppealsDep,
    speech: SpeechDep,
    status: AppealStatus | None = None,
    learner_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[AppealOut]:
    """Appeals, oldest first (`status=open`: the ones waiting for a decision). The bureau,
    inspectors and admins read all; a learner reads their own; an operator none."""
    return [AppealOut.of(a, speech.clock) for a in await svc.list(p, status, learner_id)]


@router.get("/appeals/{appeal_id}", response_model=AppealOut)
async def get_appeal(
    appeal_id: int, p: PrincipalDep, svc: AppealsDep, speech: SpeechDep
) -> AppealOut:
    return AppealOut.of(await svc.get(p, appeal_id), speech.clock)


@router.post("/appeals/{appeal_id}/decision", response_model=AppealOut)
async def decide_appeal(
    appeal_id: int, body: AppealDecisionIn, p: PrincipalDep, svc: AppealsDep, speech: SpeechDep
) -> AppealOut:
    """Uphold or dismiss, with a note (bureau, inspector, admin; never the institution:
    403 `wrong_role`), once (409 `appeal_decided`). Recorded as `appeal_decided`. Upheld
    on a flag: the flag is dismissed by a new decision in its chain naming the appeal;
    on a check or a roll call: eligibility credits the interval the failure stopped."""
    decided = await svc.decide(p, appeal_id, body.upheld, body.note)
    return AppealOut.of(decided, speech.clock)


@router.get("/learners/{learner_id}/appealable", response_model=AppealableOut)
async def appealable(
    learner_id: int, p: PrincipalDep, svc: AppealsDep, speech: SpeechDep
) -> AppealableOut:
    """What the learner can appeal: the flags that hold them up, their failed or missed
    checks and the roll calls that found them absent (newest first), each with its
    latest appeal; times also in `web.timezone`. The learner themselves, or a decider."""
    return AppealableOut.of(await svc.appealable(p, learner_id), speech.clock)

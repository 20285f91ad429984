"""Study sessions, checks, the ledger of a session and its integrity."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from pydantic import BaseModel, Field

from storage.types import Role
from supervisor.api.deps import CtxDep, PrincipalDep, SessionsDep, read_upload
from supervisor.api.errors import ERRORS
from supervisor.api.schemas.common import (
    CheckOut,
    CreditOut,
    EventOut,
    IntegrityOut,
    SessionCheckOut,
    SessionOut,
    SessionSummaryOut,
)
from supervisor.api.speech import TranslatorDep
from supervisor.auth import require_role
from supervisor.errors import InvalidInput
from supervisor.online.clients import Client

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["sessions"])

SignInFrames = Annotated[
    list[UploadFile],
    File(
        description="A short burst of camera frames (JPEG/PNG/WebP), taken "
        "`policy.signin_frame_spacing_s` apart: `policy.signin_frames` of them."
    ),
]


class SignInBurstOut(BaseModel):
    frames: int = Field(description="How many frames a sign-in sends.")
    spacing_s: float = Field(description="Seconds between them, as the page takes them.")


@router.get("/sessions/sign-in", response_model=SignInBurstOut)
async def sign_in_burst(ctx: CtxDep) -> SignInBurstOut:
    """How the learner's page takes the burst of frames a sign-in sends (no token)."""
    policy = ctx.settings.policy
    return SignInBurstOut(frames=policy.signin_frames, spacing_s=policy.signin_frame_spacing_s)


@router.post("/sessions", response_model=SessionCheckOut, status_code=status.HTTP_201_CREATED)
async def start_session(
    p: PrincipalDep,
    sessions: SessionsDep,
    ctx: CtxDep,
    course_id: Annotated[int, Form(ge=1)],
    frame: SignInFrames,
    request: Request,
    t: TranslatorDep,
    mode: Annotated[Literal["webrtc", "upload"], Form()] = "upload",
    device: Annotated[
        str | None,
        Form(
            max_length=2048,
            description="What the page reports about its device (only a keyed hash is kept).",
        ),
    ] = None,
) -> SessionCheckOut:
    """Start a study session (the learner only). It opens only if the identity check on
    the burst passes, passive liveness included; otherwise the refusal names the verdict
    and nothing is recorded. `mode` is how the page will be supervised."""
    wanted = ctx.settings.policy.signin_frames
    if len(frame) != wanted:
        raise InvalidInput(
            f"a sign-in sends {wanted} frames (got {len(frame)})",
            reason="wrong_frame_count",
            wanted=wanted,
        )
    data = [await read_upload(request, f) for f in frame]
    address = request.client.host if request.client is not None else "unknown"
    state, check = await sessions.start(p, course_id, data, mode, Client(address[:64], device))
    return SessionCheckOut(session=SessionOut.of(state, 0.0), check=CheckOut.of(check, t))


@router.get("/sessions", response_model=list[SessionSummaryOut])
async def list_sessions(
    p: PrincipalDep,
    sessions: SessionsDep,
    learner_id: Annotated[int | None, Query(ge=1)] = None,
    open_only: bool = False,
) -> list[SessionSummaryOut]:
    return [SessionSummaryOut.of(s) for s in await sessions.list(p, learner_id, open_only)]


@router.get("/sessions/{session_id}", response_model=SessionOut)
async def get_session(session_id: uuid.UUID, p: PrincipalDep, sessions: SessionsDep) -> SessionOut:
    state = await sessions.state(p, str(session_id))
    credit = await sessions.credited(p, str(session_id))
    return SessionOut.of(state, credit.credited_seconds)


@router.post("/sessions/{session_id}/end", response_model=SessionOut)
async def end_session(session_id: uuid.UUID, p: PrincipalDep, sessions: SessionsDep) -> SessionOut:
    state = await sessions.end(p, str(session_id))
    credit = await sessions.credited(p, str(session_id))
    return SessionOut.of(state, credit.credited_seconds)


@router.get("/sessions/{session_id}/events", response_model=list[EventOut])
async def session_events(
    session_id: uuid.UUID, p: PrincipalDep, sessions: SessionsDep
) -> list[EventOut]:
    """The session's ledger chain, in order, with hashes."""
    return [EventOut.of(e) for e in await sessions.events(p, str(session_id))]


@router.get("/sessions/{session_id}/integrity", response_model=IntegrityOut)
async def session_integrity(
    session_id: uuid.UUID, p: PrincipalDep, sessions: SessionsDep
) -> IntegrityOut:
    """Recompute the session's hash chain and name the first bad event, if any."""
    return IntegrityOut.of(await sessions.integrity(p, str(session_id)))


@router.get("/sessions/{session_id}/credited", response_model=CreditOut)
async def session_credited(
    session_id: uuid.UUID, p: PrincipalDep, sessions: SessionsDep, ctx: CtxDep
) -> CreditOut:
    """Credited learning time, recomputed from the ledger."""
    credit = await sessions.credited(p, str(session_id))
    return CreditOut.of(str(session_id), credit, ctx.settings.policy.max_credited_gap_s)


@router.get("/ledger/integrity", response_model=IntegrityOut, tags=["ledger"])
async def ledger_integrity(p: PrincipalDep, ctx: CtxDep) -> IntegrityOut:
    """Recompute every chain (admin, inspector)."""
    require_role(p, Role.admin, Role.inspector)
    return IntegrityOut.of(await ctx.db(ctx.storage.ledger.verify, None))

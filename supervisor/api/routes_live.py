"""Live supervision endpoints: the WebRTC offer and the HTTP fallback."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from pydantic import BaseModel, Field

from capture.exceptions import CaptureError, PeerExists, TooManyPeers
from storage.types import Role
from supervisor.api.deps import CtxDep, PrincipalDep, SessionsDep, read_upload
from supervisor.api.routes_registry import ERRORS
from supervisor.auth import require_role
from supervisor.errors import Conflict, InvalidInput, ServiceError, Unavailable
from supervisor.live import LiveManager

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["live"])

MAX_FRAMES_PER_POST = 10


def manager(request: Request) -> LiveManager:
    live: LiveManager = request.app.state.live
    return live


class OfferIn(BaseModel):
    sdp: str = Field(max_length=1024 * 1024)
    type: Literal["offer"] | str = "offer"


class AnswerOut(BaseModel):
    sdp: str
    type: Literal["answer"] = "answer"


class LiveIn(BaseModel):
    mode: Literal["upload"]


class LiveOut(BaseModel):
    session_id: str
    mode: str


class FramesOut(BaseModel):
    accepted: bool


def _capture_error(exc: CaptureError) -> ServiceError:
    if isinstance(exc, PeerExists):
        return Conflict(exc.message, reason=exc.reason)
    if isinstance(exc, TooManyPeers):
        return Unavailable(exc.message, reason=exc.reason)
    return InvalidInput(exc.message, reason=exc.reason)


@router.post("/sessions/{session_id}/webrtc", response_model=AnswerOut)
async def webrtc_offer(
    session_id: uuid.UUID,
    body: OfferIn,
    p: PrincipalDep,
    sessions: SessionsDep,
    request: Request,
) -> AnswerOut:
    """Send the page's SDP offer (video, send-only, and a data channel); get the answer.

    The server then asks the browser, on the data channel, to send video only while
    a check samples it, at a low frame rate."""
    session = await sessions.session_for(p, str(session_id))
    try:
        answer = await manager(request).offer(session, body.sdp, body.type)
    except CaptureError as exc:
        raise _capture_error(exc) from None
    return AnswerOut(sdp=answer)


@router.post("/sessions/{session_id}/live", response_model=LiveOut)
async def attach_upload(
    session_id: uuid.UUID, body: LiveIn, p: PrincipalDep, sessions: SessionsDep, request: Request
) -> LiveOut:
    """Supervise the session over the still-frame fallback (no WebRTC)."""
    session = await sessions.session_for(p, str(session_id))
    await manager(request).attach_upload(session)
    return LiveOut(session_id=session.id, mode=body.mode)


@router.get("/sessions/{session_id}/messages")
async def messages(
    session_id: uuid.UUID,
    p: PrincipalDep,
    sessions: SessionsDep,
    request: Request,
    wait: Annotated[float, Query(ge=0, le=30)] = 20,
) -> list[dict[str, Any]]:
    """Long-poll for the server's messages to the page (fallback mode). Counts as a heartbeat."""
    session = await sessions.session_for(p, str(session_id))
    live = manager(request)
    link = live.upload_link(session.id)
    if link is None:
        raise Conflict("the session is not supervised over the fallback", reason="not_live")
    live.heartbeat(session.id)
    return await link.next_messages(wait)


@router.post("/sessions/{session_id}/frames", response_model=FramesOut, status_code=202)
async def post_frames(
    session_id: uuid.UUID,
    p: PrincipalDep,
    sessions: SessionsDep,
    request: Request,
    check_id: Annotated[str, Form(min_length=1, max_length=64)],
    frames: Annotated[list[UploadFile], File(description="The frames the server asked for.")],
) -> FramesOut:
    """Frames for a check the server asked for (fallback mode)."""
    session = await sessions.session_for(p, str(session_id))
    if len(frames) > MAX_FRAMES_PER_POST:
        raise InvalidInput(
            f"at most {MAX_FRAMES_PER_POST} frames per post", reason="too_many_frames"
        )
    live = manager(request)
    link = live.upload_link(session.id)
    if link is None:
        raise Conflict("the session is not supervised over the fallback", reason="not_live")
    data = [await read_upload(request, f) for f in frames]
    if not link.deliver(check_id, data):
        raise Conflict("no check is waiting for these frames", reason="no_pending_check")
    live.heartbeat(session.id)
    return FramesOut(accepted=True)


@router.post("/sessions/{session_id}/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
async def heartbeat(
    session_id: uuid.UUID, p: PrincipalDep, sessions: SessionsDep, request: Request
) -> Response:
    session = await sessions.session_for(p, str(session_id))
    if not manager(request).heartbeat(session.id):
        raise Conflict("the session is not supervised live", reason="not_live")
    return Response(status_code=204)


class ConsentTextOut(BaseModel):
    version: str
    text: str


@router.get("/consent-text", response_model=ConsentTextOut, tags=["consent"])
async def consent_text(ctx: CtxDep) -> ConsentTextOut:
    """The biometric consent text a learner agrees to, with its version (no token needed)."""
    from supervisor.web import consent_text as text_of

    version = ctx.settings.security.consent_text_version
    return ConsentTextOut(version=version, text=text_of(version))


class LiveStatsOut(BaseModel):
    live_sessions: int
    peers: int
    peers_connected: int
    frames_received: int
    frames_dropped: int
    frames_sampled: int
    offers_refused: int
    verification_in_flight: int
    verification_shed: int


@router.get("/live/stats", response_model=LiveStatsOut)
async def live_stats(p: PrincipalDep, ctx: CtxDep, request: Request) -> LiveStatsOut:
    """Counters of this process's live supervision (admin, inspector)."""
    require_role(p, Role.admin, Role.inspector)
    live = manager(request)
    hub = live.hub.stats()
    return LiveStatsOut(
        live_sessions=len(live.live),
        peers=hub.peers,
        peers_connected=hub.peers_connected,
        frames_received=hub.frames_received,
        frames_dropped=hub.frames_dropped,
        frames_sampled=hub.frames_sampled,
        offers_refused=hub.offers_refused,
        verification_in_flight=ctx.pool.in_flight,
        verification_shed=ctx.pool.shed,
    )

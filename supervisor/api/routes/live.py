"""Live supervision endpoints: the WebRTC offer and the HTTP fallback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from capture.exceptions import CaptureError, PeerExists, TooManyPeers
from storage.exceptions import StorageError
from storage.types import FlagStatus, Role
from supervisor.api.deps import CtxDep, PrincipalDep, SessionsDep, read_upload
from supervisor.api.errors import ERRORS
from supervisor.api.speech import language_of
from supervisor.auth import Principal, require_role
from supervisor.checks.pool import Overloaded
from supervisor.context import Context
from supervisor.errors import (
    Conflict,
    InvalidInput,
    OtherInstitution,
    ServiceError,
    Unavailable,
    image_refusal,
)
from supervisor.ledger.events import iso
from supervisor.online.links import Refusal
from supervisor.online.live import LiveManager
from supervisor.registry.consent import consent_text_in
from supervisor.rules import session_state as sm
from verification.exceptions import ImageError

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["live"])

MAX_FRAMES_PER_POST = 60  # a challenge's few seconds of frames


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


def _without_password(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


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
        answer = await manager(request).offer(session, body.sdp, body.type, language_of(request))
    except CaptureError as exc:
        raise _capture_error(exc) from None
    return AnswerOut(sdp=answer)


@router.post("/sessions/{session_id}/live", response_model=LiveOut)
async def attach_upload(
    session_id: uuid.UUID, body: LiveIn, p: PrincipalDep, sessions: SessionsDep, request: Request
) -> LiveOut:
    """Supervise the session over the still-frame fallback (no WebRTC)."""
    session = await sessions.session_for(p, str(session_id))
    await manager(request).attach_upload(session, language_of(request))
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
    ctx: CtxDep,
    request: Request,
    check_id: Annotated[str, Form(min_length=1, max_length=64)],
    nonce: Annotated[str, Form(min_length=1, max_length=64)],
    frames: Annotated[list[UploadFile], File(description="The frames the server asked for.")],
) -> FramesOut:
    """Frames answering a check the server asked for (fallback mode), with the check id
    and nonce of its request. Frames that answer no request (409 `no_pending_check`),
    carry another nonce (409 `wrong_nonce`), come after the request's deadline (409
    `check_expired`) or answer it twice (409 `already_answered`) are refused and change
    nothing; so are frames that are not usable images (415/413), and the check waits."""
    session = await sessions.session_for(p, str(session_id))
    if len(frames) > MAX_FRAMES_PER_POST:
        raise InvalidInput(
            f"at most {MAX_FRAMES_PER_POST} frames per post", reason="too_many_frames"
        )
    live = manager(request)
    link = live.upload_link(session.id)
    if link is None:
        raise Conflict("the session is not supervised over the fallback", reason="not_live")
    try:
        link.accept(check_id, nonce)
        data = [await read_upload(request, f) for f in frames]
        await ctx.pool.validate(data)  # a refused frame leaves the check waiting
        link.deliver(check_id, nonce, data)
    except Refusal as exc:
        raise Conflict(exc.message, reason=exc.reason) from None
    except ImageError as exc:
        raise image_refusal(exc.reason, exc.message) from None
    except Overloaded:
        raise Unavailable(
            "verification is overloaded; retry shortly", reason="overloaded"
        ) from None
    live.heartbeat(session.id)
    return FramesOut(accepted=True)


class SignalsIn(BaseModel):
    label: str | None = Field(None, max_length=200, description="The camera's label.")
    settings: dict[str, float] = Field(
        default_factory=dict, description="width, height, frameRate of the track."
    )
    hidden: bool = Field(
        False,
        description="The page is hidden (screen locked, another app or tab in front): the "
        "session pauses (`page_hidden`) until the page comes back and an identity check "
        "passes.",
    )


@router.post("/sessions/{session_id}/signals", status_code=status.HTTP_204_NO_CONTENT)
async def signals(
    session_id: uuid.UUID, body: SignalsIn, p: PrincipalDep, sessions: SessionsDep, request: Request
) -> Response:
    """What the page reports about its camera (any mode; WebRTC pages also use the data
    channel). These reports can only raise suspicion, never clear it. A page that says
    it is hidden pauses its session (`page_hidden`): the clock stops until the page
    attaches again and an identity check passes."""
    session = await sessions.session_for(p, str(session_id))
    live = manager(request).live.get(session.id)
    if live is None or live.link is None:
        raise Conflict("the session is not supervised live", reason="not_live")
    if live.take_signals(body.model_dump()):
        # The page went to the background: the session pauses until it comes back.
        await live.detach(sm.PAGE_HIDDEN)
    return Response(status_code=204)


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
async def consent_text(ctx: CtxDep, request: Request) -> ConsentTextOut:
    """The biometric consent text a learner agrees to, with its version (no token needed),
    in the request's language: the translated version (e.g. `2026-11-v1-zh-CN`, which
    names its language) where there is one, else the English text."""
    version, text = consent_text_in(
        ctx.settings.security.consent_text_version, language_of(request).value
    )
    return ConsentTextOut(version=version, text=text)


class LiveStatsOut(BaseModel):
    live_sessions: int
    peers: int
    peers_connected: int
    frames_received: int
    frames_dropped: int
    frames_sampled: int
    offers_refused: int
    messages_dropped: int = Field(
        0, description="Data-channel messages dropped unread (binary, oversized)."
    )
    messages_ignored: int = Field(
        0, description="Data-channel messages ignored: malformed JSON or an unknown type."
    )
    verification_in_flight: int
    verification_shed: int
    redis_url: str = Field(description="Where the check queue lives (for `supervisor worker`).")


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
        messages_dropped=hub.messages_dropped,
        messages_ignored=live.messages_ignored,
        verification_in_flight=ctx.pool.in_flight,
        verification_shed=ctx.pool.shed,
        redis_url=_without_password(request.app.state.redis_url),
    )


# -- the operators' live view ----------------------------------------------------

STREAM_INTERVAL_S = 2.0


async def _institution_scope(p: Principal, institution_id: int | None) -> int:
    if p.role is Role.operator:
        assert p.institution_id is not None
        if institution_id not in (None, p.institution_id):
            raise OtherInstitution("this belongs to another institution")
        return p.institution_id
    require_role(p, Role.admin, Role.inspector)
    if institution_id is None:
        raise InvalidInput("institution_id is required", reason="invalid_input")
    return institution_id


async def _snapshot(ctx: Context, live: LiveManager, institution_id: int) -> dict[str, Any]:
    # With Redis unreachable, the sessions this process supervises ("board":
    # "this_process"), never a 5xx: the operators' view stays up, degraded.
    sessions, shared = await live.board.sessions(institution_id)
    names: dict[int, str] = {}
    for s in sessions:
        lid = int(s["learner_id"])
        if lid not in names:
            try:
                names[lid] = (await ctx.db(ctx.storage.registry.get_learner, lid)).full_name
            except StorageError:
                names[lid] = f"learner {lid}"
        s["learner_name"] = names[lid]
    flags = await ctx.db(ctx.storage.registry.list_flags, FlagStatus.open, institution_id)
    queue: dict[str, Any]
    try:
        q = await ctx.queue.stats()
        queue = {
            "length": q.length,
            "pending": q.pending,
            "lag_seconds": q.oldest_age_s,
            "workers_alive": q.workers_alive,
            "dead_letters": q.dead_letters,
        }
    except RedisError:
        queue = {"error": "redis unavailable"}
    return {
        "at": iso(ctx.clock()),
        "institution_id": institution_id,
        "sessions": sessions,
        "board": "shared" if shared else "this_process",
        "flags_open": len(flags),
        "flags": [
            {
                "id": f.id,
                "kind": f.kind,
                "learner_id": f.learner_id,
                "created_at": iso(f.created_at),
            }
            for f in flags[:20]
        ],
        "queue": queue,
    }


@router.get("/live/sessions")
async def live_sessions(
    p: PrincipalDep,
    ctx: CtxDep,
    request: Request,
    institution_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Live sessions of an institution, open flags and the queue (one snapshot)."""
    inst = await _institution_scope(p, institution_id)
    return await _snapshot(ctx, manager(request), inst)


@router.get("/live/stream")
async def live_stream(
    p: PrincipalDep,
    ctx: CtxDep,
    request: Request,
    institution_id: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Server-sent events: a snapshot of the institution's live view every 2 s."""
    inst = await _institution_scope(p, institution_id)
    live = manager(request)

    async def events() -> AsyncIterator[bytes]:
        while not await request.is_disconnected():
            snap = await _snapshot(ctx, live, inst)
            yield f"event: snapshot\ndata: {json.dumps(snap)}\n\n".encode()
            await asyncio.sleep(STREAM_INTERVAL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

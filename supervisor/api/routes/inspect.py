"""The inspector's API: search, replay, frames, spot checks, evidence packs, seals,
and the access log. Every read of personal data is written to the access log.

The router's lifespan builds the rooms of the workspace (`supervisor.inspect`) on
`app.state` and runs the periodic sealer while the app runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status

from storage.types import Role
from supervisor.api.deps import CtxDep, PrincipalDep
from supervisor.api.errors import ERRORS, ErrorBody
from supervisor.api.schemas.common import checked_time
from supervisor.api.schemas.inspect import (
    AccessEntryOut,
    DrawIn,
    DrawOut,
    ProofOut,
    ProofStepOut,
    PublicKeyOut,
    ReplayOut,
    SealOut,
    SearchRowOut,
    VerdictIn,
    VerdictOut,
)
from supervisor.auth import Principal, require_role
from supervisor.context import Context
from supervisor.errors import InvalidInput, UnknownId
from supervisor.inspect import seals as sl
from supervisor.inspect.access import Workspace
from supervisor.inspect.frames import check_frames, find_frame
from supervisor.inspect.pack_service import EvidencePacks
from supervisor.inspect.replay import Replays
from supervisor.inspect.sealing import (
    PeriodicSealer,
    SealedTrees,
    make_seal,
    verify_chain_against_seal,
)
from supervisor.inspect.search import Search, SearchQuery
from supervisor.inspect.spot_checks import SpotChecks


@dataclass(frozen=True, slots=True)
class Rooms:
    """The rooms of the inspector's workspace (`supervisor.inspect`) in this process.
    Only `trees` holds state (the latest seal's Merkle tree); the rooms share it."""

    workspace: Workspace
    trees: SealedTrees
    search: Search
    replays: Replays
    spot_checks: SpotChecks
    packs: EvidencePacks

    @classmethod
    def build(cls, ctx: Context) -> Rooms:
        workspace = Workspace(ctx)
        trees = SealedTrees(ctx.storage)
        return cls(
            workspace,
            trees,
            Search(ctx, workspace),
            Replays(ctx, workspace, trees),
            SpotChecks(ctx, workspace),
            EvidencePacks(ctx, workspace, trees),
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: Context = app.state.ctx
    rooms = app.state.inspect = Rooms.build(ctx)
    sealer = PeriodicSealer(ctx, rooms.trees)
    await sealer.start()
    try:
        yield
    finally:
        await sealer.stop()


router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["inspection"], lifespan=lifespan)
public = APIRouter(
    prefix="/api/v1",
    tags=["seals"],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

SHA256_PATH = re.compile(r"[0-9a-f]{64}")
SINGULAR = {"sessions": "session", "classes": "class"}


def get_rooms(request: Request) -> Rooms:
    rooms: Rooms = request.app.state.inspect
    return rooms


RoomsDep = Annotated[Rooms, Depends(get_rooms)]


def check_sha(sha256: str) -> str:
    """Only 64 lowercase hex characters name a frame: nothing else reaches storage."""
    if not SHA256_PATH.fullmatch(sha256):
        raise InvalidInput("a frame is named by 64 lowercase hex characters", reason="bad_hash")
    return sha256


def frame_response(data: bytes) -> Response:
    kind = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    return Response(
        data,
        media_type=kind,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/inspect/search", response_model=list[SearchRowOut])
async def search(
    p: PrincipalDep,
    rooms: RoomsDep,
    learner: Annotated[str, Query(max_length=100)] = "",
    institution_id: Annotated[int | None, Query(ge=1)] = None,
    course_id: Annotated[int | None, Query(ge=1)] = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    outcome: Annotated[str, Query(max_length=32)] = "",
    flagged: Literal["", "any", "open"] = "",
    kind: Literal["", "session", "class"] = "",
) -> list[SearchRowOut]:
    """Sessions and classes by learner (name or masked ID), institution, course, date
    range (start time, `date_to` exclusive), outcome (end reason or `open`) and flag."""
    if date_from is not None:
        date_from = checked_time(date_from, "date_from")
    if date_to is not None:
        date_to = checked_time(date_to, "date_to")
    q = SearchQuery(learner, institution_id, course_id, date_from, date_to, outcome, flagged, kind)
    return [SearchRowOut.of(r) for r in await rooms.search.search(p, q)]


@router.get("/inspect/sessions/{session_id}/replay", response_model=ReplayOut)
async def replay_session(session_id: uuid.UUID, p: PrincipalDep, rooms: RoomsDep) -> ReplayOut:
    return ReplayOut.of(await rooms.replays.replay_session(p, str(session_id)))


@router.get("/inspect/classes/{class_id}/replay", response_model=ReplayOut)
async def replay_class(class_id: int, p: PrincipalDep, rooms: RoomsDep) -> ReplayOut:
    return ReplayOut.of(await rooms.replays.replay_class(p, class_id))


async def record_of(
    ws: Workspace, p: Principal, kind: str, ident: str
) -> tuple[list[str], dict[str, Any]]:
    """The chains of a session or class the principal may read (scope-checked), and
    what names that record in the access log."""
    if kind == "session":
        try:
            sid = str(uuid.UUID(ident))
        except ValueError:
            raise UnknownId("unknown session") from None
        s = await ws.session(p, sid)
        ids = {"institution_id": s.institution_id, "learner_id": s.learner_id, "session_id": s.id}
        return [s.chain_id], ids
    if kind == "class" and ident.isdigit():
        tc = await ws.training_class(p, int(ident))
        ids = {"institution_id": tc.institution_id, "class_id": tc.id}
        return await ws.ctx.db(ws.class_chains, tc), ids
    raise UnknownId("frames belong to a session or a class")


async def serve_frame(ws: Workspace, p: Principal, kind: str, ident: str, sha256: str) -> Response:
    check_sha(sha256)
    chains, ids = await record_of(ws, p, kind, ident)
    data = await ws.ctx.db(find_frame, ws.ctx.storage, chains, sha256)
    await ws.log(p, "view_frame", detail=f"frame {sha256[:16]}", **ids)
    return frame_response(data)


async def frames_of(ws: Workspace, p: Principal, kind: str, ident: str) -> dict[str, str]:
    """Every frame of a readable session or class hashed: sha -> ok | altered | purged | missing."""
    chains, _ = await record_of(ws, p, kind, ident)
    return await ws.ctx.db(check_frames, ws.ctx.storage, chains)


@router.get(
    "/inspect/{plural}/{ident}/frames/{sha256}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def frame(
    plural: Literal["sessions", "classes"],
    ident: str,
    sha256: str,
    p: PrincipalDep,
    rooms: RoomsDep,
) -> Response:
    """An evidence frame that this session or class refers to, by SHA-256."""
    return await serve_frame(rooms.workspace, p, SINGULAR[plural], ident, sha256)


@router.get("/inspect/{plural}/{ident}/frames-check")
async def frames_check(
    plural: Literal["sessions", "classes"], ident: str, p: PrincipalDep, rooms: RoomsDep
) -> dict[str, str]:
    """Hash every retained frame: sha -> ok | altered | purged | missing."""
    return await frames_of(rooms.workspace, p, SINGULAR[plural], ident)


@router.post("/inspect/spot-checks", response_model=DrawOut, status_code=status.HTTP_201_CREATED)
async def draw(body: DrawIn, p: PrincipalDep, rooms: RoomsDep) -> DrawOut:
    """Draw a sample of the institution's sessions started in the period, from `seed`
    (a random one when omitted); the draw, with its seed, becomes a ledger event."""
    start = checked_time(body.period_start, "period_start")
    end = checked_time(body.period_end, "period_end")
    drawn = await rooms.spot_checks.draw(p, body.institution_id, start, end, body.size, body.seed)
    return DrawOut.of(drawn)


@router.get("/inspect/spot-checks", response_model=list[DrawOut])
async def draws(p: PrincipalDep, rooms: RoomsDep) -> list[DrawOut]:
    return [DrawOut.of(d.event, d) for d in await rooms.spot_checks.draws(p)]


@router.get("/inspect/spot-checks/{draw_id}", response_model=DrawOut)
async def get_draw(draw_id: str, p: PrincipalDep, rooms: RoomsDep) -> DrawOut:
    d = await rooms.spot_checks.get_draw(p, draw_id)
    return DrawOut.of(d.event, d)


@router.post(
    "/inspect/spot-checks/{draw_id}/verdicts",
    response_model=VerdictOut,
    status_code=status.HTTP_201_CREATED,
)
async def verdict(draw_id: str, body: VerdictIn, p: PrincipalDep, rooms: RoomsDep) -> VerdictOut:
    """Record a reviewed session's verdict (regular, or irregular with a note)."""
    v = await rooms.spot_checks.record_verdict(p, draw_id, body.session_id, body.verdict, body.note)
    return VerdictOut.of(v)


@router.get(
    "/inspect/evidence/{subject}/{ident}",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def evidence_pack(
    subject: Literal["session", "class", "learner"], ident: str, p: PrincipalDep, rooms: RoomsDep
) -> Response:
    """An evidence pack (zip) to check offline with `supervisor evidence verify`."""
    name, data = await rooms.packs.pack(p, subject, ident)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/access-log", response_model=list[AccessEntryOut], tags=["inspection"])
async def access_log(
    p: PrincipalDep,
    ctx: CtxDep,
    learner_id: Annotated[int | None, Query(ge=1)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AccessEntryOut]:
    """Who read which learner's data and when (admins)."""
    require_role(p, Role.admin)
    rows = await ctx.db(
        ctx.storage.access_log.entries, learner_id=learner_id, actor=actor, limit=limit
    )
    return [AccessEntryOut.of(a) for a in rows]


@router.post("/seals", response_model=SealOut, status_code=status.HTTP_201_CREATED)
async def seal_now(p: PrincipalDep, ctx: CtxDep, rooms: RoomsDep) -> SealOut:
    """Seal the heads of all chains now (admins)."""
    require_role(p, Role.admin)
    seal = await ctx.db(
        make_seal,
        ctx.storage,
        ctx.settings.security.seal_key.get_secret_value(),
        ctx.clock(),
        metrics=ctx.metrics,
    )
    assert seal is not None  # always made unless only_if_changed
    await ctx.db(rooms.trees.tree, seal)  # ready for the next replay page
    return SealOut.of(seal)


@router.get("/seals/{seal_id}/proofs/{chain_id}", response_model=ProofOut)
async def seal_proof(
    seal_id: int, chain_id: str, p: PrincipalDep, ctx: CtxDep, rooms: RoomsDep
) -> ProofOut:
    """The inclusion proof of a chain in a seal, and whether the chain still matches."""
    require_role(p, Role.admin, Role.inspector)
    seal = await ctx.db(ctx.storage.seals.get, seal_id)
    tree = await ctx.db(rooms.trees.tree, seal)
    head, proof = tree.heads.get(chain_id), tree.proof(chain_id)
    if head is None or proof is None:
        raise UnknownId(f"seal {seal_id} does not cover chain {chain_id}")
    problem = await ctx.db(verify_chain_against_seal, ctx.storage, chain_id, seal)
    return ProofOut(
        seal_id=seal.id,
        chain_id=chain_id,
        seq=head.seq,
        hash=head.hash,
        broken=head.broken,
        root=seal.root,
        proof=[ProofStepOut(side=s.side, hash=s.hash) for s in proof],
        chain_matches=problem is None,
        problem=problem,
    )


@public.get("/seals/latest", response_model=SealOut)
async def latest_seal(ctx: CtxDep) -> SealOut:
    """The latest seal with its public key: public, holds no personal data."""
    seal = await ctx.db(ctx.storage.seals.latest)
    if seal is None:
        raise UnknownId("no seal has been made yet", reason="no_seal")
    return SealOut.of(seal)


@public.get("/seals/public-key", response_model=PublicKeyOut)
async def public_key(ctx: CtxDep) -> PublicKeyOut:
    """The key that signs seals and evidence packs."""
    key = sl.private_key(ctx.settings.security.seal_key.get_secret_value())
    pub = sl.public_key_hex(key)
    return PublicKeyOut(
        public_key=pub, public_key_pem=sl.public_key_pem(pub), key_fingerprint=sl.fingerprint(pub)
    )

"""The inspector's API: search, replay, frames, spot checks, evidence packs, seals,
and the access log. Every read of personal data is written to the access log."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status

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
from supervisor.errors import InvalidInput, UnknownId
from supervisor.inspect import seals as sl
from supervisor.inspect.service import (
    InspectionService,
    SearchQuery,
    make_seal,
    verify_chain_against_seal,
)

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["inspection"])
public = APIRouter(
    prefix="/api/v1",
    tags=["seals"],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

SHA256_PATH = re.compile(r"[0-9a-f]{64}")
SINGULAR = {"sessions": "session", "classes": "class"}


def get_inspect(request: Request) -> InspectionService:
    service: InspectionService = request.app.state.inspect
    return service


InspectDep = Annotated[InspectionService, Depends(get_inspect)]


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
    svc: InspectDep,
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
    return [SearchRowOut.of(r) for r in await svc.search(p, q)]


@router.get("/inspect/sessions/{session_id}/replay", response_model=ReplayOut)
async def replay_session(session_id: uuid.UUID, p: PrincipalDep, svc: InspectDep) -> ReplayOut:
    return ReplayOut.of(await svc.replay_session(p, str(session_id)))


@router.get("/inspect/classes/{class_id}/replay", response_model=ReplayOut)
async def replay_class(class_id: int, p: PrincipalDep, svc: InspectDep) -> ReplayOut:
    return ReplayOut.of(await svc.replay_class(p, class_id))


async def record_of(
    svc: InspectionService, p: Principal, kind: str, ident: str
) -> tuple[list[str], dict[str, Any]]:
    """The chains of a session or class the principal may read (scope-checked), and
    what names that record in the access log."""
    if kind == "session":
        try:
            sid = str(uuid.UUID(ident))
        except ValueError:
            raise UnknownId("unknown session") from None
        s = await svc.session(p, sid)
        ids = {"institution_id": s.institution_id, "learner_id": s.learner_id, "session_id": s.id}
        return [s.chain_id], ids
    if kind == "class" and ident.isdigit():
        tc = await svc.training_class(p, int(ident))
        ids = {"institution_id": tc.institution_id, "class_id": tc.id}
        return await svc.ctx.db(svc.class_chains, tc), ids
    raise UnknownId("frames belong to a session or a class")


async def serve_frame(
    svc: InspectionService, p: Principal, kind: str, ident: str, sha256: str
) -> Response:
    check_sha(sha256)
    chains, ids = await record_of(svc, p, kind, ident)
    data = await svc.frame(p, chains, sha256)
    await svc.log(p, "view_frame", detail=f"frame {sha256[:16]}", **ids)
    return frame_response(data)


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
    svc: InspectDep,
) -> Response:
    """An evidence frame that this session or class refers to, by SHA-256."""
    return await serve_frame(svc, p, SINGULAR[plural], ident, sha256)


@router.get("/inspect/{plural}/{ident}/frames-check")
async def frames_check(
    plural: Literal["sessions", "classes"], ident: str, p: PrincipalDep, svc: InspectDep
) -> dict[str, str]:
    """Hash every retained frame: sha -> ok | altered | purged | missing."""
    chains, _ = await record_of(svc, p, SINGULAR[plural], ident)
    return await svc.check_frames(p, chains)


@router.post("/inspect/spot-checks", response_model=DrawOut, status_code=status.HTTP_201_CREATED)
async def draw(body: DrawIn, p: PrincipalDep, svc: InspectDep) -> DrawOut:
    """Draw a sample of the institution's sessions started in the period, from `seed`
    (a random one when omitted); the draw, with its seed, becomes a ledger event."""
    start = checked_time(body.period_start, "period_start")
    end = checked_time(body.period_end, "period_end")
    drawn = await svc.draw(p, body.institution_id, start, end, body.size, body.seed)
    return DrawOut.of(drawn)


@router.get("/inspect/spot-checks", response_model=list[DrawOut])
async def draws(p: PrincipalDep, svc: InspectDep) -> list[DrawOut]:
    return [DrawOut.of(d.event, d) for d in await svc.draws(p)]


@router.get("/inspect/spot-checks/{draw_id}", response_model=DrawOut)
async def get_draw(draw_id: str, p: PrincipalDep, svc: InspectDep) -> DrawOut:
    d = await svc.get_draw(p, draw_id)
    return DrawOut.of(d.event, d)


@router.post(
    "/inspect/spot-checks/{draw_id}/verdicts",
    response_model=VerdictOut,
    status_code=status.HTTP_201_CREATED,
)
async def verdict(draw_id: str, body: VerdictIn, p: PrincipalDep, svc: InspectDep) -> VerdictOut:
    """Record a reviewed session's verdict (regular, or irregular with a note)."""
    v = await svc.record_verdict(p, draw_id, body.session_id, body.verdict, body.note)
    return VerdictOut.of(v)


@router.get(
    "/inspect/evidence/{subject}/{ident}",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def evidence_pack(
    subject: Literal["session", "class", "learner"], ident: str, p: PrincipalDep, svc: InspectDep
) -> Response:
    """An evidence pack (zip) to check offline with `supervisor evidence verify`."""
    name, data = await svc.pack(p, subject, ident)
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
async def seal_now(p: PrincipalDep, ctx: CtxDep, svc: InspectDep) -> SealOut:
    """Seal the heads of all chains now (admins)."""
    require_role(p, Role.admin)
    seal = await ctx.db(
        make_seal, ctx.storage, ctx.settings.security.seal_key.get_secret_value(), ctx.clock()
    )
    assert seal is not None  # always made unless only_if_changed
    await ctx.db(svc.sealed_tree, seal)  # ready for the next replay page
    return SealOut.of(seal)


@router.get("/seals/{seal_id}/proofs/{chain_id}", response_model=ProofOut)
async def seal_proof(seal_id: int, chain_id: str, p: PrincipalDep, svc: InspectDep) -> ProofOut:
    """The inclusion proof of a chain in a seal, and whether the chain still matches."""
    require_role(p, Role.admin, Role.inspector)
    seal = await svc.ctx.db(svc.storage.seals.get, seal_id)
    tree = await svc.ctx.db(svc.sealed_tree, seal)
    head, proof = tree.heads.get(chain_id), tree.proof(chain_id)
    if head is None or proof is None:
        raise UnknownId(f"seal {seal_id} does not cover chain {chain_id}")
    problem = await svc.ctx.db(verify_chain_against_seal, svc.storage, chain_id, seal)
    return ProofOut(
        seal_id=seal.id,
        chain_id=chain_id,
        seq=head.seq,
        hash=head.hash,
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

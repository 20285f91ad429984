"""The inspector's workspace: server-rendered pages (Jinja2, autoescaped) with small
static scripts, no inline script.

Sign-in puts the token in an HttpOnly, SameSite=Strict cookie; every form that
changes something also carries a CSRF value derived from the token. Pages read
through the rooms of `supervisor.inspect`, so the same scope rules and access logging apply as
to the JSON API.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from storage import exceptions as se
from storage.types import Role
from supervisor.api.deps import get_ctx
from supervisor.api.errors import STORAGE_ERRORS
from supervisor.api.pages.common import error_text, render
from supervisor.api.routes.inspect import frames_of, get_rooms, serve_frame
from supervisor.api.speech import speech_of, translator_of
from supervisor.auth import Principal
from supervisor.errors import InvalidInput, ServiceError, Unauthenticated, WrongRole
from supervisor.i18n import N_
from supervisor.inspect.replay import Replay
from supervisor.inspect.search import SearchQuery

COOKIE = "sv_workspace"
router = APIRouter(prefix="/inspect", include_in_schema=False)


def csrf_token(secret: str) -> str:
    return hashlib.sha256(b"workspace-csrf:" + secret.encode()).hexdigest()[:32]


async def _principal(request: Request) -> tuple[Principal, str] | None:
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    ctx = get_ctx(request)
    token = await ctx.db(ctx.storage.registry.resolve_token, secret)
    if token is None:
        return None
    return Principal.from_token(token), secret


Page = Callable[[Request, Principal, dict[str, Any]], Awaitable[Response]]


async def _page(request: Request, body: Page, form: dict[str, Any] | None = None) -> Response:
    """Sign-in, CSRF on forms, and domain errors shown as a page with their status."""
    found = await _principal(request)
    if found is None:
        return RedirectResponse("/inspect/login", status_code=303)
    p, secret = found
    base = {
        "me": p,
        "csrf": csrf_token(secret),
        "is_admin": p.role is Role.admin,
        "can_spot_check": p.role in (Role.admin, Role.inspector),
    }
    try:
        if p.role is Role.learner:
            raise WrongRole("learners have no inspector's workspace")
        if form is not None and not hmac.compare_digest(
            str(form.get("csrf", "")), str(base["csrf"])
        ):
            raise WrongRole("the form is stale or not from this workspace", reason="csrf")
        return await body(request, p, base)
    except ServiceError as exc:
        message = error_text(request, exc.reason, exc.message, **exc.details)
        return render(
            request, "inspect_error.html", exc.status, reason=exc.reason, message=message, **base
        )
    except se.StorageError as exc:
        for cls, status, reason in STORAGE_ERRORS:
            if isinstance(exc, cls) and status < 500:
                message = error_text(request, reason, str(exc))
                return render(
                    request, "inspect_error.html", status, reason=reason, message=message, **base
                )
        raise


# -- sign-in ----------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "inspect_login.html", error="")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    secret = str(form.get("token", "")).strip()
    ctx = get_ctx(request)
    token = await ctx.db(ctx.storage.registry.resolve_token, secret) if secret else None
    t = translator_of(request)
    if token is None:
        error = t(N_("The token is unknown or revoked."))
        return render(request, "inspect_login.html", 401, error=error)
    if token.role is Role.learner:
        error = t(N_("Learners have no inspector's workspace."))
        return render(request, "inspect_login.html", 403, error=error)
    resp = RedirectResponse("/inspect", status_code=303)
    resp.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=ctx.settings.inspection.cookie_secure,
        path="/inspect",
        max_age=8 * 3600,
    )
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    resp = RedirectResponse("/inspect/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/inspect")
    return resp


# -- search ----------------------------------------------------------------------------


def _date(request: Request, value: str, what: str) -> datetime | None:
    """A date typed on a page: a day (or time) in the display zone, `web.timezone`,
    unless it names its own offset."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} is not a date (YYYY-MM-DD)") from None
    return at if at.tzinfo else at.replace(tzinfo=speech_of(request).clock.zone)


def _int(value: str, what: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"{what} must be a positive number")
    return int(value)


@router.get("")
async def search_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        qp = request.query_params
        fields = {
            k: qp.get(k, "")
            for k in (
                "learner",
                "institution_id",
                "course_id",
                "date_from",
                "date_to",
                "outcome",
                "flagged",
                "kind",
            )
        }
        if fields["flagged"] not in ("", "any", "open") or fields["kind"] not in (
            "",
            "session",
            "class",
        ):
            raise InvalidInput("unknown filter value")
        rows = None
        if "go" in qp:
            q = SearchQuery(
                fields["learner"][:100],
                _int(fields["institution_id"], "institution"),
                _int(fields["course_id"], "course"),
                _date(request, fields["date_from"], "from"),
                _date(request, fields["date_to"], "to"),
                fields["outcome"][:32],
                fields["flagged"],
                fields["kind"],
            )
            rows = await get_rooms(request).search.search(p, q)
        return render(request, "inspect_search.html", rows=rows, f=fields, **base)

    return await _page(request, body)


# -- replay ----------------------------------------------------------------------------


def _timeline(r: Replay) -> dict[str, Any]:
    span = max((r.end - r.start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(min(max((at - r.start).total_seconds() / span, 0.0), 1.0) * 1000, 2)

    intervals = [
        {"x": x(i.start), "w": max(x(i.end) - x(i.start), 0.5)}
        for i in (r.credit.intervals if r.credit else ())
    ]
    marks = []
    for n, c in enumerate(r.checks):
        cls = "deferred" if c.passed is None else ("pass" if c.passed else "fail")
        if c.kind == "missed":
            cls = "missed"
        marks.append({"x": x(c.at), "cls": cls, "n": n, "verdict": c.verdict, "at": c.at})
    items = [{"x": x(i.at), "kind": i.kind} for i in r.items if i.at is not None]
    return {"intervals": intervals, "marks": marks, "notes": items}


async def _replay(request: Request, kind: str, ident: str) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        svc = get_rooms(request).replays
        if kind == "session":
            try:
                sid = str(uuid.UUID(ident))
            except ValueError:
                raise InvalidInput("not a session id") from None
            r = await svc.replay_session(p, sid)
        else:
            if not ident.isdigit():
                raise InvalidInput("not a class id")
            r = await svc.replay_class(p, int(ident))
        return render(
            request, "inspect_replay.html", r=r, tl=_timeline(r), kind=kind, ident=ident, **base
        )

    return await _page(request, body)


@router.get("/sessions/{session_id}")
async def replay_session_page(request: Request, session_id: str) -> Response:
    return await _replay(request, "session", session_id)


@router.get("/classes/{class_id}")
async def replay_class_page(request: Request, class_id: str) -> Response:
    return await _replay(request, "class", class_id)


@router.get("/frames/{kind}/{ident}/{sha256}")
async def frame(request: Request, kind: str, ident: str, sha256: str) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        return await serve_frame(get_rooms(request).workspace, p, kind, ident, sha256)

    return await _page(request, body)


@router.get("/frames-check/{kind}/{ident}")
async def frames_check(request: Request, kind: str, ident: str) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        from fastapi.responses import JSONResponse

        return JSONResponse(await frames_of(get_rooms(request).workspace, p, kind, ident))

    return await _page(request, body)


@router.get("/evidence/{subject}/{ident}")
async def evidence(request: Request, subject: str, ident: str) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        name, data = await get_rooms(request).packs.pack(p, subject, ident)
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return await _page(request, body)


# -- spot checks ------------------------------------------------------------------------


@router.get("/spot-checks")
async def spot_checks_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        draws = await get_rooms(request).spot_checks.draws(p)
        ctx = get_ctx(request)
        institutions = await ctx.db(ctx.storage.registry.list_institutions)
        return render(
            request, "inspect_spot_checks.html", draws=draws, institutions=institutions, **base
        )

    return await _page(request, body)


@router.post("/spot-checks")
async def spot_check_draw(request: Request) -> Response:
    form = dict(await request.form())

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        svc = get_rooms(request).spot_checks
        institution = _int(str(form.get("institution_id", "")), "institution")
        start = _date(request, str(form.get("period_start", "")), "period start")
        end = _date(request, str(form.get("period_end", "")), "period end")
        size = _int(str(form.get("size", "")), "sample size")
        if institution is None or start is None or end is None or size is None:
            raise InvalidInput("institution, period and sample size are required")
        seed = str(form.get("seed", "")).strip() or None
        d = await svc.draw(p, institution, start, end, size, seed)
        return RedirectResponse(f"/inspect/spot-checks/{d.draw_id}", status_code=303)

    return await _page(request, body, form)


@router.get("/spot-checks/{draw_id}")
async def draw_page(request: Request, draw_id: str) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        d = await get_rooms(request).spot_checks.get_draw(p, draw_id)
        await get_rooms(request).workspace.log(
            p, "view_draw", institution_id=d.event.institution_id, detail=draw_id
        )
        return render(request, "inspect_draw.html", d=d, **base)

    return await _page(request, body)


@router.post("/spot-checks/{draw_id}/verdict")
async def draw_verdict(request: Request, draw_id: str) -> Response:
    form = dict(await request.form())

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        await get_rooms(request).spot_checks.record_verdict(
            p,
            draw_id,
            str(form.get("session_id", "")),
            str(form.get("verdict", "")),
            str(form.get("note", "")),
        )
        return RedirectResponse(f"/inspect/spot-checks/{draw_id}", status_code=303)

    return await _page(request, body, form)


# -- flags and the access log -----------------------------------------------------------


@router.get("/flags")
async def flags_page(request: Request) -> Response:
    """The open flags queue. The page's script reads and decides flags through the
    flags API (`/api/v1/flags`) with the bearer token kept for this tab at sign-in."""

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        await get_rooms(request).workspace.log(p, "view_flags")
        return render(request, "inspect_flags.html", **base)

    return await _page(request, body)


@router.get("/access-log")
async def access_log_page(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        if p.role is not Role.admin:
            raise WrongRole("the access log is for admins")
        ctx = get_ctx(request)
        learner = _int(request.query_params.get("learner_id", ""), "learner")
        rows = await ctx.db(ctx.storage.access_log.entries, learner_id=learner, limit=500)
        return render(request, "inspect_access_log.html", rows=rows, learner=learner or "", **base)

    return await _page(request, body)


__all__ = ["router", "Unauthenticated"]

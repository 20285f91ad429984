"""The inspector's workspace: server-rendered pages (Jinja2, autoescaped) with small
static scripts, no inline script.

Sign-in checks an API token once and opens a server-side session: the browser holds
only an opaque random id (HttpOnly, SameSite=Strict, path /inspect; stored hashed,
`storage.sessions_sql`) that ends when idle, at its absolute expiry or at sign-out.
Every unsafe request carrying it must repeat the readable CSRF cookie in the
X-CSRF-Token header (`CSRFMiddleware`; the workspace's script sends it), and every
form also carries that value. Sign-in and cookie sign-in both count failures for the
failed-token limiter. Pages read
through the rooms of `supervisor.inspect`, so the same scope rules and access logging apply as
to the JSON API.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError

from storage import exceptions as se
from storage.types import AppealStatus, FlagStatus, Role
from supervisor.api.deps import get_ctx, get_limiter
from supervisor.api.errors import STORAGE_ERRORS
from supervisor.api.pages.common import error_text, render
from supervisor.api.pages.signin import csrf_token, start_session
from supervisor.api.ratelimit import TooManyRequests
from supervisor.api.routes.appeals import get_appeals
from supervisor.api.routes.inspect import frames_of, get_rooms, serve_frame
from supervisor.api.routes.subsidy import get_subsidy
from supervisor.api.schemas.appeals import AppealDecisionIn, AppealOut
from supervisor.api.schemas.subsidy import DecisionIn, FlagOut
from supervisor.api.speech import speech_of, translator_of
from supervisor.auth import DECIDERS, Principal
from supervisor.errors import InvalidInput, ServiceError, Unauthenticated, WrongRole
from supervisor.i18n import N_
from supervisor.inspect.replay import Replay
from supervisor.inspect.search import SearchQuery

router = APIRouter(prefix="/inspect", include_in_schema=False)
# Cookies of the workspace are sent only to its own pages.
COOKIE_PATH = "/inspect"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _forget_cookies(request: Request, resp: Response) -> Response:
    web = get_ctx(request).settings.web
    resp.delete_cookie(web.session_cookie, path=COOKIE_PATH)
    resp.delete_cookie(web.csrf_cookie, path=COOKIE_PATH)
    return resp


def _to_login(request: Request) -> Response:
    return _forget_cookies(request, RedirectResponse("/inspect/login", status_code=303))


async def _principal(request: Request) -> tuple[Principal, str] | None:
    """The signed-in principal and the session's secret; None without a live session.

    A session cookie that names no live session is a failed sign-in for the limiter
    (guessing session ids is guessing tokens); a client over the limit is refused
    before its cookie is looked at."""
    ctx = get_ctx(request)
    secret = request.cookies.get(ctx.settings.web.session_cookie)
    if not secret:
        return None
    limiter = get_limiter(request)
    await limiter.check_auth_allowed(_client(request))
    found = await ctx.db(
        ctx.storage.workspace_sessions.resolve,
        secret,
        ctx.clock(),
        ctx.settings.inspection.session_idle_s,
    )
    if found is None:
        await limiter.auth_failed(_client(request))
        return None
    return Principal.from_token(found[1]), secret


Page = Callable[[Request, Principal, dict[str, Any]], Awaitable[Response]]


def _error_page(
    request: Request, exc: ServiceError, base: dict[str, Any] | None = None
) -> Response:
    message = error_text(request, exc.reason, exc.message, **exc.details)
    resp = render(
        request,
        "inspect_error.html",
        exc.status,
        reason=exc.reason,
        message=message,
        **(base or {}),
    )
    retry = exc.details.get("retry_after_s")
    if retry is not None:
        resp.headers["Retry-After"] = str(retry)
    return resp


async def _page(request: Request, body: Page, form: dict[str, Any] | None = None) -> Response:
    """Sign-in, CSRF on forms, and domain errors shown as a page with their status."""
    try:
        found = await _principal(request)
    except TooManyRequests as exc:
        return _error_page(request, exc)
    if found is None:
        return _to_login(request)
    p, secret = found
    base = {
        "me": p,
        "csrf": csrf_token(secret),
        "is_admin": p.role is Role.admin,
        "can_spot_check": p.role in (Role.admin, Role.inspector),
        "can_decide": p.role in DECIDERS,
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
        return _error_page(request, exc, base)
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
    # Whatever session this browser held ends here (revoked on the server; the cookie
    # is SameSite=Strict, so another site cannot sign anyone out this way) and its
    # cookie goes, so that the sign-in form (a plain POST without the CSRF header) is
    # not refused for carrying it.
    ctx = get_ctx(request)
    held = request.cookies.get(ctx.settings.web.session_cookie)
    if held:
        await ctx.db(ctx.storage.workspace_sessions.revoke, held, ctx.clock())
    return _forget_cookies(request, render(request, "inspect_login.html", error=""))


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with an API token: the token is checked once and never leaves the server
    again; the browser gets an opaque session id (HttpOnly) and its CSRF value."""
    ctx = get_ctx(request)
    t = translator_of(request)
    limiter = get_limiter(request)
    try:
        await limiter.check_auth_allowed(_client(request))
    except TooManyRequests as exc:
        error = error_text(request, exc.reason, exc.message, **exc.details)
        refused = render(request, "inspect_login.html", 429, error=error)
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    form = await request.form()
    secret = str(form.get("token", "")).strip()
    token = await ctx.db(ctx.storage.registry.resolve_token, secret) if secret else None
    if token is None:
        await limiter.auth_failed(_client(request))
        error = t(N_("The token is unknown or revoked."))
        return render(request, "inspect_login.html", 401, error=error)
    if token.role is Role.learner:
        error = t(N_("Learners have no inspector's workspace."))
        return render(request, "inspect_login.html", 403, error=error)
    session, lifetime = await start_session(request, token, ctx.settings.web.session_cookie)
    resp = RedirectResponse("/inspect", status_code=303)
    secure = ctx.settings.inspection.cookie_secure
    resp.set_cookie(
        ctx.settings.web.session_cookie,
        session,
        httponly=True,
        samesite="strict",
        secure=secure,
        path=COOKIE_PATH,
        max_age=int(lifetime),
    )
    # Readable by the workspace's script, which repeats it in X-CSRF-Token.
    resp.set_cookie(
        ctx.settings.web.csrf_cookie,
        csrf_token(session),
        httponly=False,
        samesite="strict",
        secure=secure,
        path=COOKIE_PATH,
        max_age=int(lifetime),
    )
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: the session is revoked on the server, whatever the browser keeps."""
    ctx = get_ctx(request)
    secret = request.cookies.get(ctx.settings.web.session_cookie)
    if secret:
        await ctx.db(ctx.storage.workspace_sessions.revoke, secret, ctx.clock())
    return _to_login(request)


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
    workspace's own JSON routes below, signed in by the session cookie."""

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        await get_rooms(request).workspace.log(p, "view_flags")
        return render(request, "inspect_flags.html", **base)

    return await _page(request, body)


def _json_error(request: Request, exc: ServiceError) -> Response:
    message = error_text(request, exc.reason, exc.message, **exc.details)
    return JSONResponse({"reason": exc.reason, "message": message}, status_code=exc.status)


async def _json(request: Request, body: Page) -> Response:
    """A JSON route of the workspace: the session cookie signs in (no token in the page);
    unsafe ones are guarded by `CSRFMiddleware` (X-CSRF-Token repeats the CSRF cookie)."""
    try:
        found = await _principal(request)
        if found is None:
            raise Unauthenticated("the workspace session has ended; please sign in again")
        p, _ = found
        if p.role is Role.learner:
            raise WrongRole("learners have no inspector's workspace")
        return await body(request, p, {})
    except ServiceError as exc:
        return _json_error(request, exc)


@router.get("/flags/open")
async def open_flags(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        found = await get_subsidy(request).list_flags(p, FlagStatus.open, None, None, None)
        return JSONResponse([FlagOut.of(v).model_dump(mode="json") for v in found])

    return await _json(request, body)


@router.post("/flags/{flag_id}/decision")
async def decide_flag(request: Request, flag_id: int) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        try:
            decision = DecisionIn.model_validate(await request.json())
        except (ValueError, ValidationError):
            raise InvalidInput("the decision must be JSON with a status and a note") from None
        await get_subsidy(request).decide(
            p, flag_id, FlagStatus(decision.status), decision.note, decision.against
        )
        return JSONResponse({"id": flag_id, "status": decision.status})

    return await _json(request, body)


# -- appeals: learners dispute a flag, a failed check or a missed roll call ---------------


@router.get("/appeals")
async def appeals_page(request: Request) -> Response:
    """The open appeals queue (bureau, inspectors, admins). The page's script reads and
    decides appeals through the JSON routes below, signed in by the session cookie."""

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        if p.role not in DECIDERS:
            raise WrongRole("appeals are decided by the bureau and inspectors")
        await get_rooms(request).workspace.log(p, "view_appeals")
        return render(request, "inspect_appeals.html", **base)

    return await _page(request, body)


@router.get("/appeals/open")
async def open_appeals(request: Request) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        found = await get_appeals(request).list(p, AppealStatus.open)
        clock = speech_of(request).clock
        return JSONResponse([AppealOut.of(a, clock).model_dump(mode="json") for a in found])

    return await _json(request, body)


@router.post("/appeals/{appeal_id}/decision")
async def decide_appeal(request: Request, appeal_id: int) -> Response:
    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        try:
            decision = AppealDecisionIn.model_validate(await request.json())
        except (ValueError, ValidationError):
            raise InvalidInput("the decision must be JSON with upheld and a note") from None
        decided = await get_appeals(request).decide(p, appeal_id, decision.upheld, decision.note)
        return JSONResponse({"id": appeal_id, "status": decided.status.value})

    return await _json(request, body)


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


# -- a claim's history, replayed ----------------------------------------------------------


@router.get("/claims/{claim_id}")
async def claim_page(request: Request, claim_id: str) -> Response:
    """A claim's chain `claim:<id>` step by step (as `GET /api/v1/submitted-claims/{id}/
    history`), with its lines and objections; an operator sees its own claims only."""

    async def body(request: Request, p: Principal, base: dict[str, Any]) -> Response:
        if not claim_id.isdigit() or len(claim_id) > 12:
            raise InvalidInput("not a claim id")
        claims = request.app.state.claims
        detail = await claims.get(p, int(claim_id))
        events, intact = await claims.history(p, int(claim_id))
        steps = [{"e": e, "payload": json.loads(e.payload)} for e in events]
        return render(request, "inspect_claim.html", d=detail, steps=steps, intact=intact, **base)

    return await _page(request, body)

"""Sign-in of a cookie-authenticated workspace (the operator console), in one place.

As the inspector's workspace does (`supervisor.api.pages.inspect`): sign-in checks an
API token once, and the browser gets an opaque server-side session id (stored hashed
in `workspace_sessions`, with idle and absolute expiry, revoked on sign-out) in an
HttpOnly, SameSite=Strict cookie limited to the workspace's path; the token never
goes back to the browser. Every form that changes something carries the session's
CSRF value (`inspect.csrf_token`), checked by `WorkspaceSignIn.check_form`, and comes
from this origin (Origin or Referer; SameSite=Strict keeps the cookie off cross-site
requests anyway). A session cookie that names no live session counts as a failed
sign-in for the limiter, as a wrong token does.

Everything a page needs from sign-in goes through `WorkspaceSignIn`: who is signed
in (`principal`), the CSRF value of the session (`csrf`), opening and closing the
session (`open`, `close`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from storage.types import Token
from supervisor.api.deps import get_ctx, get_limiter
from supervisor.auth import Principal
from supervisor.errors import WrongRole

SECRET_BYTES = 32


def csrf_token(secret: str) -> str:
    """The CSRF value of a session: in its readable cookie (`web.csrf_cookie`, repeated
    in the X-CSRF-Token header, checked by `CSRFMiddleware`) and in every form."""
    return hashlib.sha256(b"workspace-csrf:" + secret.encode()).hexdigest()[:32]


async def start_session(request: Request, token: Token, cookie: str) -> tuple[str, int]:
    """Open a server-side workspace session for `token`: the browser's earlier one (in
    `cookie`) revoked, ended sessions swept away. Returns (session id, lifetime s)."""
    ctx = get_ctx(request)
    now = ctx.clock()
    old = request.cookies.get(cookie)
    if old:
        await ctx.db(ctx.storage.workspace_sessions.revoke, old, now)
    await ctx.db(ctx.storage.workspace_sessions.purge, now)
    session = secrets.token_urlsafe(SECRET_BYTES)
    lifetime = int(ctx.settings.inspection.session_absolute_s)
    await ctx.db(
        ctx.storage.workspace_sessions.open, session, token.id, now,
        now + timedelta(seconds=lifetime),
    )  # fmt: skip
    return session, lifetime


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class WorkspaceSignIn:
    cookie: str  # the cookie's name
    path: str  # the workspace's path prefix: the cookie is sent to it only
    login_url: str
    home_url: str

    async def principal(self, request: Request) -> tuple[Principal, str] | None:
        """The signed-in principal and the session's id, or None without a live session."""
        session = request.cookies.get(self.cookie)
        if not session:
            return None
        ctx = get_ctx(request)
        limiter = get_limiter(request)
        await limiter.check_auth_allowed(_client(request))
        found = await ctx.db(
            ctx.storage.workspace_sessions.resolve,
            session,
            ctx.clock(),
            ctx.settings.inspection.session_idle_s,
        )
        if found is None:
            await limiter.auth_failed(_client(request))
            return None
        return Principal.from_token(found[1]), session

    @staticmethod
    def csrf(secret: str) -> str:
        return csrf_token(secret)

    def check_form(self, request: Request, secret: str, sent: object) -> None:
        """Refuse (403 `csrf`) a form without this session's CSRF value or from
        another origin."""
        origin = request.headers.get("origin") or request.headers.get("referer") or ""
        if origin and origin != "null":
            parts = urlsplit(origin)
            if parts.netloc and parts.netloc != request.headers.get("host", ""):
                raise WrongRole("the form did not come from this site", reason="csrf")
        if not hmac.compare_digest(str(sent or ""), self.csrf(secret)):
            raise WrongRole("the form is stale or not from this workspace", reason="csrf")

    async def resolve(self, request: Request, secret: str) -> Token | None:
        """The live token of a secret typed on the sign-in form (failures counted)."""
        ctx = get_ctx(request)
        limiter = get_limiter(request)
        await limiter.check_auth_allowed(_client(request))
        token = await ctx.db(ctx.storage.registry.resolve_token, secret) if secret else None
        if token is None:
            await limiter.auth_failed(_client(request))
        return token

    async def open(self, request: Request, token: Token) -> Response:
        """A new server-side session for the token (the browser's earlier one revoked)."""
        ctx = get_ctx(request)
        session, lifetime = await start_session(request, token, self.cookie)
        resp = RedirectResponse(self.home_url, status_code=303)
        resp.set_cookie(
            self.cookie,
            session,
            httponly=True,
            samesite="strict",
            secure=ctx.settings.inspection.cookie_secure,
            path=self.path,
            max_age=int(lifetime),
        )
        return resp

    async def close(self, request: Request) -> Response:
        """Sign out: the session is revoked on the server, whatever the browser keeps."""
        ctx = get_ctx(request)
        session = request.cookies.get(self.cookie)
        if session:
            await ctx.db(ctx.storage.workspace_sessions.revoke, session, ctx.clock())
        resp = RedirectResponse(self.login_url, status_code=303)
        resp.delete_cookie(self.cookie, path=self.path)
        return resp

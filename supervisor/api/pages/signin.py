"""Sign-in of a cookie-authenticated workspace (the operator console), in one place.

As the inspector's workspace does today (`supervisor.api.pages.inspect`): sign-in
checks an API token and keeps it in an HttpOnly, SameSite=Strict cookie limited to
the workspace's path; every form that changes something carries a CSRF value derived
from the cookie (`inspect.csrf_token`), checked by `WorkspaceSignIn.check_form`, and
comes from this origin (Origin or Referer; SameSite=Strict keeps the cookie off
cross-site requests anyway).

Everything a page needs from sign-in goes through `WorkspaceSignIn`: who is signed
in (`principal`), the CSRF value of the session (`csrf`), opening and closing the
session (`open`, `close`). When the inspector's workspace moves to server-side
sessions, only this module changes for the console.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from storage.types import Token
from supervisor.api.deps import get_ctx, get_limiter
from supervisor.api.pages.inspect import csrf_token
from supervisor.auth import Principal
from supervisor.errors import WrongRole

# A workspace session ends after this long, whatever the browser keeps.
MAX_AGE_S = 8 * 3600


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class WorkspaceSignIn:
    cookie: str  # the cookie's name
    path: str  # the workspace's path prefix: the cookie is sent to it only
    login_url: str
    home_url: str

    async def principal(self, request: Request) -> tuple[Principal, str] | None:
        """The signed-in principal and the session's secret, or None."""
        secret = request.cookies.get(self.cookie)
        if not secret:
            return None
        ctx = get_ctx(request)
        limiter = get_limiter(request)
        await limiter.check_auth_allowed(_client(request))
        token = await ctx.db(ctx.storage.registry.resolve_token, secret)
        if token is None:
            await limiter.auth_failed(_client(request))
            return None
        return Principal.from_token(token), secret

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

    def open(self, request: Request, secret: str) -> Response:
        resp = RedirectResponse(self.home_url, status_code=303)
        resp.set_cookie(
            self.cookie,
            secret,
            httponly=True,
            samesite="strict",
            secure=get_ctx(request).settings.inspection.cookie_secure,
            path=self.path,
            max_age=MAX_AGE_S,
        )
        return resp

    def close(self, request: Request) -> Response:
        resp = RedirectResponse(self.login_url, status_code=303)
        resp.delete_cookie(self.cookie, path=self.path)
        return resp

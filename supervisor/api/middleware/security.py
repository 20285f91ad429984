"""Web hardening: security headers on every response, CSRF protection for
cookie-authenticated requests, and the error responses every route may give.

Both middlewares are pure ASGI (no BaseHTTPMiddleware): they wrap `send`, so
streamed responses (server-sent events) pass through unbuffered.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.web import WebSettings
from supervisor.api.errors import ErrorBody, localized_message
from supervisor.i18n import Language

# Refusals any route can give beyond its own: a malformed body (400), rate limits
# (429) and storage or queue outages (503). Documented once, app-wide, so the
# OpenAPI description matches what the service answers.
COMMON_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "Malformed request (e.g. a body that is not JSON)."},
    429: {
        "model": ErrorBody,
        "description": "Too many requests or failed sign-ins; wait `Retry-After` seconds.",
    },
    503: {"model": ErrorBody, "description": "Storage or queue temporarily unavailable."},
}

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


def content_security_policy(extra_connect: str = "") -> str:
    """No inline script, no plugins, no framing; scripts, styles and images only from
    this origin (camera frames are drawn from `blob:`/`data:` URLs on a canvas)."""
    connect = "'self'" + (f" {extra_connect}" if extra_connect else "")
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob: mediastream:",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


# The API documentation (Swagger UI, ReDoc; supervisor.api.pages.docs) runs only
# scripts of this origin, like every page, but its libraries set styles inline (ReDoc's
# styled-components writes <style> elements) and ReDoc searches in a blob: worker.
# Styles cannot run code; these two pages carry no token or cookie of their own.
DOCS_PATHS = ("/docs", "/redoc")
DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def security_headers(
    settings: WebSettings, *, https: bool, path: str = "/"
) -> list[tuple[bytes, bytes]]:
    docs = path in DOCS_PATHS
    policy = DOCS_POLICY if docs else content_security_policy()
    headers = [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", b"camera=(self), microphone=(), geolocation=(), payment=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if https and settings.hsts_seconds > 0:
        headers.append((b"strict-transport-security", f"max-age={settings.hsts_seconds}".encode()))
    return headers


def _is_https(scope: Scope, settings: WebSettings) -> bool:
    if scope.get("scheme") == "https":
        return True
    if settings.trust_forwarded_proto:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-proto":
                return value.split(b",")[0].strip().lower() == b"https"
    return False


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (headers the app already set
    win, so a route can loosen one deliberately)."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(
            self.settings, https=_is_https(scope, self.settings), path=scope.get("path", "/")
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = list(message.get("headers", ())) + [
                    (k, v) for k, v in extra if k not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _header(scope, b"cookie")
    if not raw:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def _own_origin(scope: Scope) -> str | None:
    host = _header(scope, b"host")
    if not host:
        return None
    return f"{scope.get('scheme', 'http')}://{host}".lower()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class CSRFMiddleware:
    """Refuses a state-changing request that carries the session cookie unless it
    proves it comes from our own pages.

    Applies only to unsafe methods with the session cookie: bearer-token clients
    (the API, the learner page) send no cookie and are not affected, since a
    cross-site page cannot make a browser attach an `Authorization` header. Two
    proofs are required together:
    - Origin (or, without it, Referer) names this service: its own host or one of
      `web.allowed_origins`;
    - double submit: header `X-CSRF-Token` equals the `web.csrf_cookie` cookie,
      which only a page of this origin can read.
    """

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.settings = settings
        self.allowed = {o.rstrip("/").lower() for o in settings.allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        if self.settings.session_cookie not in cookies:
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope, cookies)
        if problem is not None:
            await refuse(send, 403, "csrf", problem, scope=scope)
            return
        await self.app(scope, receive, send)

    def problem(self, scope: Scope, cookies: dict[str, str]) -> str | None:
        origin = _header(scope, b"origin")
        if origin is None or origin == "null":
            referer = _header(scope, b"referer")
            origin = _origin_of(referer) if referer else None
        if origin is None:
            return "a cookie-authenticated request must name its Origin"
        origin = origin.rstrip("/").lower()
        if origin != _own_origin(scope) and origin not in self.allowed:
            return f"requests from {origin} may not use this service's session cookie"
        token = cookies.get(self.settings.csrf_cookie, "")
        sent = _header(scope, CSRF_HEADER.encode()) or ""
        if not token or not hmac.compare_digest(token.encode(), sent.encode()):
            return f"the {CSRF_HEADER} header must repeat the {self.settings.csrf_cookie} cookie"
        return None


async def refuse(
    send: Send,
    status: int,
    reason: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    scope: Scope | None = None,
) -> None:
    """Answer directly from a middleware with the API's error body; with `scope`, the
    message is in the language `LanguageMiddleware` chose for the request."""
    language = (scope or {}).get("state", {}).get("language")
    if isinstance(language, Language):
        message = localized_message(language, reason, message)
    body = json.dumps({"reason": reason, "message": message}, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Each request's language (`supervisor.i18n.languages` says how it is chosen).

A pure ASGI middleware: it puts the chosen `Language` in the request's state
(`request.state.language`, read through `supervisor.api.deps.language_of`), answers
with `Content-Language` and `Vary`, and, when the page switch (`?lang=`) named a
supported language, remembers it in the `sv_lang` cookie.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervisor.api.middleware.security import _cookies, _header
from supervisor.i18n import LANG_COOKIE, LANG_PARAM, Language, choose
from supervisor.i18n.languages import LANG_COOKIE_MAX_AGE, parse


class LanguageMiddleware:
    def __init__(self, app: ASGIApp, default: Language) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(LANG_PARAM)
        switched = parse(query[0]) if query else None
        language = choose(
            query[0] if query else None,
            _cookies(scope).get(LANG_COOKIE),
            _header(scope, b"accept-language"),
            self.default,
        )
        scope.setdefault("state", {})["language"] = language
        extra = [
            (b"content-language", language.value.encode()),
            (b"vary", b"Accept-Language, Cookie"),
        ]
        if switched is not None:
            extra.append(
                (
                    b"set-cookie",
                    f"{LANG_COOKIE}={switched.value}; Path=/; Max-Age={LANG_COOKIE_MAX_AGE}; "
                    "SameSite=Lax; HttpOnly".encode(),
                )
            )

        async def with_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = list(message.get("headers", ())) + [
                    (k, v) for k, v in extra if k == b"set-cookie" or k not in present
                ]
            await send(message)

        await self.app(scope, receive, with_language)

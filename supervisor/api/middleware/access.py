"""Records every successful API read by an inspector (and every read of learner,
session or class data by an operator) in the access log.

A pure ASGI middleware: when a GET's response starts with a 2xx status and the
request was authenticated (`request.state.principal`, set by `get_principal`), it
writes who, what path and which learner/session/class the path names. The
workspace's own routes (`/api/v1/inspect/...`, `/inspect/...`) log themselves, with
more detail, and are skipped here.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.types import Role

log = logging.getLogger(__name__)

_LEARNER = re.compile(r"^/api/v1/learners/(\d+)")
_SESSION = re.compile(r"^/api/v1/sessions/([0-9a-fA-F-]{36})")
_CLASS = re.compile(r"^/api/v1/classes/(\d+)")
_PERSONAL = ("/api/v1/learners", "/api/v1/sessions", "/api/v1/classes", "/api/v1/live")
_SELF_LOGGED = ("/api/v1/inspect/", "/api/v1/access-log", "/inspect")


def ids_of(path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m := _LEARNER.match(path):
        out["learner_id"] = int(m.group(1))
    elif m := _SESSION.match(path):
        out["session_id"] = m.group(1).lower()
    elif m := _CLASS.match(path):
        out["class_id"] = int(m.group(1))
    return out


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(_SELF_LOGGED) or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                await _record(scope, path)
            await send(message)

        await self.app(scope, receive, logging_send)


async def _record(scope: Scope, path: str) -> None:
    principal = scope.get("state", {}).get("principal")
    if principal is None:
        return
    if principal.role is Role.inspector or (
        principal.role is Role.operator and path.startswith(_PERSONAL)
    ):
        app = scope.get("app")
        ctx = getattr(getattr(app, "state", None), "ctx", None)
        if ctx is None:
            return
        try:
            await ctx.db(
                ctx.storage.access_log.record,
                ctx.clock(),
                principal.actor + (f" ({principal.label})" if principal.label else ""),
                principal.role.value,
                "api_read",
                institution_id=principal.institution_id,
                detail=f"GET {path}"[:500],
                **ids_of(path),
            )
        except Exception:  # the read was allowed; a failed log line is an error to fix
            log.exception("could not record an access-log entry for %s", path)

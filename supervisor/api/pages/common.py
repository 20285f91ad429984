"""What every server-rendered page shares: the reader's language (with the switch to
the others), local times, and the response headers of a page.

Templates extend `base.html`, which draws the language switch from `switch`: a plain
link per language to the same page with `?lang=` (see `supervisor.i18n.languages`
for why a link is enough).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from supervisor.api.errors import localized_message
from supervisor.api.speech import language_of, speech_of
from supervisor.i18n import LANG_PARAM, Language
from supervisor.registry.identity import mask_id_number

# Filters the page environments get beyond those of `supervisor.i18n.pages`.
FILTERS: dict[str, Callable[..., Any]] = {"mask": mask_id_number}


def switch_links(request: Request) -> list[dict[str, Any]]:
    """One link per language: this page, its query kept, `lang` set."""
    current = language_of(request)
    out = []
    for language in Language:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != LANG_PARAM]
        params.append((LANG_PARAM, language.value))
        query = urlencode(params)
        out.append(
            {
                "lang": language.value,
                "name": language.native_name,
                "href": f"{request.url.path}?{query}",
                "current": language is current,
            }
        )
    return out


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page in the request's language; never cached (it may hold personal data)."""
    language = language_of(request)
    html = speech_of(request).render(language, name, switch=switch_links(request), **context)
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def error_text(request: Request, reason: str, english: str, **details: Any) -> str:
    """A refusal's message for a page, in the request's language."""
    return localized_message(language_of(request), reason, english, details)

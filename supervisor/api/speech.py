"""The request's language and the app's `Speech` (see `supervisor.i18n`), for routes,
pages and error handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from supervisor.i18n import Language, Speech, Translator, translator


def speech_of(request: Request) -> Speech:
    speech: Speech = request.app.state.speech
    return speech


def language_of(request: Request) -> Language:
    """The language chosen for this request by `LanguageMiddleware` (the app's default
    where the middleware did not run)."""
    found = request.scope.get("state", {}).get("language")
    if isinstance(found, Language):
        return found
    speech = getattr(request.app.state, "speech", None)
    return speech.default if isinstance(speech, Speech) else Language.zh_CN


def translator_of(request: Request) -> Translator:
    return translator(language_of(request))


LanguageDep = Annotated[Language, Depends(language_of)]
TranslatorDep = Annotated[Translator, Depends(translator_of)]

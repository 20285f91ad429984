"""Domain and storage errors to HTTP responses: a 4xx/5xx with a machine-readable reason.

Body: {"reason": "...", "message": "...", ...details}. `reason` is a stable English
identifier; `message` follows the request's language (`localized_message`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage import exceptions as se
from supervisor.api.reasons import REASON_MESSAGES
from supervisor.api.speech import language_of
from supervisor.errors import ServiceError
from supervisor.i18n import N_, Language, translator

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every refusal: a reason a program can act on and a message a person can read."""

    model_config = ConfigDict(extra="allow")
    reason: str
    message: str


# The refusals every route may answer, documented in the OpenAPI description.
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 415, 422)
}


STORAGE_ERRORS: list[tuple[type[se.StorageError], int, str]] = [
    (se.NotFound, 404, "unknown_id"),
    (se.BrokenChain, 409, "chain_broken"),
    (se.Duplicate, 409, "duplicate"),
    (se.IntegrityViolation, 409, "conflict"),
    (se.InvalidState, 409, "invalid_state"),
    (se.ConsentRequired, 409, "no_consent"),
    (se.InvalidInput, 422, "invalid_input"),
    (se.EvidencePurged, 410, "evidence_purged"),
    (se.AppendConflict, 503, "ledger_busy"),
    (se.StorageUnavailable, 503, "storage_unavailable"),
    (se.SchemaOutdated, 503, "schema_outdated"),
    # Server-side faults: the caller can do nothing about them, and learns no detail.
    (se.TemplateKeyError, 500, "template_key_error"),
    (se.StorageConfigError, 500, "storage_misconfigured"),
]


def localized_message(
    language: Language, reason: str, english: str, details: dict[str, Any] | None = None
) -> str:
    """The message of a refusal in `language`: `english` (the message the code raised)
    in English; elsewhere the catalogue's message for `reason` filled with `details`,
    or `english` when the reason has none or a parameter is missing."""
    template = REASON_MESSAGES.get(reason)
    if language is Language.en or template is None:
        return english
    try:
        return translator(language)(template, **(details or {}))
    except (KeyError, IndexError, ValueError):
        return english


def error_response(
    request: Request, status: int, reason: str, message: str, /, **details: Any
) -> JSONResponse:
    """The error body, its message in the request's language (`message` is English)."""
    text = localized_message(language_of(request), reason, message, details)
    return JSONResponse({"reason": reason, "message": text, **details}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        response = error_response(request, exc.status, exc.reason, exc.message, **exc.details)
        if "retry_after_s" in exc.details:  # 429 and friends: when to try again
            response.headers["Retry-After"] = str(exc.details["retry_after_s"])
        return response

    @app.exception_handler(se.StorageError)
    async def _storage(request: Request, exc: se.StorageError) -> JSONResponse:
        for cls, status, reason in STORAGE_ERRORS:
            if isinstance(exc, cls):
                if status >= 500:
                    log.error("storage fault: %s", exc)
                    return error_response(
                        request, status, reason, "the service cannot use its storage"
                    )
                return error_response(request, status, reason, str(exc))
        log.error("storage error: %s", exc)
        return error_response(
            request, 500, "storage_error", "the record could not be read or written"
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        language = language_of(request)
        fields = "、".join(dict.fromkeys(str(p["field"]) for p in problems))
        if language is Language.en or not fields:
            return error_response(
                request, 422, "invalid_input", summary or "invalid request", problems=problems
            )
        # Naming the wrong fields says more than the generic message of the reason.
        message = translator(language)(N_("Please check these fields: {fields}"), fields=fields)
        body = {"reason": "invalid_input", "message": message, "problems": problems}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reasons = {
            400: "bad_request",
            401: "unauthenticated",
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }
        return error_response(
            request,
            exc.status_code,
            reasons.get(exc.status_code, "http_error"),
            str(exc.detail),
        )

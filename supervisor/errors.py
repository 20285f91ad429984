"""Domain errors of the service, each with a machine-readable reason.

They are turned into HTTP responses only in the API layer (`supervisor.api`):
`status` is the HTTP status the API answers with.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Root of the supervisor's domain errors."""

    status = 400
    reason = "bad_request"

    def __init__(self, message: str, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.details = details


class Unauthenticated(ServiceError):
    status = 401
    reason = "unauthenticated"


class Forbidden(ServiceError):
    status = 403
    reason = "forbidden"


class WrongRole(Forbidden):
    reason = "wrong_role"


class OtherInstitution(Forbidden):
    reason = "other_institution"


class NotYourData(Forbidden):
    reason = "not_your_data"


class UnknownId(ServiceError):
    status = 404
    reason = "unknown_id"


class Conflict(ServiceError):
    status = 409
    reason = "conflict"


class InvalidInput(ServiceError):
    status = 422
    reason = "invalid_input"


class CheckRefused(ServiceError):
    """A frame was examined and refused (no face, mismatch, low quality...).

    `reason` is the verdict; details carry distance, threshold and quality issues.
    """

    status = 422


class PayloadTooLarge(ServiceError):
    status = 413
    reason = "body_too_large"


class Unavailable(ServiceError):
    status = 503
    reason = "unavailable"


def image_refusal(reason: str, message: str) -> InvalidInput:
    """An upload that is not a usable image: 413 when too large, else 415."""
    err = InvalidInput(message, reason=reason)
    err.status = 413 if reason == "image_too_large" else 415
    return err

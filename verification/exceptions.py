"""Errors of the verification package, under one root.

They cross process boundaries (the verification pool), so each one pickles
with all of its fields.
"""

from __future__ import annotations

from typing import Any


class VerificationError(Exception):
    """Root of every error raised by verification/."""


class ImageError(VerificationError):
    """The input is not a usable image. `reason` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (ImageError, (self.reason, self.message))


class NotAnImage(ImageError):
    def __init__(self, message: str = "the data is not a decodable image") -> None:
        super().__init__("not_an_image", message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (NotAnImage, (self.message,))


class ImageTooLarge(ImageError):
    def __init__(self, message: str) -> None:
        super().__init__("image_too_large", message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ImageTooLarge, (self.message,))


class ModelsUnavailable(VerificationError):
    """The face model files could not be found or loaded."""


class EnrolmentRejected(VerificationError):
    """A photo cannot become a template; `verdict` and `issues` say why."""

    def __init__(self, verdict: str, issues: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.issues = issues
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (EnrolmentRejected, (self.verdict, self.issues, self.message))

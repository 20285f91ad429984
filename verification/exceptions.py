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


class ModelFileRejected(ModelsUnavailable):
    """A model file is missing or is not the file this code was measured with (its
    SHA-256 differs). Names the file and the package that ships the right one; the
    engine refuses to start rather than run on other weights or fall back to
    another engine."""

    def __init__(self, path: str, package: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.package = package
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (ModelFileRejected, (self.path, self.package, self.message))


class TemplateModelMismatch(VerificationError):
    """Templates of one face model were offered to an engine of another: their
    distances would mean nothing. The learner's templates must be re-encoded (from
    the retained enrolment photo) or the learner re-enrolled."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(
            f"templates of model {got} cannot be compared by an engine of model {expected}; "
            "re-encode the templates or re-enrol the learner"
        )
        self.expected = expected
        self.got = got

    def __reduce__(self) -> tuple[Any, ...]:
        return (TemplateModelMismatch, (self.expected, self.got))


class EnrolmentRejected(VerificationError):
    """A photo cannot become a template; `verdict` and `issues` say why."""

    def __init__(self, verdict: str, issues: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.issues = issues
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (EnrolmentRejected, (self.verdict, self.issues, self.message))

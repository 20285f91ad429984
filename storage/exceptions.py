"""Errors raised by storage. Every driver or SQLAlchemy error is translated into one of these.

`StorageError` is the root. Some errors also derive from the matching builtin
(`LookupError`, `ValueError`) so that generic callers can catch them naturally.
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of every error raised by the storage package."""


class StorageConfigError(StorageError):
    """Storage was configured wrongly (bad URL, bad key, unusable folder)."""


class StorageUnavailable(StorageError):
    """The database or the evidence folder cannot be reached or used right now."""


class EvidenceStoreUnavailable(StorageUnavailable):
    """The evidence folder cannot be written (as opposed to the database)."""


class EvidenceStoreFull(EvidenceStoreUnavailable):
    """The evidence folder has no space (or quota) left for another frame."""


class SchemaOutdated(StorageError):
    """The database schema is missing or older than this code; run `supervisor migrate`."""


class NotFound(StorageError, LookupError):
    """No row with the given identifier."""


class InvalidInput(StorageError, ValueError):
    """A value was refused before it reached the database (format, range, naive datetime)."""


class IntegrityViolation(StorageError):
    """A database constraint refused the change, or stored data is inconsistent."""


class Duplicate(IntegrityViolation):
    """A row with the same unique key already exists."""


class InvalidState(StorageError):
    """The row exists but is in a state that forbids the change (e.g. session already ended)."""


class ConsentRequired(StorageError):
    """A face template was offered for a learner with no active biometric consent."""


class TemplateKeyError(StorageError):
    """A face template cannot be decrypted: wrong key, or the row was altered."""


class TemplateModelMismatch(StorageError):
    """The learner has templates, but none of the face model a check asked for: they
    were made by another engine or model and cannot be compared with its encodings.
    The templates must be re-encoded from the enrolment photo, or the learner
    re-enrolled. `found` lists the models (`engine:hash12`) the learner has."""

    def __init__(self, learner_id: int, wanted: str, found: tuple[str, ...]) -> None:
        super().__init__(
            f"learner {learner_id} has templates of {', '.join(found)} but none of {wanted}; "
            "re-encode them (supervisor templates reencode) or re-enrol the learner"
        )
        self.learner_id = learner_id
        self.wanted = wanted
        self.found = found

    def __reduce__(self) -> tuple[object, ...]:
        return (TemplateModelMismatch, (self.learner_id, self.wanted, self.found))


class BrokenChain(StorageError):
    """An append to a chain that is broken: its stored head no longer verifies, or it
    is in the register of broken chains. Nothing was appended."""

    def __init__(self, chain_id: str, seq: int, reason: str) -> None:
        super().__init__(
            f"chain {chain_id!r} is broken (first bad event seq {seq}: {reason}); "
            "nothing is appended to it"
        )
        self.chain_id = chain_id
        self.seq = seq
        self.reason = reason


class AppendConflict(StorageError):
    """A ledger append kept losing the race for the next sequence number."""


class EvidencePurged(StorageError):
    """The evidence image existed but was deleted by retention; only its hash remains."""

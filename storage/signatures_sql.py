"""`SignatureStore`: signatures of kept frames, encrypted at rest with AES-256-GCM.

A signature is a coarse picture of the face in a kept frame (`verification.replay`):
derived from the face, it is kept like a template, as ciphertext under the template
key, bound to its row, learner and institution by the associated data
(``frame_signatures:v1:<id>:<learner id>:<institution id>``). It goes with its
learner's templates when consent is withdrawn, and with its frame at retention.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Row, delete, insert, select, update

from storage.engine import Database
from storage.exceptions import InvalidInput, TemplateKeyError
from storage.models import frame_signatures, learners
from storage.templates_sql import KEY_BYTES, NONCE_BYTES, key_id
from storage.types import StoredSignature
from storage.validate import aware, row_id, sha256_hex

KINDS: Final = frozenset({"enrolment", "check"})
MAX_BYTES: Final = 4096


class SqlSignatureStore:
    """Frame signatures in their own table. Thread-safe."""

    def __init__(self, db: Database, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise InvalidInput(f"the key must be {KEY_BYTES} bytes, got {len(key)}")
        self._db = db
        self._aead = AESGCM(key)
        self._key_id = key_id(key)

    def add(
        self,
        learner_id: int,
        evidence_sha256: str,
        kind: str,
        signature: bytes,
        retain_until: datetime,
    ) -> StoredSignature:
        """Encrypt and keep the signature of a kept frame of the learner."""
        row_id(learner_id, "learner")
        sha256_hex(evidence_sha256, "evidence_sha256")
        aware(retain_until, "retain_until")
        if kind not in KINDS:
            raise InvalidInput(f"a signature's kind is one of {sorted(KINDS)}")
        if not isinstance(signature, bytes) or not 1 <= len(signature) <= MAX_BYTES:
            raise InvalidInput(f"a signature is 1 to {MAX_BYTES} bytes")
        now = datetime.now(UTC)
        with self._db.write() as conn:
            learner = conn.execute(
                select(learners.c.institution_id).where(learners.c.id == learner_id)
            ).first()
            if learner is None:
                raise InvalidInput(f"learner {learner_id} not found")
            sid = conn.execute(
                insert(frame_signatures)
                .values(
                    learner_id=learner_id,
                    institution_id=learner.institution_id,
                    evidence_sha256=evidence_sha256,
                    kind=kind,
                    key_id=self._key_id,
                    nonce=b"",
                    ciphertext=b"",
                    created_at=now,
                    retain_until=retain_until,
                )
                .returning(frame_signatures.c.id)
            ).scalar_one()
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = self._aead.encrypt(
                nonce, signature, _aad(sid, learner_id, learner.institution_id)
            )
            conn.execute(
                update(frame_signatures)
                .where(frame_signatures.c.id == sid)
                .values(nonce=nonce, ciphertext=ciphertext)
            )
        return StoredSignature(
            sid, learner_id, learner.institution_id, evidence_sha256, kind, signature, now
        )

    def for_institution(self, institution_id: int, after_id: int = 0) -> list[StoredSignature]:
        """The kept signatures of the institution's learners with ids above `after_id`
        (all of them by default), oldest first."""
        row_id(institution_id, "institution")
        stmt = (
            select(frame_signatures)
            .where(
                frame_signatures.c.institution_id == institution_id,
                frame_signatures.c.id > after_id,
            )
            .order_by(frame_signatures.c.id)
        )
        with self._db.read() as conn:
            return [self._decrypt(r) for r in conn.execute(stmt)]

    def delete_for_learner(self, learner_id: int) -> int:
        """Delete a learner's signatures (consent withdrawn); how many."""
        row_id(learner_id, "learner")
        with self._db.write() as conn:
            result = conn.execute(
                delete(frame_signatures).where(frame_signatures.c.learner_id == learner_id)
            )
        return int(result.rowcount or 0)

    def purge_expired(self, now: datetime) -> int:
        """Delete the signatures whose frames are past retention; how many."""
        aware(now, "now")
        with self._db.write() as conn:
            result = conn.execute(
                delete(frame_signatures).where(frame_signatures.c.retain_until < now)
            )
        return int(result.rowcount or 0)

    def _decrypt(self, r: Row[Any]) -> StoredSignature:
        if r.key_id != self._key_id:
            raise TemplateKeyError(
                f"frame signature {r.id} was encrypted with key {r.key_id}, not the "
                f"configured key {self._key_id}"
            )
        try:
            plain = self._aead.decrypt(
                bytes(r.nonce), bytes(r.ciphertext), _aad(r.id, r.learner_id, r.institution_id)
            )
        except InvalidTag:
            raise TemplateKeyError(
                f"frame signature {r.id} failed authentication: the row was altered or moved"
            ) from None
        return StoredSignature(
            r.id, r.learner_id, r.institution_id, r.evidence_sha256, r.kind, plain, r.created_at
        )


def _aad(signature_id: int, learner_id: int, institution_id: int) -> bytes:
    return f"frame_signatures:v1:{signature_id}:{learner_id}:{institution_id}".encode("ascii")

"""`TemplateStore`: face templates encrypted at rest with AES-256-GCM.

Each row holds a random 96-bit nonce and the ciphertext of the vector as
little-endian float64 bytes. The associated data binds the ciphertext to its row
and learner (``face_templates:v1:<template id>:<learner id>``), so a ciphertext
copied to another row or learner fails authentication instead of decrypting.
The table holds no name or ID number; identity lives in `learners`.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.engine import Connection

from storage.engine import Database
from storage.exceptions import ConsentRequired, InvalidInput, NotFound, TemplateKeyError
from storage.models import consents, face_templates, learners
from storage.types import Template, Vector
from storage.validate import row_id, sha256_hex

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
MAX_DIMENSIONS: Final = 4_096
_DTYPE: Final = np.dtype("<f8")


def key_id(key: bytes) -> str:
    """Public fingerprint of a template key: the first 16 hex characters of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:16]


class SqlTemplateStore:
    """Face templates in their own table. Thread-safe."""

    def __init__(self, db: Database, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise InvalidInput(f"template key must be {KEY_BYTES} bytes, got {len(key)}")
        self._db = db
        self._aead = AESGCM(key)
        self._key_id = key_id(key)

    def add(self, learner_id: int, vector: Vector, evidence_sha256: str | None) -> Template:
        """Encrypt and store a template.

        Raises `ConsentRequired` without an active consent (checked under a lock in
        the same transaction, so a concurrent withdrawal cannot be overtaken),
        `NotFound` for an unknown learner, `InvalidInput` for a bad vector.
        """
        row_id(learner_id, "learner")
        plain = _vector(vector)
        if evidence_sha256 is not None:
            sha256_hex(evidence_sha256, "evidence_sha256")
        created_at = datetime.now(UTC)
        with self._db.write() as conn:
            _require_consent(conn, learner_id)
            # The id is part of the associated data, so insert first, then encrypt.
            template_id = conn.execute(
                insert(face_templates)
                .values(
                    learner_id=learner_id,
                    key_id=self._key_id,
                    nonce=b"",
                    ciphertext=b"",
                    created_at=created_at,
                    evidence_sha256=evidence_sha256,
                )
                .returning(face_templates.c.id)
            ).scalar_one()
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = self._aead.encrypt(
                nonce, plain.tobytes(), _associated_data(template_id, learner_id)
            )
            conn.execute(
                update(face_templates)
                .where(face_templates.c.id == template_id)
                .values(nonce=nonce, ciphertext=ciphertext)
            )
        stored = plain.astype(np.float64)
        stored.flags.writeable = False
        return Template(template_id, learner_id, stored, created_at, evidence_sha256)

    def for_learner(self, learner_id: int) -> list[Template]:
        row_id(learner_id, "learner")
        stmt = (
            select(face_templates)
            .where(face_templates.c.learner_id == learner_id)
            .order_by(face_templates.c.id)
        )
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        return [self._decrypt(r) for r in rows]

    def all(self) -> list[Template]:
        """Every template (for 1:N duplicate search), ordered by id."""
        with self._db.read() as conn:
            rows = conn.execute(select(face_templates).order_by(face_templates.c.id)).all()
        return [self._decrypt(r) for r in rows]

    def learner_ids(self) -> list[int]:
        """The learners who have at least one template (nothing is decrypted)."""
        with self._db.read() as conn:
            stmt = select(face_templates.c.learner_id).distinct().order_by("learner_id")
            return [int(r[0]) for r in conn.execute(stmt)]

    def delete_for_learner(self, learner_id: int) -> int:
        """Delete a learner's templates; returns how many were deleted."""
        row_id(learner_id, "learner")
        with self._db.write() as conn:
            result = conn.execute(
                delete(face_templates).where(face_templates.c.learner_id == learner_id)
            )
        return int(result.rowcount)

    def _decrypt(self, r: Row[Any]) -> Template:
        if r.key_id != self._key_id:
            raise TemplateKeyError(
                f"template {r.id} was encrypted with key {r.key_id}, but the configured "
                f"template key is {self._key_id} (wrong security.template_key?)"
            )
        try:
            plain = self._aead.decrypt(
                bytes(r.nonce), bytes(r.ciphertext), _associated_data(r.id, r.learner_id)
            )
        except InvalidTag:
            raise TemplateKeyError(
                f"template {r.id} failed authentication: the row was altered or moved "
                "to another learner"
            ) from None
        vector = np.frombuffer(plain, dtype=_DTYPE).astype(np.float64)
        vector.flags.writeable = False
        return Template(r.id, r.learner_id, vector, r.created_at, r.evidence_sha256)


def _associated_data(template_id: int, learner_id: int) -> bytes:
    return f"face_templates:v1:{template_id}:{learner_id}".encode("ascii")


def _vector(vector: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    # Returns a little-endian float64 copy: the byte layout that is encrypted.
    if not isinstance(vector, np.ndarray) or vector.ndim != 1:
        raise InvalidInput("a template must be a 1-D numpy array")
    if not 1 <= vector.shape[0] <= MAX_DIMENSIONS:
        raise InvalidInput(f"a template must have 1 to {MAX_DIMENSIONS} dimensions")
    if vector.dtype.kind not in "fiu":
        raise InvalidInput(f"a template must be numeric (got dtype {vector.dtype})")
    out = np.array(vector, dtype=_DTYPE, copy=True)
    if not np.isfinite(out).all():
        raise InvalidInput("a template must not contain NaN or infinity")
    return out


def _require_consent(conn: Connection, learner_id: int) -> None:
    if conn.execute(select(learners.c.id).where(learners.c.id == learner_id)).first() is None:
        raise NotFound(f"learner {learner_id} not found")
    active = conn.execute(
        select(consents.c.id)
        .where(consents.c.learner_id == learner_id, consents.c.withdrawn_at.is_(None))
        .with_for_update()
    ).first()
    if active is None:
        raise ConsentRequired(f"learner {learner_id} has no active biometric consent")

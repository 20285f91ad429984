"""`TemplateStore`: face templates encrypted at rest with AES-256-GCM.

Each row holds a random 96-bit nonce and the ciphertext of the vector as
little-endian float64 bytes, and the face model that made it (engine name and
the SHA-256 of its weights). The associated data binds the ciphertext to its row,
learner and model (``face_templates:v2:<template id>:<learner id>:<engine>:<model
hash>``; rows from before models were recorded keep ``v1``, without the model),
so a ciphertext copied to another row or learner, or relabelled with another
model, fails authentication instead of decrypting. The table holds no name or ID
number; identity lives in `learners`.

Templates of two models are never compared: a check asks `for_check` for the
templates of its engine's model, which refuses with `TemplateModelMismatch` when
the learner has templates of other models only.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from storage.engine import Database
from storage.exceptions import (
    ConsentRequired,
    InvalidInput,
    NotFound,
    TemplateKeyError,
    TemplateModelMismatch,
)
from storage.models import consents, face_templates, learners
from storage.types import LEGACY_DLIB_MODEL, Template, TemplateModel, Vector
from storage.validate import row_id, sha256_hex

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
MAX_DIMENSIONS: Final = 4_096
_DTYPE: Final = np.dtype("<f8")
_ENGINE: Final = re.compile(r"[a-z][a-z0-9_-]{0,15}")
AAD_V1: Final = 1  # (template id, learner id): rows from before revision 0006
AAD_V2: Final = 2  # (template id, learner id, engine, model hash)


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

    def add(
        self,
        learner_id: int,
        vector: Vector,
        evidence_sha256: str | None,
        model: TemplateModel = LEGACY_DLIB_MODEL,
    ) -> Template:
        """Encrypt and store a template made by `model`.

        `model` defaults to the dlib model every template was made with before
        models were recorded, for callers that predate them; a caller with an
        engine passes the engine's model.

        Raises `ConsentRequired` without an active consent (checked under a lock in
        the same transaction, so a concurrent withdrawal cannot be overtaken),
        `NotFound` for an unknown learner, `InvalidInput` for a bad vector or model.
        """
        row_id(learner_id, "learner")
        _model(model)
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
                    engine=model.engine,
                    model_hash=model.model_hash,
                    aad_version=AAD_V2,
                )
                .returning(face_templates.c.id)
            ).scalar_one()
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = self._aead.encrypt(
                nonce, plain.tobytes(), _associated_data(AAD_V2, template_id, learner_id, model)
            )
            conn.execute(
                update(face_templates)
                .where(face_templates.c.id == template_id)
                .values(nonce=nonce, ciphertext=ciphertext)
            )
        stored = plain.astype(np.float64)
        stored.flags.writeable = False
        return Template(template_id, learner_id, stored, created_at, evidence_sha256, model)

    def for_learner(self, learner_id: int, model: TemplateModel | None = None) -> list[Template]:
        """The learner's templates, ordered by id: only those of `model` when given."""
        row_id(learner_id, "learner")
        stmt = _of_model(
            select(face_templates).where(face_templates.c.learner_id == learner_id), model
        ).order_by(face_templates.c.id)
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        return [self._decrypt(r) for r in rows]

    def for_check(self, learner_id: int, model: TemplateModel) -> list[Template]:
        """The learner's templates that a check by an engine of `model` may compare
        with: those of `model`. [] when the learner has no template at all; raises
        `TemplateModelMismatch` when the learner has templates of other models only
        (re-encode them or re-enrol the learner), never hands those out."""
        row_id(learner_id, "learner")
        _model(model)
        stmt = (
            select(face_templates)
            .where(face_templates.c.learner_id == learner_id)
            .order_by(face_templates.c.id)
        )
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        mine = [r for r in rows if (r.engine, r.model_hash) == (model.engine, model.model_hash)]
        if rows and not mine:
            found = sorted({TemplateModel(r.engine, r.model_hash).key for r in rows})
            raise TemplateModelMismatch(learner_id, model.key, tuple(found))
        return [self._decrypt(r) for r in mine]

    def all(self, model: TemplateModel | None = None) -> list[Template]:
        """Every template (for 1:N search), ordered by id: only those of `model` when
        given (a search compares one model's templates only)."""
        stmt = _of_model(select(face_templates), model).order_by(face_templates.c.id)
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        return [self._decrypt(r) for r in rows]

    def learner_ids(self, model: TemplateModel | None = None) -> list[int]:
        """The learners who have at least one template (of `model` when given);
        nothing is decrypted."""
        stmt = _of_model(select(face_templates.c.learner_id).distinct(), model)
        with self._db.read() as conn:
            return [int(r[0]) for r in conn.execute(stmt.order_by("learner_id"))]

    def models(self) -> dict[TemplateModel, int]:
        """How many templates each model made (nothing is decrypted)."""
        stmt = select(face_templates.c.engine, face_templates.c.model_hash, func.count()).group_by(
            face_templates.c.engine, face_templates.c.model_hash
        )
        with self._db.read() as conn:
            return {TemplateModel(e, h): int(n) for e, h, n in conn.execute(stmt)}

    def learners_without(self, model: TemplateModel) -> list[int]:
        """The learners who have templates, but none of `model`: those a switch to
        `model` must re-encode or re-enrol (nothing is decrypted)."""
        _model(model)
        has = _of_model(select(face_templates.c.learner_id), model)
        stmt = (
            select(face_templates.c.learner_id)
            .distinct()
            .where(face_templates.c.learner_id.not_in(has))
            .order_by("learner_id")
        )
        with self._db.read() as conn:
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
        model = TemplateModel(r.engine, r.model_hash)
        try:
            plain = self._aead.decrypt(
                bytes(r.nonce),
                bytes(r.ciphertext),
                _associated_data(r.aad_version, r.id, r.learner_id, model),
            )
        except (InvalidTag, InvalidInput):
            raise TemplateKeyError(
                f"template {r.id} failed authentication: the row was altered, moved "
                "to another learner or relabelled with another model"
            ) from None
        vector = np.frombuffer(plain, dtype=_DTYPE).astype(np.float64)
        vector.flags.writeable = False
        return Template(r.id, r.learner_id, vector, r.created_at, r.evidence_sha256, model)


def _associated_data(
    version: int, template_id: int, learner_id: int, model: TemplateModel
) -> bytes:
    if version == AAD_V1:
        return f"face_templates:v1:{template_id}:{learner_id}".encode("ascii")
    if version == AAD_V2:
        return (
            f"face_templates:v2:{template_id}:{learner_id}:{model.engine}:{model.model_hash}"
        ).encode("ascii")
    raise InvalidInput(f"unknown associated-data version {version}")


def _model(model: Any) -> TemplateModel:
    if not isinstance(model, TemplateModel):
        raise InvalidInput("a template's model must be a TemplateModel")
    if not isinstance(model.engine, str) or not _ENGINE.fullmatch(model.engine):
        raise InvalidInput("a model's engine must be 1-16 characters of a-z 0-9 _ -")
    sha256_hex(model.model_hash, "model_hash")
    return model


def _of_model(stmt: Any, model: TemplateModel | None) -> Any:
    if model is None:
        return stmt
    _model(model)
    return stmt.where(
        face_templates.c.engine == model.engine, face_templates.c.model_hash == model.model_hash
    )


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

"""Templates know their model: the engine and the SHA-256 of its recognition weights.

A template of one face model cannot be compared with an encoding of another (the
distances mean nothing), so every row records the engine (`engine`, e.g. "sface"
or "dlib") and the hash of the weights (`model_hash`) that made it, and the store
hands a check only the templates of the check's model.

Every row written before this revision was made by the dlib engine with
face_recognition_models 0.3.0's ResNet (`dlib_face_recognition_resnet_model_v1.dat`,
SHA-256 below); they are labelled so. Their ciphertexts keep their associated data
(`aad_version` 1: template id and learner id); rows written from now on bind the
model too (`aad_version` 2), so relabelling a row's model breaks its
authentication.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The model of every earlier template (storage.types.LEGACY_DLIB_MODEL; a migration
# keeps its own copy so that it means the same whatever the code says later).
LEGACY_ENGINE = "dlib"
LEGACY_MODEL_HASH = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


def upgrade() -> None:
    # Nullable first, filled, then required: no server default stays behind, so a
    # row can never be written without saying which model made it.
    with op.batch_alter_table("face_templates") as batch:
        batch.add_column(sa.Column("engine", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("model_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("aad_version", sa.SmallInteger(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE face_templates SET engine = :engine, model_hash = :hash, aad_version = 1"
        ).bindparams(engine=LEGACY_ENGINE, hash=LEGACY_MODEL_HASH)
    )
    with op.batch_alter_table("face_templates") as batch:
        batch.alter_column("engine", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("model_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("aad_version", existing_type=sa.SmallInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("face_templates") as batch:
        batch.drop_column("aad_version")
        batch.drop_column("model_hash")
        batch.drop_column("engine")

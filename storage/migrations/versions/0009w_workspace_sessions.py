"""Server-side sessions of the inspector's workspace.

`workspace_sessions` holds one row per signed-in browser: the SHA-256 of the random
secret its cookie carries (never the secret, never the API token), the token it
signed in with, when it was last used (idle expiry), when it expires regardless
(absolute expiry) and when it was revoked (sign-out).

Revision ID: 0009w
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.coltypes import UTCDateTime

revision: str = "0009w"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_workspace_sessions_token_id_api_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_sessions")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_workspace_sessions_secret_sha256")),
    )
    for column in ("token_id", "expires_at"):
        op.create_index(
            op.f(f"ix_workspace_sessions_{column}"), "workspace_sessions", [column], unique=False
        )


def downgrade() -> None:
    for column in ("token_id", "expires_at"):
        op.drop_index(op.f(f"ix_workspace_sessions_{column}"), table_name="workspace_sessions")
    op.drop_table("workspace_sessions")

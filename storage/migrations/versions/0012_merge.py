"""Join the branches of revision 0011 (the bureau's month: records 0011r, claim review
0011c, appeals 0011a, the dispatch report 0011d).

Revision ID: 0012
Revises: 0011r, 0011c, 0011a, 0011d
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0012"
down_revision: str | Sequence[str] | None = ("0011r", "0011c", "0011a", "0011d")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""

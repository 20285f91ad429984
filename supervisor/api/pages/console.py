"""The operator console (placeholder, filled in below)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console", include_in_schema=False)

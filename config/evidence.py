"""Settings of the evidence frames kept at check moments."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from config.base import _Section


class EvidenceSettings(_Section):
    """Evidence frames kept at check moments."""

    directory: Path = Field(
        Path("var/evidence"), description="Folder of the content-addressed evidence store."
    )
    retention_days: int = Field(
        180,
        ge=1,
        le=3650,
        description="Days an evidence frame is kept; `supervisor evidence purge` deletes "
        "expired frames and keeps their hashes.",
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of stored frames.")

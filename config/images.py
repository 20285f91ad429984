"""Settings of the limits on images received from clients."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class ImageSettings(_Section):
    """Limits on images received from clients."""

    max_upload_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest accepted upload body in bytes.",
    )
    max_pixels: int = Field(
        12_000_000,
        ge=10_000,
        description="Largest accepted image in pixels (width x height), checked from the "
        "header before decoding.",
    )
    max_side: int = Field(8192, ge=64, description="Largest accepted image width or height in px.")

"""Settings of roster imports: the limits on a learners' file an operator uploads."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class RosterSettings(_Section):
    """Roster import from .xlsx and .csv files (the operator console and
    `POST /api/v1/institutions/{id}/roster-import`)."""

    max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest roster file in bytes; a larger one is refused whole (413). "
        "Every request body is also bounded by 4 x `images.max_upload_bytes`.",
    )
    max_rows: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Most learner rows one roster file may hold (the header row not "
        "counted); a file with more is refused whole.",
    )
    max_unpacked_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest total size in bytes of the parts of an .xlsx file once "
        "unpacked (an .xlsx is a ZIP): a small file that unpacks to more is refused "
        "before it is read.",
    )

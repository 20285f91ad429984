"""Settings of personal data: retention and the processing record."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class PrivacySettings(_Section):
    """Personal data: retention per kind and the data-processing record."""

    templates_days_after_course_end: int = Field(
        30,
        ge=0,
        le=3650,
        description="Days after the end of a learner's last course (the latest end of the "
        "courses they studied) after which `supervisor purge` deletes their face templates.",
    )
    access_log_days: int = Field(
        1095,
        ge=30,
        le=3650,
        description="Days an entry of the access log (who read whose data) is kept; "
        "`supervisor purge` deletes older ones.",
    )
    controller: str = Field(
        "the operator of this service",
        min_length=1,
        max_length=200,
        description="Who is responsible for the personal data, as named in the "
        "data-processing record.",
    )
    contact: str = Field(
        "the institution's training office",
        min_length=1,
        max_length=200,
        description="Where learners send data requests, as named in the record.",
    )

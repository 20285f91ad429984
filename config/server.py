"""Settings of the HTTP server and the local verification pool."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class ServerSettings(_Section):
    """HTTP server and process pool."""

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server binds.")
    verify_processes: int = Field(
        1,
        ge=1,
        le=256,
        description="Processes of the local verification pool for enrolment and roll calls "
        "(checks go to the workers; face work never runs on the event loop).",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL used in links given to learners."
    )

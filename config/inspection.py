"""Settings of the inspector's workspace and of seals."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class InspectionSettings(_Section):
    """The inspector's workspace, seals and evidence packs (the seal key is
    `security.seal_key`)."""

    seal_interval_s: float = Field(
        3600.0,
        ge=0,
        le=7 * 86400,
        description="Seconds between automatic seals over all chain heads made by the "
        "service; 0 turns them off (`supervisor ledger seal` still works).",
    )
    seal_sweep_rounds: int = Field(
        24,
        ge=1,
        le=10_000,
        description="Each seal re-hashes from their first event the chains of one share "
        "in this many, in turn, so an edit inside an already sealed part of a chain is "
        "found within this many seals (1: every seal re-hashes every event).",
    )
    spot_check_max_sample: int = Field(
        50, ge=1, le=1000, description="Most sessions one spot-check draw may sample."
    )
    session_idle_s: float = Field(
        1800.0,
        ge=1,
        le=86_400,
        description="A workspace sign-in unused for this many seconds ends (idle expiry); "
        "the browser must sign in again.",
    )
    session_absolute_s: float = Field(
        8 * 3600.0,
        ge=1,
        le=7 * 86_400,
        description="A workspace sign-in ends this many seconds after it began, however "
        "busy (absolute expiry).",
    )
    cookie_secure: bool = Field(
        False,
        description="Mark the workspace sign-in cookie Secure (only sent over HTTPS); "
        "turn on behind TLS.",
    )

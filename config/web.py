"""Settings of the web layer: what people read (language, time zone) and its
protections (headers, CSRF, rate limits)."""

from __future__ import annotations

from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WebSettings(BaseModel):
    """Language and time zone of pages, messages and exports; security headers, CSRF
    protection of cookie sign-in, and rate limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_language: Literal["zh-CN", "en"] = Field(
        "zh-CN",
        description="Language of pages, API messages and exports when the request names "
        "none it supports (no `lang` switch, no `sv_lang` cookie, no usable "
        "Accept-Language): zh-CN (Simplified Chinese) or en.",
    )
    timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone in which people read times: pages, exports, reports "
        "and the CLI (shown with the UTC offset). The ledger and the JSON API stay in "
        "UTC; months of reports and claims follow `subsidy.timezone`.",
    )

    hsts_seconds: int = Field(
        31_536_000,
        ge=0,
        le=63_072_000,
        description="max-age of Strict-Transport-Security, sent only on HTTPS requests "
        "(0: never sent).",
    )
    trust_forwarded_proto: bool = Field(
        False,
        description="Believe the X-Forwarded-Proto header (behind a TLS-terminating proxy) "
        "when deciding whether a request came over HTTPS.",
    )
    session_cookie: str = Field(
        "sv_session",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Name of the session cookie of cookie-authenticated pages; unsafe requests "
        "carrying it must pass the CSRF check.",
    )
    csrf_cookie: str = Field(
        "sv_csrf",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Name of the readable cookie whose value the page repeats in the "
        "X-CSRF-Token header (double submit).",
    )
    allowed_origins: tuple[str, ...] = Field(
        (),
        description="Other origins (scheme://host:port) whose pages may send cookie-"
        "authenticated requests; the service's own origin is always allowed.",
    )
    rate_limits: bool = Field(True, description="Enforce the rate limits below.")
    auth_failures_per_window: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Failed token attempts (unknown or revoked bearer tokens) one client "
        "address may make per window before every request from it is refused with 429.",
    )
    auth_failure_window_s: int = Field(
        300, ge=1, le=86_400, description="Window in seconds of the failed-token limit."
    )
    uploads_per_window: int = Field(
        120,
        ge=1,
        le=100_000,
        description="Image uploads (enrolment photos, check frames, fallback frames) one "
        "token may send per window.",
    )
    upload_window_s: int = Field(
        60, ge=1, le=86_400, description="Window in seconds of the upload limit."
    )
    redis_prefix: str = Field(
        "sv:rl:", min_length=1, max_length=64, description="Key prefix of rate-limit counters."
    )

    @model_validator(mode="after")
    def _valid_zone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

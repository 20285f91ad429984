"""Settings of keys and tokens, and the development-only secrets they default to."""

from __future__ import annotations

from pydantic import Field, SecretStr

from config.base import _Section

# Development-only secrets. They let `make run` work on a fresh machine; any
# environment other than development refuses to start with them.
DEV_TEMPLATE_KEY = "ZGV2ZWxvcG1lbnQtb25seS10ZW1wbGF0ZS1rZXktMzI="  # base64 of 32 bytes
DEV_SEAL_KEY = "ZGV2ZWxvcG1lbnQtb25seS1zZWFsLWtleS0zMmJ5dGU="  # base64 of 32 bytes
DEV_DEVICE_SALT = "development-only-device-salt"


class SecuritySettings(_Section):
    """Keys and tokens."""

    template_key: SecretStr = Field(
        SecretStr(DEV_TEMPLATE_KEY),
        description="Base64 of 32 random bytes: AES-256-GCM key that encrypts face templates "
        "at rest. The development default is refused outside development.",
    )
    seal_key: SecretStr = Field(
        SecretStr(DEV_SEAL_KEY),
        description="Base64 of a 32-byte Ed25519 seed that signs ledger seals. The development "
        "default is refused outside development.",
    )
    device_salt: SecretStr = Field(
        SecretStr(DEV_DEVICE_SALT),
        description="Secret salt of the keyed hash (HMAC-SHA-256) kept of a learner's device "
        "fingerprint, so the fingerprint itself is never stored. The development default "
        "is refused outside development.",
    )
    consent_text_version: str = Field(
        "2026-11-v1",
        min_length=1,
        max_length=64,
        description="Version of the biometric consent text currently shown to learners.",
    )

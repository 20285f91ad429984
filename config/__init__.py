"""Typed settings. Imports none of the service's other packages."""

from config.exceptions import SettingsError
from config.settings import (
    DatabaseSettings,
    Environment,
    EvidenceSettings,
    FaceSettings,
    ImageSettings,
    PolicySettings,
    RedisSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
    WebRTCSettings,
    load_settings,
    settings_table,
)

__all__ = [
    "DatabaseSettings",
    "Environment",
    "EvidenceSettings",
    "FaceSettings",
    "ImageSettings",
    "PolicySettings",
    "RedisSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "WebRTCSettings",
    "load_settings",
    "settings_table",
]

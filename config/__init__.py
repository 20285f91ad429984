"""Typed settings. Imports none of the service's other packages."""

from config.exceptions import SettingsError
from config.settings import (
    ClassroomSettings,
    DatabaseSettings,
    Environment,
    EvidenceSettings,
    FaceSettings,
    ImageSettings,
    InspectionSettings,
    LivenessSettings,
    PolicySettings,
    RedisSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
    WebRTCSettings,
    WorkerSettings,
    load_settings,
    settings_table,
)
from config.web import WebSettings

__all__ = [
    "ClassroomSettings",
    "DatabaseSettings",
    "Environment",
    "EvidenceSettings",
    "FaceSettings",
    "ImageSettings",
    "InspectionSettings",
    "LivenessSettings",
    "PolicySettings",
    "RedisSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "WebRTCSettings",
    "WebSettings",
    "WorkerSettings",
    "load_settings",
    "settings_table",
]

"""Camera sources of a class: which URLs are accepted, how they are shown, how one opens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from capture.exceptions import TargetRefused
from capture.netguard import check_target
from capture.protocols import CameraFeed
from capture.stream import StreamSource, redact_url
from capture.types import NetworkPolicy, SourceStatus
from config import ClassroomSettings, Settings
from storage.types import CameraSource
from supervisor.errors import InvalidInput

CAMERA_SCHEMES: Final = frozenset({"rtsp", "rtsps", "http", "https", "file"})


# Default ports of the service's own backends, when their URL names none.
_DEFAULT_PORTS: Final = {"postgresql": 5432, "redis": 6379, "rediss": 6379}


def _port_of(url: str | None) -> int | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unparseable URL names no port to protect
        return None
    if port is None and parts.hostname:
        return _DEFAULT_PORTS.get(parts.scheme.split("+", 1)[0])
    return port


def camera_policy(settings: Settings) -> NetworkPolicy:
    """Where this service's cameras may be: `classroom.camera_networks`, and never on
    the service's own ports (its HTTP port, its database's and its Redis's)."""
    own = {settings.server.port}
    for url in (settings.database.url, settings.redis.url):
        port = _port_of(url)
        if port is not None:
            own.add(port)
    return NetworkPolicy(
        tuple(settings.classroom.camera_networks),
        frozenset(own),
        settings.classroom.camera_public_addresses,
    )


def check_camera_url(
    url: str, settings: Settings, *, may_use_files: bool, policy: NetworkPolicy | None = None
) -> str:
    """The URL if it is an acceptable camera source; `InvalidInput` says why not.

    A network URL's host is resolved and every address checked (`capture.netguard`):
    blocking, so call it in a thread. Video files (`file://`) are for admins only
    (`may_use_files`), inside `classroom.file_sources_dir`."""
    url = url.strip()
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput(
            "the camera URL is empty or contains spaces", reason="invalid_camera_url"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput("the camera URL cannot be parsed", reason="invalid_camera_url") from None
    scheme = parts.scheme.lower()
    if scheme not in CAMERA_SCHEMES:
        raise InvalidInput(
            "a camera URL must be rtsp://, rtsps://, http://, https:// or file://",
            reason="invalid_camera_url",
        )
    if scheme != "file":
        try:
            check_target(url, policy or camera_policy(settings))
        except TargetRefused as exc:
            raise InvalidInput(exc.message, reason=exc.reason) from None
        return url
    if not may_use_files:
        raise InvalidInput(
            "only an admin may register a video file as a camera source",
            reason="file_source_refused",
        )
    file_sources_dir = settings.classroom.file_sources_dir
    if file_sources_dir is None:
        raise InvalidInput(
            "video files are not accepted as camera sources on this server "
            "(classroom.file_sources_dir is not set)",
            reason="file_source_refused",
        )
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput("a file URL must name a local file", reason="invalid_camera_url")
    base = file_sources_dir.expanduser().resolve()
    path = Path(parts.path).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise InvalidInput(
            "the file is not a video file inside the folder of file sources",
            reason="file_source_refused",
        )
    return url


def masked_url(camera: CameraSource) -> str:
    """The camera's URL as shown to people: without credentials or query."""
    return redact_url(camera.url)


def open_camera(
    source_id: str,
    url: str,
    settings: ClassroomSettings,
    clock: Callable[[], datetime],
    on_status: Callable[[SourceStatus], None],
    policy: NetworkPolicy,
) -> CameraFeed:
    """A camera feed of the URL (not started), reporting every change of its state;
    a network camera's address is checked against `policy` at every connection."""
    return StreamSource(source_id, url, settings, clock, on_status, policy)

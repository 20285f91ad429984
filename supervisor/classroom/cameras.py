"""Camera sources of a class: which URLs are accepted, how they are shown, how one opens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from capture.protocols import CameraFeed
from capture.stream import StreamSource, redact_url
from capture.types import SourceStatus
from config import ClassroomSettings
from storage.types import CameraSource
from supervisor.errors import InvalidInput

CAMERA_SCHEMES: Final = frozenset({"rtsp", "rtsps", "http", "https", "file"})


def check_camera_url(url: str, file_sources_dir: Path | None) -> str:
    """The URL if it is an acceptable camera source; `InvalidInput` says why not."""
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
            host = parts.hostname
        except ValueError:
            host = None
        if not host:
            raise InvalidInput("the camera URL has no host", reason="invalid_camera_url")
        return url
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
) -> CameraFeed:
    """A camera feed of the URL (not started), reporting every change of its state."""
    return StreamSource(source_id, url, settings, clock, on_status)

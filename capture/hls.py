"""HLS cameras: every URL a playlist names is checked before it is fetched.

An HLS camera (an http(s) URL whose path ends in `.m3u8`) is a playlist naming
segment URLs, possibly on other hosts, and reloaded while it plays. FFmpeg's HLS
demuxer would open each of them with its own HTTP client, unchecked. Here FFmpeg
opens nothing itself: PyAV's `io_open` hook hands every open (the playlist, its
reloads, variant playlists, segments, initialisation sections) to `HlsOpener`, which
- accepts http and https URLs only (no `file:`, `data:`, `crypto+` or other
  protocols: encrypted HLS is not offered);
- resolves the host and checks every address and the port with
  `netguard.check_target` and the camera's policy, at every fetch;
- connects to the checked address, sends the URL's host name in `Host` (TLS: as SNI;
  the certificate is not verified, as FFmpeg does not verify by default), and
  follows no redirect (a 3xx is a failure);
- bounds each fetch in size (`MAX_FETCH_BYTES`) and time (the deadline given), and
  returns the whole body from memory.
Anything refused or failed makes the open fail; a refusal is remembered
(`refused`), every later open fails at once, and the reader ends the read as the
generic network failure. The cause goes to the log.

Blocking (resolution, sockets): runs in the camera's reader thread, inside FFmpeg's
calls, never on the event loop.
"""

from __future__ import annotations

import base64
import http.client
import io
import ipaddress
import logging
import socket
import ssl
import threading
import time
from typing import Final
from urllib.parse import unquote, urlsplit

from capture.exceptions import TargetRefused
from capture.netguard import check_target, host_header, split_target
from capture.types import CheckedTarget, NetworkPolicy

log = logging.getLogger(__name__)

MAX_FETCH_BYTES: Final = 32 * 1024 * 1024  # one segment: minutes of a camera's video
_CHUNK: Final = 64 * 1024
_AVIO_FLAG_WRITE: Final = 2


def is_hls(url: str) -> bool:
    """Whether a camera URL is an HLS playlist (http(s), path ending in `.m3u8`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and parts.path.lower().endswith(".m3u8")


def _server_name(host: str) -> str | None:
    """The name to send as SNI: the host, unless it is an address."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return None


class FetchRefused(Exception):
    """A URL named by a playlist was refused or could not be fetched."""


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket already connected to the checked address."""

    def __init__(self, sock: socket.socket, host: str, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # already connected, to the address that was checked
        pass


class HlsOpener:
    """PyAV's `io_open` for one HLS read: checks and fetches every URL FFmpeg opens."""

    def __init__(
        self,
        policy: NetworkPolicy | None,
        timeout: float,
        deadline_s: float,
        name: str,
        stopped: threading.Event | None = None,
    ) -> None:
        """`policy` None checks nothing (tests on loopback); `timeout` per socket
        operation; `deadline_s` for a whole fetch; `name` (redacted) for the log;
        `stopped` set ends a fetch at its next read."""
        self._stopped = stopped or threading.Event()
        self._policy = policy
        self._timeout = timeout
        self._deadline_s = deadline_s
        self._name = name
        self.refused: str | None = None

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> io.BytesIO:
        if self.refused is not None:
            raise FetchRefused(self.refused)
        try:
            if flags & _AVIO_FLAG_WRITE:
                raise FetchRefused("a write")
            body = self._fetch(url)
        except (FetchRefused, TargetRefused) as exc:
            self.refused = str(exc)
            log.warning("hls camera %s: a playlist URL refused: %s", self._name, exc)
            raise FetchRefused(self.refused) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.refused = f"{type(exc).__name__}: {exc}"[:300]
            log.info("hls camera %s: a fetch failed: %s", self._name, self.refused)
            raise FetchRefused(self.refused) from None
        return io.BytesIO(body)

    def _fetch(self, url: str) -> bytes:
        if self._policy is not None:
            checked = check_target(url, self._policy)
        else:
            scheme, host, port = split_target(url)
            checked = CheckedTarget(url, scheme, host, port, ())
        if checked.scheme not in ("http", "https"):
            raise FetchRefused(f"a {checked.scheme}: URL (only http and https are fetched)")
        deadline = time.monotonic() + self._deadline_s
        address = str(checked.addresses[0]) if checked.addresses else checked.host
        sock = socket.create_connection((address, checked.port), timeout=self._timeout)
        try:
            if checked.scheme == "https":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=_server_name(checked.host))
            return self._get(sock, checked, deadline)
        finally:
            sock.close()

    def _get(self, sock: socket.socket, checked: CheckedTarget, deadline: float) -> bytes:
        parts = urlsplit(checked.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Host": host_header(checked),
            "User-Agent": "supervisor-camera",
            "Accept": "*/*",
            "Connection": "close",
        }
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        connection = _PinnedConnection(sock, checked.host, self._timeout)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise FetchRefused(f"a redirect ({response.status}), never followed")
        if response.status != 200:
            raise FetchRefused(f"HTTP status {response.status}")
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_FETCH_BYTES:
            raise FetchRefused("a body over the fetch bound")
        body = bytearray()
        while True:
            if time.monotonic() > deadline:
                raise FetchRefused("a fetch over its time bound")
            if self._stopped.is_set():
                raise FetchRefused("the camera is stopping")
            chunk = response.read1(_CHUNK)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > MAX_FETCH_BYTES:
                raise FetchRefused("a body over the fetch bound")

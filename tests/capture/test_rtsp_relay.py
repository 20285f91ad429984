"""RTSP cameras under a network policy go through the relay: a real stream plays, a
redirect (which FFmpeg would follow anywhere) and a control URL naming another host
cut the connection, and the camera reads as the generic network failure."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image as PILImage

from capture.netguard import check_target
from capture.rtsp_relay import RtspRelay
from capture.stream import NETWORK_FAILURE, StreamSource
from capture.types import NetworkPolicy, SourceState
from config import ClassroomSettings
from tests import classgen, imagegen
from tests.capture.rtsp_server import RtspCamera, rtp_mjpeg
from tests.classgen import Presence

FAST = ClassroomSettings(
    camera_open_timeout_s=2.0,
    camera_read_timeout_s=1.0,
    camera_backoff_initial_s=0.1,
    camera_backoff_max_s=0.4,
    camera_unreachable_after=2,
)
CAMERA_ONLY = NetworkPolicy((ipaddress.ip_network("127.0.0.1/32"),), frozenset())


def clock() -> datetime:
    return datetime.now(UTC)


class Listener:
    """A port the test owns on 127.0.0.1 that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.sock.close()


@pytest.fixture(scope="module")
def packets() -> list[tuple[float, bytes]]:
    """30 s of the classroom with the astronaut in it (ten rendered frames, repeated),
    10 frames a second, 320x176 (RTP JPEG sizes are multiples of 8): long enough to
    outlast a slow open on a loaded machine."""
    person = classgen.person("Eileen Collins", imagegen.astronaut())
    images = []
    for i in range(10):
        full = classgen.render([Presence(person, 1, 0, 99)], i / 10)
        small = PILImage.fromarray(full).resize((320, 176))
        images.append(np.asarray(small, dtype=np.uint8))
    return rtp_mjpeg([images[i % 10] for i in range(300)], 10)


async def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def server_tls(folder: Path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate (as cameras have)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camera.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.parametrize("scheme", ["rtsp", "rtsps"])
async def test_an_rtsp_stream_plays_through_the_relay(
    packets: list[tuple[float, bytes]], scheme: str, tmp_path: Path
) -> None:
    tls = server_tls(tmp_path) if scheme == "rtsps" else None
    with RtspCamera(packets, tls=tls) as camera:
        assert camera.url.startswith(f"{scheme}://")
        # FFmpeg reads about 2 s of a 10-fps RTP stream before its open returns (it
        # measures the frame rate): a loaded machine needs more than FAST's 2 s.
        settings = FAST.model_copy(update={"camera_open_timeout_s": 8.0})
        source = StreamSource("cam-rtsp", camera.url, settings, clock, policy=CAMERA_ONLY)
        await source.start()
        try:
            frame = await source.next_frame(15)
            assert frame.image.shape == (176, 320, 3)
            assert source.status().state is SourceState.live
            assert camera.connections == 1
            assert camera.requests[:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
        finally:
            started = time.monotonic()
            await source.stop()
            assert time.monotonic() - started < 1.0  # the relay closes with the reader


async def test_an_rtsp_redirect_is_not_followed() -> None:
    # The target is allowed by the policy too: a redirect is refused as such, wherever
    # it leads (FFmpeg would follow it to any host, unchecked).
    with RtspCamera() as camera, Listener() as elsewhere:
        camera.redirect_to = f"rtsp://127.0.0.1:{elsewhere.port}/"
        source = StreamSource("cam-redirect", camera.url, FAST, clock, policy=CAMERA_ONLY)
        await source.start()
        try:
            await _until(lambda: source.status().state is SourceState.unreachable, 10)
            await asyncio.sleep(0.5)
            assert camera.requests  # it was asked, and answered with a redirect
            assert elsewhere.accepted == 0  # never followed
            assert source.status().last_error == NETWORK_FAILURE
        finally:
            await source.stop()


async def test_a_control_url_naming_another_host_is_refused(
    packets: list[tuple[float, bytes]],
) -> None:
    with RtspCamera(packets) as camera:
        camera.control = "rtsp://10.9.8.7:554/live/trackID=0"
        source = StreamSource("cam-control", camera.url, FAST, clock, policy=CAMERA_ONLY)
        await source.start()
        try:
            await _until(lambda: source.status().state is SourceState.unreachable, 10)
            assert "SETUP" not in camera.requests
            assert source.status().last_error == NETWORK_FAILURE
        finally:
            await source.stop()


def test_the_relay_serves_only_this_process() -> None:
    # Another local process that connects to the relay's port first is turned away;
    # the reader's own connection (here the test's) is then relayed to the camera.
    with RtspCamera() as camera:
        relay = RtspRelay(check_target(camera.url, CAMERA_ONLY), 2.0)
        url = relay.open()
        try:
            port = urlsplit(url).port
            assert urlsplit(url).hostname == "127.0.0.1" and port != camera.port
            code = (
                f"import socket; s = socket.create_connection(('127.0.0.1', {port})); "
                "s.settimeout(3); print(repr(s.recv(100)))"
            )
            other = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=10
            )
            assert other.stdout.strip() == "b''"  # closed at once, nothing relayed
            with socket.create_connection(("127.0.0.1", port), timeout=3) as own:
                own.sendall(b"OPTIONS " + url.encode() + b" RTSP/1.0\r\nCSeq: 1\r\n\r\n")
                assert own.recv(100).startswith(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n")
            assert camera.requests == ["OPTIONS"]
        finally:
            relay.close()
            relay.join(2)

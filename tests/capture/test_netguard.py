"""Where a network camera may be: addresses checked after name resolution, at every
connection, connections pinned to the checked address, redirects never followed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from capture.exceptions import TargetRefused
from capture.netguard import address_problem, check_target, pinned_url
from capture.stream import NETWORK_FAILURE, TARGET_REFUSED, StreamSource
from capture.types import NetworkPolicy, SourceState
from config import ClassroomSettings
from tests import classgen, imagegen
from tests.classgen import MjpegCamera, Presence

FAST = ClassroomSettings(
    camera_open_timeout_s=2.0,
    camera_read_timeout_s=1.0,
    camera_backoff_initial_s=0.1,
    camera_backoff_max_s=0.4,
    camera_unreachable_after=2,
)
SITE = NetworkPolicy((ipaddress.ip_network("10.20.0.0/16"),), frozenset({8000, 6379}))
LOOPBACK = NetworkPolicy((ipaddress.ip_network("127.0.0.0/8"),), frozenset())


def clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], float]:
    person = classgen.person("Eileen Collins", imagegen.astronaut())
    path = tmp_path_factory.mktemp("video") / "room.mp4"
    return classgen.jpeg_frames(classgen.write_video(path, [Presence(person, 1, 0, 99)], 2))


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("192.168.1.10", "private"),
        ("10.99.0.1", "private"),
        ("100.64.0.1", "private"),  # shared address space
        ("10.20.3.4", None),  # the site's camera network
        ("::ffff:10.20.3.4", None),
        ("8.8.8.8", None),  # public
    ],
)
def test_addresses(address: str, refused: str | None) -> None:
    problem = address_problem(ipaddress.ip_address(address), SITE)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem, problem


def test_listing_a_network_never_opens_metadata_or_link_local() -> None:
    everything = NetworkPolicy(
        (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")), frozenset()
    )
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.1.1", "224.0.0.1"):
        assert address_problem(ipaddress.ip_address(address), everything) is not None
    assert address_problem(ipaddress.ip_address("8.8.8.8"), SITE) is None
    closed = NetworkPolicy(SITE.allowed_networks, frozenset(), allow_public=False)
    assert "public" in (address_problem(ipaddress.ip_address("8.8.8.8"), closed) or "")


def test_names_are_checked_by_what_they_resolve_to() -> None:
    # Real resolution: `localhost` and this machine's own name (from /etc/hosts) are
    # loopback, however they are spelt.
    for url in (
        "http://localhost:8080/video",
        f"rtsp://{socket.gethostname()}/live",
        "http://127.1/x",
        "http://[::ffff:127.0.0.1]/x",
    ):
        with pytest.raises(TargetRefused) as caught:
            check_target(url, SITE)
        assert caught.value.reason == "camera_address_refused", url
    with pytest.raises(TargetRefused) as caught:
        check_target("rtsp://no-such-camera.invalid/live", SITE)
    assert caught.value.reason == "camera_host_unresolved"
    for port in (8000, 6379):
        with pytest.raises(TargetRefused) as caught:
            check_target(f"http://10.20.0.5:{port}/", SITE)
        assert caught.value.reason == "camera_port_refused"
    checked = check_target("rtsp://admin:pw@10.20.0.5/live?x=1", SITE)
    assert pinned_url(checked) == "rtsp://admin:pw@10.20.0.5:554/live?x=1"


async def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_a_loopback_camera_is_refused_before_any_connection(
    frames: tuple[list[bytes], float],
) -> None:
    jpegs, fps = frames
    with MjpegCamera(jpegs, fps) as camera:
        source = StreamSource("cam-lo", camera.url, FAST, clock, policy=SITE)
        await source.start()
        try:
            await _until(lambda: source.status().state is SourceState.unreachable, 5)
            assert source.status().last_error == TARGET_REFUSED
            await asyncio.sleep(0.5)
            assert camera.hosts == []  # never contacted
        finally:
            await source.stop()


async def test_the_connection_goes_to_the_checked_address_with_the_cameras_name(
    frames: tuple[list[bytes], float],
) -> None:
    jpegs, fps = frames
    with MjpegCamera(jpegs, fps) as camera:
        url = f"http://localhost:{camera.port}/stream.mjpg"
        source = StreamSource("cam-named", url, FAST, clock, policy=LOOPBACK)
        await source.start()
        try:
            assert (await source.next_frame(5)).image.ndim == 3
            assert camera.hosts and set(camera.hosts) == {f"localhost:{camera.port}"}
        finally:
            await source.stop()


async def test_redirects_are_not_followed(frames: tuple[list[bytes], float]) -> None:
    jpegs, fps = frames
    with MjpegCamera(jpegs, fps) as target, MjpegCamera(jpegs, fps) as front:
        front.redirect_to = target.url
        for policy in (None, LOOPBACK):
            source = StreamSource("cam-redirect", front.url, FAST, clock, policy=policy)
            await source.start()
            try:
                await _until(lambda: source.status().state is SourceState.unreachable, 5)  # noqa: B023
                await asyncio.sleep(0.5)
                assert front.hosts and target.hosts == []
                assert source.status().state is not SourceState.live
            finally:
                await source.stop()


async def test_playlists_are_not_read_by_ffmpeg(frames: tuple[list[bytes], float]) -> None:
    # An HLS playlist names more URLs: FFmpeg's own HTTP client would fetch them
    # unchecked. A camera is read as HLS only when its URL names a playlist (`.m3u8`),
    # and then every URL goes through the checking opener (tests/capture/test_hls.py);
    # a playlist served at any other URL is not read at all.
    jpegs, fps = frames
    with MjpegCamera(jpegs, fps) as target, MjpegCamera(jpegs, fps) as front:
        front.playlist_to = f"http://127.0.0.1:{target.port}/segment0.ts"
        source = StreamSource("cam-hls", front.url + "?.m3u8", FAST, clock, policy=LOOPBACK)
        await source.start()
        try:
            await _until(lambda: source.status().state is SourceState.unreachable, 5)
            await asyncio.sleep(0.5)
            assert front.hosts and target.hosts == []
        finally:
            await source.stop()


async def test_a_name_that_rebinds_to_loopback_is_refused_at_connection(
    frames: tuple[list[bytes], float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS is a process boundary we cannot run here (an authoritative server whose
    # answer changes): the resolver is replaced for one name, which answers with the
    # site's camera network first (as at registration) and with loopback afterwards.
    jpegs, fps = frames
    real = socket.getaddrinfo
    answers = ["10.20.0.7", "127.0.0.1"]

    def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "camera.rebind.test":
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = NetworkPolicy((ipaddress.ip_network("10.20.0.0/16"),), frozenset(), allow_public=False)
    with MjpegCamera(jpegs, fps) as camera:
        url = f"http://camera.rebind.test:{camera.port}/stream.mjpg"
        check_target(url, policy)  # registration: 10.20.0.7, accepted
        source = StreamSource("cam-rebind", url, FAST, clock, policy=policy)
        await source.start()
        try:
            await _until(lambda: source.status().state is SourceState.unreachable, 5)
            assert source.status().last_error == TARGET_REFUSED
            await asyncio.sleep(0.5)
            assert camera.hosts == []
        finally:
            await source.stop()


class SilentPort:
    """A port that accepts connections and never says anything (the kernel completes
    the handshake for the listening socket; nobody reads or writes)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0), backlog=16)
        self.port: int = self.sock.getsockname()[1]

    def __enter__(self) -> SilentPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
async def test_a_closed_port_fails_no_sooner_than_a_silent_one(scheme: str) -> None:
    # Timing must not tell port states apart: a refused connection used to fail at
    # once and a silent port only after the open timeout. Both now report after it.
    settings = FAST.model_copy(update={"camera_open_timeout_s": 1.0})
    closed_port = classgen.free_port()
    with SilentPort() as silent:
        took: dict[str, float] = {}

        async def failure_time(name: str, port: int) -> None:
            url = f"{scheme}://127.0.0.1:{port}/stream"
            source = StreamSource(f"cam-{name}", url, settings, clock, policy=LOOPBACK)
            started = time.monotonic()
            await source.start()
            try:
                await _until(lambda: source.status().state is SourceState.unreachable, 10)
                took[name] = time.monotonic() - started
                assert source.status().last_error == NETWORK_FAILURE
            finally:
                stopping = time.monotonic()
                await source.stop()
                assert time.monotonic() - stopping < 1.0  # waiting never delays stop()

        await asyncio.gather(
            failure_time("closed", closed_port), failure_time("silent", silent.port)
        )
    assert took["closed"] >= 0.8, took  # no longer near-instant
    assert abs(took["closed"] - took["silent"]) < 0.6, took
    # A stop while a failure is being held back ends the wait at once.
    source = StreamSource(
        "cam-held", f"{scheme}://127.0.0.1:{closed_port}/", settings, clock, policy=LOOPBACK
    )
    await source.start()
    await asyncio.sleep(0.3)
    stopping = time.monotonic()
    await source.stop()
    assert time.monotonic() - stopping < 0.5
    assert source.status().state is SourceState.stopped

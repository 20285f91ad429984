"""Camera URLs through the running service, with the default camera networks: every
URL that leads to the service's own network is refused at registration (422 with a
reason), checked again when supervision connects, and a camera's failure never tells
an open port from a closed one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from capture.stream import TARGET_REFUSED
from config import ClassroomSettings
from tests import imagegen
from tests.classgen import MjpegCamera
from tests.supervisor.classroom_helpers import (
    fast_service,
    make_class,
    status,
    wait_for,
)
from tests.supervisor.conftest import Service

DEFAULT_NETWORKS = tuple(str(n) for n in ClassroomSettings().camera_networks)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from fast_service(
        tmp_path_factory.mktemp("camera-urls"), camera_networks=DEFAULT_NETWORKS
    )


def _class(svc: Service) -> tuple[int, str]:
    c = make_class(svc, {})
    return c.class_id, c.operator


def test_hostile_camera_urls_are_refused_with_a_reason(svc: Service) -> None:
    class_id, op = _class(svc)
    cams = f"/api/v1/classes/{class_id}/cameras"
    own_port = svc.settings.server.port
    hostile = {
        "http://127.0.0.1:6379/": "camera_address_refused",  # Redis on this machine
        "http://169.254.169.254/latest/meta-data/iam/": "camera_address_refused",
        "http://100.100.100.200/latest/meta-data/": "camera_address_refused",
        "http://[fd00:ec2::254]/latest/meta-data/": "camera_address_refused",
        "http://169.254.1.1/": "camera_address_refused",
        "http://localhost:8080/video": "camera_address_refused",
        f"rtsp://{socket.gethostname()}/live": "camera_address_refused",  # /etc/hosts
        "http://127.1:8080/": "camera_address_refused",
        "http://[::1]:8080/": "camera_address_refused",
        "http://[::ffff:127.0.0.1]:8080/": "camera_address_refused",
        "http://0.0.0.0:8080/": "camera_address_refused",
        "rtsp://224.0.0.251/": "camera_address_refused",
        "http://192.0.2.10/": "camera_address_refused",  # not global, not listed
        f"http://10.1.2.3:{own_port}/api/v1/institutions": "camera_port_refused",
        f"{svc.url}/api/v1/institutions": "camera_port_refused",  # the service itself
        "rtsp://no-such-camera.invalid/live": "camera_host_unresolved",
        "gopher://10.1.2.3/": "invalid_camera_url",
        "ftp://10.1.2.3/x": "invalid_camera_url",
        "file:///etc/passwd": "file_source_refused",
    }
    before = svc.event_count()
    for url, reason in hostile.items():
        r = svc.call("POST", cams, op, json={"url": url, "label": "x"})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["reason"] == reason, (url, r.json())
        assert r.json()["message"], url
    assert svc.call("GET", cams, op).json() == []
    assert svc.event_count() == before
    # A camera on the site's network is accepted.
    r = svc.call("POST", cams, op, json={"url": "rtsp://10.1.2.3/live", "label": "front"})
    assert r.status_code == 201, r.text


def test_video_files_are_for_admins_only(svc: Service) -> None:
    class_id, op = _class(svc)
    folder = svc.settings.classroom.file_sources_dir
    assert folder is not None
    video = folder / "room.mp4"
    video.write_bytes(b"\x00")
    cams = f"/api/v1/classes/{class_id}/cameras"
    r = svc.call("POST", cams, op, json={"url": video.as_uri(), "label": "file"})
    assert r.status_code == 422 and r.json()["reason"] == "file_source_refused"
    r = svc.call("POST", cams, svc.admin, json={"url": video.as_uri(), "label": "file"})
    assert r.status_code == 201, r.text


def test_a_name_that_rebinds_after_registration_is_refused_when_supervision_starts(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS is a process boundary we cannot run here (an authoritative server whose
    # answer changes between two lookups): the service runs in this process, and the
    # resolver is replaced for one name. It answers with the camera network at
    # registration and with loopback afterwards (DNS rebinding).
    real = socket.getaddrinfo
    answers = ["10.20.0.7", "127.0.0.1"]

    def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "camera.rebind.test":
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    frame = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))
    with MjpegCamera([frame], 5.0) as camera:
        url = f"http://camera.rebind.test:{camera.port}/stream.mjpg"
        c = make_class(svc, {"Grace Hopper": imagegen.grace_hopper()}, cameras=(url,))
        assert answers == ["127.0.0.1"]  # registration saw the camera network
        r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/start", c.operator)
        assert r.status_code == 200, r.text
        try:
            cam = wait_for(
                lambda: (
                    (st := status(svc, c))["cameras"][0]["state"] == "unreachable"
                    and st["cameras"][0]
                ),
                15,
                "the camera refused",
            )
            assert cam["last_error"] == TARGET_REFUSED
            assert camera.hosts == []  # the service never connected to loopback
        finally:
            r = svc.call("POST", f"/api/v1/classes/{c.class_id}/supervision/stop", c.operator)
            assert r.status_code == 200, r.text

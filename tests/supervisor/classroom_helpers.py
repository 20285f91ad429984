"""Helpers of the classroom tests: a service with short roll-call intervals, classes
built through the API, and reading timelines back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from storage.types import Role
from tests import imagegen
from tests.supervisor.conftest import (
    TEST_CAMERA_NETWORKS,
    Service,
    _service,
    institution_body,
    new_id_number,
)

# Roll calls about every second (CPU per roll call is about half a second here),
# cameras that give up quickly and come back quickly.
FAST_CLASSROOM: dict[str, object] = {
    "interval_mean_s": 1.0,
    "interval_min_s": 0.6,
    "interval_max_s": 1.4,
    "assessment_interval_mean_s": 0.8,
    "assessment_interval_min_s": 0.5,
    "assessment_interval_max_s": 1.1,
    "max_credited_gap_s": 12.0,
    "frames_per_roll_call": 2,
    "frame_spacing_s": 0.2,
    "frame_timeout_s": 3.0,
    "camera_open_timeout_s": 3.0,
    "camera_read_timeout_s": 1.5,
    "camera_backoff_initial_s": 0.2,
    "camera_backoff_max_s": 0.8,
    "camera_unreachable_after": 2,
    "early_start_s": 60.0,
    "lease_s": 6.0,
    "camera_networks": TEST_CAMERA_NETWORKS,
}


def fast_service(tmp: Path, **classroom: object) -> Iterator[Service]:
    """A service on SQLite whose classes are sampled densely; video files may be
    used as cameras from `tmp / "videos"`."""
    videos = tmp / "videos"
    videos.mkdir(exist_ok=True)
    settings: dict[str, object] = {
        **FAST_CLASSROOM,
        "file_sources_dir": str(videos),
        **classroom,
    }
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        classroom=settings,
        face={"enrol_jitters": 2},
    )


@dataclass
class Classroom:
    class_id: int
    institution_id: int
    course_id: int
    operator: str
    learners: dict[str, int]  # name -> learner id


def jpeg(image: np.ndarray) -> bytes:
    return imagegen.jpeg_bytes(image)


def make_class(
    svc: Service,
    photos: dict[str, np.ndarray],
    mode: str = "training",
    cameras: tuple[str, ...] = (),
    minutes: float = 30,
) -> Classroom:
    """A classroom course, a class starting now, and one learner per photo, each with
    consent and an enrolled face, on the roster; then the cameras and the filing."""
    r = svc.call(
        "POST", "/api/v1/institutions", svc.admin, json=institution_body("Vocational school")
    )
    assert r.status_code == 201, r.text
    inst = r.json()["id"]
    operator = svc.token(Role.operator, inst)
    r = svc.call(
        "POST",
        "/api/v1/courses",
        operator,
        json={
            "institution_id": inst,
            "name": "Welder, level 3",
            "required_hours": 24,
            "delivery_mode": "classroom",
        },
    )
    assert r.status_code == 201, r.text
    course = r.json()["id"]
    now = datetime.now(UTC)
    r = svc.call(
        "POST",
        "/api/v1/classes",
        operator,
        json={
            "course_id": course,
            "name": "Welding, morning group",
            "mode": mode,
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(minutes=minutes)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    class_id = r.json()["id"]
    learners: dict[str, int] = {}
    for name, photo in photos.items():
        learners[name] = enrolled_learner(svc, inst, operator, name, photo)
    if learners:
        r = svc.call(
            "POST",
            f"/api/v1/classes/{class_id}/roster",
            operator,
            json={"learner_ids": list(learners.values())},
        )
        assert r.status_code == 200, r.text
    for i, url in enumerate(cameras):
        # Video files are registered by an admin only; network cameras by the operator.
        r = svc.call(
            "POST",
            f"/api/v1/classes/{class_id}/cameras",
            svc.admin if url.startswith("file:") else operator,
            json={"url": url, "label": f"camera {i + 1}"},
        )
        assert r.status_code == 201, r.text
    if learners:
        r = svc.call(
            "POST",
            f"/api/v1/classes/{class_id}/filing",
            operator,
            json={
                "teacher": "Wang Fang",
                "teaching_plan": "Safety, MMA welding of butt joints, inspection.",
                "assessment_plan": "Practical: one butt joint, visual and bend test.",
            },
        )
        assert r.status_code == 201, r.text
    return Classroom(class_id, inst, course, operator, learners)


def enrolled_learner(svc: Service, inst: int, operator: str, name: str, photo: np.ndarray) -> int:
    r = svc.call(
        "POST",
        "/api/v1/learners",
        operator,
        json={"institution_id": inst, "full_name": name, "id_number": new_id_number()},
    )
    assert r.status_code == 201, r.text
    learner_id: int = r.json()["id"]
    r = svc.call("POST", f"/api/v1/learners/{learner_id}/tokens", svc.bureau)
    token = r.json()["secret"]
    version = svc.settings.security.consent_text_version
    r = svc.call(
        "POST", f"/api/v1/learners/{learner_id}/consent", token, json={"text_version": version}
    )
    assert r.status_code == 201, r.text
    r = svc.call(
        "POST",
        f"/api/v1/learners/{learner_id}/templates",
        token,
        files={"photo": ("me.jpg", jpeg(photo), "image/jpeg")},
    )
    assert r.status_code == 201, r.text
    return learner_id


def wait_for(what: Callable[[], Any], timeout: float, message: str, every: float = 0.2) -> Any:
    """Poll until `what()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s: {message}")


def status(svc: Service, c: Classroom) -> dict[str, Any]:
    r = svc.call("GET", f"/api/v1/classes/{c.class_id}/supervision", c.operator)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def attendance(svc: Service, c: Classroom) -> dict[int, dict[str, Any]]:
    r = svc.call("GET", f"/api/v1/classes/{c.class_id}/attendance", c.operator)
    assert r.status_code == 200, r.text
    return {a["learner_id"]: a for a in r.json()["learners"]}


def class_events(svc: Service, c: Classroom, kind: str | None = None) -> list[dict[str, Any]]:
    r = svc.call("GET", f"/api/v1/classes/{c.class_id}/events", c.operator)
    assert r.status_code == 200, r.text
    return [e for e in r.json() if kind is None or e["kind"] == kind]


def parse(ts: str) -> float:
    """Epoch seconds of an API timestamp."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

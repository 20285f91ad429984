"""The operators' live view (SSE) and the Prometheus metrics."""

from __future__ import annotations

import json

from storage.types import Role
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames


def _live_session(svc: Service):  # type: ignore[no-untyped-def]
    w = svc.world()
    sid = svc.start(w)
    r = svc.call("POST", f"/api/v1/sessions/{sid}/live", w.learner, json={"mode": "upload"})
    assert r.status_code == 200, r.text
    return w, sid


def test_the_live_view_lists_the_institutions_sessions_only(service: Service) -> None:
    w, sid = _live_session(service)
    other = service.world(enrol=False)
    snap = service.call("GET", "/api/v1/live/sessions", w.operator).json()
    assert snap["institution_id"] == w.institution_id
    row = next(s for s in snap["sessions"] if s["session_id"] == sid)
    assert row["state"] == "active" and row["mode"] == "upload"
    assert row["learner_name"] == "Grace Hopper"
    assert "queue" in snap and "workers_alive" in snap["queue"]
    theirs = service.call("GET", "/api/v1/live/sessions", other.operator).json()
    assert sid not in {s["session_id"] for s in theirs["sessions"]}
    r = service.call(
        "GET", f"/api/v1/live/sessions?institution_id={w.institution_id}", other.operator
    )
    assert r.status_code == 403 and r.json()["reason"] == "other_institution"
    assert service.call("GET", "/api/v1/live/sessions", w.learner).status_code == 403
    inspector = service.token(Role.inspector)
    r = service.call("GET", "/api/v1/live/sessions", inspector)
    assert r.status_code == 422  # an inspector names the institution
    r = service.call("GET", f"/api/v1/live/sessions?institution_id={w.institution_id}", inspector)
    assert sid in {s["session_id"] for s in r.json()["sessions"]}
    # Ending the session takes it off the board.
    service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
    snap = service.call("GET", "/api/v1/live/sessions", w.operator).json()
    assert sid not in {s["session_id"] for s in snap["sessions"]}


def test_the_live_view_streams_server_sent_events(service: Service) -> None:
    w, sid = _live_session(service)
    headers = {"Authorization": f"Bearer {w.operator}"}
    with service.client.stream("GET", "/api/v1/live/stream", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        event = next(lines)
        data = next(lines)
    assert event == "event: snapshot"
    snap = json.loads(data.removeprefix("data: "))
    assert sid in {s["session_id"] for s in snap["sessions"]}
    service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)


def test_metrics_in_prometheus_format(service: Service) -> None:
    w, sid = _live_session(service)
    page = StillFrames(service, w.learner, sid)
    result = page.check(HOPPER_FRAME)
    assert result["passed"], result
    text = service.client.get("/metrics").text
    verdict = "present" if result["asked"] == "presence" else "match"
    assert f'supervisor_checks_total{{kind="{result["asked"]}",verdict="{verdict}"}}' in text
    assert "supervisor_check_latency_seconds_bucket" in text
    for name in (
        "supervisor_queue_length",
        "supervisor_queue_lag_seconds",
        "supervisor_workers_alive",
        "supervisor_frames_dropped",
        "supervisor_peers_connected",
    ):
        assert f"\n{name} " in text, name
    workers = next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("supervisor_workers_alive ")
    )
    assert workers >= 1
    service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)

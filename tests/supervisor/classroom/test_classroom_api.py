"""The classroom API and CLI: who may do what, and every refusal a 4xx with a reason
that changes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from capture.stream import NETWORK_FAILURE
from storage.types import Role
from supervisor.cli.main import main
from tests.classgen import free_port
from tests.supervisor.classroom_helpers import wait_for
from tests.supervisor.conftest import Service, institution_body, new_id_number


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def institution(svc: Service, delivery: str = "classroom") -> tuple[int, str, int]:
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=institution_body("Skills centre"))
    inst = r.json()["id"]
    op = svc.token(Role.operator, inst)
    r = svc.call(
        "POST",
        "/api/v1/courses",
        op,
        json={
            "institution_id": inst,
            "name": "Electrician",
            "required_hours": 16,
            "delivery_mode": delivery,
        },
    )
    assert r.status_code == 201, r.text
    return inst, op, r.json()["id"]


def learner(svc: Service, inst: int, op: str, name: str = "Zhang Wei") -> int:
    r = svc.call(
        "POST",
        "/api/v1/learners",
        op,
        json={"institution_id": inst, "full_name": name, "id_number": new_id_number()},
    )
    assert r.status_code == 201, r.text
    lid: int = r.json()["id"]
    return lid


def new_class(svc: Service, op: str, course: int, **kw: Any) -> int:
    body = {"course_id": course, "name": "Group A", "starts_at": at(-1), "ends_at": at(120)}
    body.update(kw)
    r = svc.call("POST", "/api/v1/classes", op, json=body)
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    return cid


def refused(r: Any, status: int, reason: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason, r.text


FILING = {"teacher": "Li Na", "teaching_plan": "Wiring, 8 h.", "assessment_plan": "Practical."}


def test_classes_belong_to_classroom_courses_of_the_callers_institution(service: Service) -> None:
    svc = service
    inst, op, course = institution(svc)
    _, other_op, other_course = institution(svc)
    _, _, online = institution(svc, "online")
    before = len(svc.storage.classroom.list_classes())
    inspector = svc.token(Role.inspector)
    body = {"course_id": course, "name": "Group A", "starts_at": at(0), "ends_at": at(60)}
    refused(svc.call("POST", "/api/v1/classes", op, json={**body, "course_id": online}), 403,
            "other_institution")  # fmt: skip
    admin_online = svc.call(
        "POST", "/api/v1/classes", svc.admin, json={**body, "course_id": online}
    )
    refused(admin_online, 422, "course_not_classroom")
    refused(svc.call("POST", "/api/v1/classes", op, json={**body, "ends_at": at(-5)}), 422,
            "invalid_schedule")  # fmt: skip
    naive = {**body, "starts_at": "2026-12-01T08:00:00"}
    refused(svc.call("POST", "/api/v1/classes", op, json=naive), 422, "invalid_input")
    refused(svc.call("POST", "/api/v1/classes", op, json={**body, "mode": "exam"}), 422,
            "invalid_input")  # fmt: skip
    refused(svc.call("POST", "/api/v1/classes", op, json={**body, "course_id": 99999}), 404,
            "unknown_id")  # fmt: skip
    refused(svc.call("POST", "/api/v1/classes", other_op, json=body), 403, "other_institution")
    refused(svc.call("POST", "/api/v1/classes", inspector, json=body), 403, "wrong_role")
    refused(svc.call("POST", "/api/v1/classes", None, json=body), 401, "unauthenticated")
    assert len(svc.storage.classroom.list_classes()) == before  # nothing stored

    r = svc.call("POST", "/api/v1/classes", op, json={**body, "mode": "assessment"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["institution_id"], made["mode"], made["course_id"]) == (inst, "assessment", course)
    cid = made["id"]
    assert svc.call("GET", f"/api/v1/classes/{cid}", inspector).json() == made
    refused(svc.call("GET", f"/api/v1/classes/{cid}", other_op), 403, "other_institution")
    mine = svc.call("GET", "/api/v1/classes", op).json()
    assert [c["id"] for c in mine] == [cid]
    new_class(svc, other_op, other_course)
    assert [c["id"] for c in svc.call("GET", "/api/v1/classes", op).json()] == [cid]
    lid = learner(svc, inst, op)
    learner_token = svc.call("POST", f"/api/v1/learners/{lid}/tokens", svc.bureau).json()["secret"]
    refused(svc.call("GET", "/api/v1/classes", learner_token), 403, "wrong_role")


def test_roster_camera_and_filing_refusals_change_nothing(service: Service) -> None:
    svc = service
    inst, op, course = institution(svc)
    other_inst, other_op, _ = institution(svc)
    cid = new_class(svc, op, course)
    a, b = learner(svc, inst, op, "Wang Lei"), learner(svc, inst, op, "Liu Yang")
    elsewhere = learner(svc, other_inst, other_op)
    roster = f"/api/v1/classes/{cid}/roster"
    refused(svc.call("POST", roster, op, json={"learner_ids": [a, elsewhere]}), 422,
            "learner_other_institution")  # fmt: skip
    refused(svc.call("POST", roster, op, json={"learner_ids": [a, 99999]}), 404, "unknown_id")
    refused(svc.call("POST", roster, op, json={"learner_ids": [a, a]}), 422, "invalid_input")
    refused(svc.call("POST", roster, op, json={"learner_ids": []}), 422, "invalid_input")
    assert svc.call("GET", roster, op).json() == []
    r = svc.call("POST", roster, op, json={"learner_ids": [a]})
    assert r.status_code == 200 and [e["learner_id"] for e in r.json()] == [a]
    assert "*" in r.json()[0]["id_number_masked"]
    refused(svc.call("POST", roster, op, json={"learner_ids": [b, a]}), 409, "already_on_roster")
    refused(svc.call("POST", roster, other_op, json={"learner_ids": [b]}), 403, "other_institution")
    assert [e["learner_id"] for e in svc.call("GET", roster, op).json()] == [a]

    cams = f"/api/v1/classes/{cid}/cameras"
    for url in ("ftp://cam/x", "http://", "not a url", "javascript:alert(1)"):
        refused(svc.call("POST", cams, op, json={"url": url, "label": "x"}), 422,
                "invalid_camera_url")  # fmt: skip
    refused(svc.call("POST", cams, op, json={"url": "file:///etc/passwd", "label": "x"}), 422,
            "file_source_refused")  # fmt: skip
    secret_url = "rtsp://admin:hunter2@10.1.2.3:554/stream1?token=abc"
    r = svc.call("POST", cams, op, json={"url": secret_url, "label": "front"})
    assert r.status_code == 201, r.text
    assert r.json()["url"] == "rtsp://***@10.1.2.3:554/stream1?***"
    refused(svc.call("POST", cams, op, json={"url": secret_url, "label": "again"}), 409,
            "duplicate_camera")  # fmt: skip
    listed = svc.call("GET", cams, op)
    assert "hunter2" not in listed.text and len(listed.json()) == 1

    start = f"/api/v1/classes/{cid}/supervision/start"
    refused(svc.call("POST", start, op), 409, "not_filed")
    refused(svc.call("POST", f"/api/v1/classes/{cid}/supervision/stop", op), 409, "not_running")
    refused(svc.call("GET", f"/api/v1/classes/{cid}/filing", op), 404, "not_filed")
    refused(svc.call("POST", f"/api/v1/classes/{cid}/filing", op, json={**FILING, "teacher": ""}),
            422, "invalid_input")  # fmt: skip
    r = svc.call("POST", f"/api/v1/classes/{cid}/filing", op, json=FILING)
    assert r.status_code == 201, r.text
    filing = r.json()
    assert filing["roster"] == [a] and len(filing["sha256"]) == 64
    filed = [e for e in svc.call("GET", f"/api/v1/classes/{cid}/events", op).json()]
    assert [e["kind"] for e in filed] == ["class_filed"]
    assert filed[0]["payload"]["filing_sha256"] == filing["sha256"]
    svc.call("POST", roster, op, json={"learner_ids": [b]})
    refused(svc.call("POST", start, op), 409, "filing_outdated")
    svc.call("DELETE", f"{roster}/{b}", op)
    refused(svc.call("DELETE", f"{roster}/{b}", op), 404, "unknown_id")

    empty = new_class(svc, op, course)
    refused(svc.call("POST", f"/api/v1/classes/{empty}/filing", op, json=FILING), 409,
            "empty_roster")  # fmt: skip
    no_camera = new_class(svc, op, course)
    svc.call("POST", f"/api/v1/classes/{no_camera}/roster", op, json={"learner_ids": [a]})
    svc.call("POST", f"/api/v1/classes/{no_camera}/filing", op, json=FILING)
    refused(svc.call("POST", f"/api/v1/classes/{no_camera}/supervision/start", op), 409,
            "no_cameras")  # fmt: skip
    over = new_class(svc, op, course, starts_at=at(-120), ends_at=at(-60))
    refused(svc.call("POST", f"/api/v1/classes/{over}/supervision/start", op), 409, "class_over")
    later = new_class(svc, op, course, starts_at=at(600), ends_at=at(700))
    refused(svc.call("POST", f"/api/v1/classes/{later}/supervision/start", op), 409, "too_early")
    assert svc.storage.classroom.list_runs(cid) == []


def test_supervision_with_a_dead_camera_records_an_outage_not_absences(service: Service) -> None:
    svc = service
    inst, op, course = institution(svc)
    cid = new_class(svc, op, course)
    a, b = learner(svc, inst, op, "Chen Jie"), learner(svc, inst, op, "Zhao Min")
    svc.call("POST", f"/api/v1/classes/{cid}/roster", op, json={"learner_ids": [a, b]})
    dead = f"http://127.0.0.1:{free_port()}/video.mjpg"
    svc.call("POST", f"/api/v1/classes/{cid}/cameras", op, json={"url": dead, "label": "front"})
    svc.call("POST", f"/api/v1/classes/{cid}/filing", op, json=FILING)
    inspector = svc.token(Role.inspector)
    base = f"/api/v1/classes/{cid}"
    refused(svc.call("POST", f"{base}/supervision/start", inspector), 403, "wrong_role")
    r = svc.call("POST", f"{base}/supervision/start", op)
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["running"] and started["supervised_here"] and started["roster_size"] == 2
    refused(svc.call("POST", f"{base}/supervision/start", op), 409, "already_running")
    refused(svc.call("POST", f"{base}/roster", op, json={"learner_ids": [999]}), 409,
            "roster_frozen")  # fmt: skip
    refused(svc.call("POST", f"{base}/filing", op, json=FILING), 409, "filing_closed")
    camera = {"url": "http://10.0.0.1/a", "label": "b"}
    refused(svc.call("POST", f"{base}/cameras", op, json=camera), 409, "class_running")
    status = wait_for(
        lambda: (
            (st := svc.call("GET", f"{base}/supervision", inspector).json())["roll_calls"]
            and st["cameras"][0]["state"] == "unreachable"
            and st
        ),
        15,
        "the first roll call, with the camera reported",
    )
    # The same words whatever happened underneath (a closed port here).
    assert status["cameras"][0]["last_error"] == NETWORK_FAILURE
    assert status["headcount"] == 0 and sorted(status["unseen"]) == [a, b]
    assert status["absent"] == [] and status["last_roll_call_outcome"] == "outage"
    refused(svc.call("POST", f"{base}/supervision/stop", inspector), 403, "wrong_role")
    r = svc.call("POST", f"{base}/supervision/stop", op)
    assert r.status_code == 200, r.text
    assert r.json()["running"] is False and r.json()["stop_reason"] == "operator"
    refused(svc.call("POST", f"{base}/supervision/stop", op), 409, "not_running")

    att = svc.call("GET", f"{base}/attendance", inspector).json()
    for entry in att["learners"]:
        assert entry["credited_seconds"] == 0 and entry["absent"] == 0
        assert [e["status"] for e in entry["timeline"]] == ["outage", "ended"]
    kinds = [e["kind"] for e in svc.call("GET", f"{base}/events", op).json()]
    assert kinds[:2] == ["class_filed", "class_supervision_started"]
    assert kinds.count("camera_status") == 1 and kinds.count("class_roll_call") == 2
    assert kinds[-1] == "class_supervision_stopped"
    lt = svc.call("POST", f"/api/v1/learners/{a}/tokens", svc.bureau).json()["secret"]
    own = svc.call("GET", f"{base}/learners/{a}/attendance", lt)
    assert own.status_code == 200 and own.json()["learner_id"] == a
    refused(svc.call("GET", f"{base}/learners/{b}/attendance", lt), 403, "not_your_data")
    refused(svc.call("GET", f"{base}/attendance", lt), 403, "wrong_role")
    report = svc.storage.ledger.verify(
        [f"class:{cid}", f"class:{cid}:learner:{a}", f"class:{cid}:learner:{b}"]
    )
    assert report.ok and report.chains == 3


def test_the_class_command_line(
    sqlite_service: Service,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc = sqlite_service
    inst, op, course = institution(svc)
    lid = learner(svc, inst, op)
    token = tmp_path / "token"
    token.write_text(op + "\n")
    (tmp_path / "plan.txt").write_text("Day 1: safety.\n")
    (tmp_path / "exam.txt").write_text("Practical test.\n")
    cli = ["class", "--server", svc.url, "--token-file", str(token)]

    def run(*args: str) -> Any:
        code = main([*cli, *args])
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out) if out.out.strip() else None

    made = run("create", "--course", str(course), "--name", "Evening", "--start", at(-1),
               "--end", at(90), "--mode", "assessment")  # fmt: skip
    cid = str(made["id"])
    assert made["mode"] == "assessment"
    assert [e["learner_id"] for e in run("roster", "add", cid, str(lid))] == [lid]
    cam = run("camera", "add", cid, "rtsp://u:pw@10.9.9.9/live", "--label", "front")
    assert cam["url"] == "rtsp://***@10.9.9.9/live"
    filing = run("file", cid, "--teacher", "Li Na", "--teaching-plan", str(tmp_path / "plan.txt"),
                 "--assessment-plan", str(tmp_path / "exam.txt"))  # fmt: skip
    assert filing["teaching_plan"] == "Day 1: safety." and filing["roster"] == [lid]
    assert run("status", cid)["running"] is False
    assert [c["id"] for c in run("list", "--course", str(course))] == [int(cid)]
    # A refusal: the reason on standard error, exit code 1, nothing changed.
    assert main([*cli, "roster", "add", cid, "99999"]) == 1
    assert "unknown_id" in capsys.readouterr().err
    monkeypatch.delenv("SUPERVISOR_TOKEN", raising=False)
    assert main(["class", "--server", svc.url, "status", cid]) == 2
    assert "token" in capsys.readouterr().err
    monkeypatch.setenv("SUPERVISOR_TOKEN", op)
    assert main(["class", "--server", svc.url, "roster", "list", cid]) == 0
    assert json.loads(capsys.readouterr().out)[0]["learner_id"] == lid

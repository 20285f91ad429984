"""The catalogue, eligibility, claims, flags and the monthly report through the real
HTTP API, on SQLite and PostgreSQL: every ledger here is built by real requests
(sessions with real face checks on real photos)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta

from storage.types import Role
from supervisor.registry.credit_code import check_character
from tests import imagegen
from tests.supervisor.conftest import (
    ASTRONAUT_FRAME,
    HOPPER_FRAME,
    HOPPER_PHOTO,
    Service,
    StillFrames,
    World,
    institution_body,
    new_id_number,
)

_codes = iter(range(10**6))


def credit_code() -> str:
    body = f"9111010{next(_codes):06d}MA0X"[:17]
    return body + check_character(body)


def _course(svc: Service, w: World, hours: float = 0.0005, mode: str = "online") -> int:
    r = svc.call(
        "POST",
        "/api/v1/courses",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "name": "Welder, level 4",
            "required_hours": hours,
            "delivery_mode": mode,
        },
    )
    assert r.status_code == 201, r.text
    course: int = r.json()["id"]
    # Subsidy standards are the bureau's: the institution cannot set its own.
    rules = {
        "occupation": "6-18-02-04",
        "skill_level": 4,
        "subsidy_kind": "per_learner",
        "subsidy_amount": 1500,
    }
    r = svc.call("PUT", f"/api/v1/courses/{course}/rules", w.operator, json=rules)
    assert r.status_code == 403 and r.json()["reason"] == "wrong_role", r.text
    r = svc.call(
        "PUT",
        f"/api/v1/courses/{course}/rules",
        svc.bureau,
        json={
            "occupation": "6-18-02-04",
            "skill_level": 4,
            "subsidy_kind": "per_learner",
            "subsidy_amount": 1500,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "draft"
    return course


def _publish(svc: Service, w: World, course: int) -> None:
    r = svc.call("POST", f"/api/v1/courses/{course}/publish", w.operator)
    assert r.status_code == 403 and r.json()["reason"] == "wrong_role", r.text
    r = svc.call("POST", f"/api/v1/courses/{course}/publish", svc.bureau)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published"


def _study(svc: Service, w: World, course: int, checks: int = 1) -> str:
    """A session: the sign-in check, then the server's checks answered by the learner
    (Grace Hopper at a webcam) until `checks` identity checks have passed."""
    r = svc.sign_in(w.learner, course, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid: str = r.json()["session"]["session_id"]
    with StillFrames(svc, w.learner, sid) as page:
        identity = 0
        while identity < checks:
            result = page.check(HOPPER_FRAME)
            assert result["passed"], result
            identity += result["asked"] == "identity"
    return sid


def _other_operator(svc: Service) -> str:
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=institution_body("Another school"))
    assert r.status_code == 201, r.text
    return svc.token(Role.operator, r.json()["id"])


def _eligibility(svc: Service, token: str, learner: int, course: int) -> dict:  # type: ignore[type-arg]
    r = svc.call("GET", f"/api/v1/learners/{learner}/eligibility/{course}", token)
    assert r.status_code == 200, r.text
    body: dict = r.json()  # type: ignore[type-arg]
    return body


def test_eligibility_reasons_then_eligible_with_claims_and_report(service: Service) -> None:
    w = service.world()
    course = _course(service, w)
    inspector = service.token(Role.inspector)

    e = _eligibility(service, w.operator, w.learner_id, course)
    assert not e["eligible"] and e["amount"] == 0
    # Unpublished, the ledger holds no required hours to compare with.
    assert set(e["reasons"]) == {"course_not_published", "not_enrolled", "no_assessment"}
    _publish(service, w, course)
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert set(e["reasons"]) == {"not_enrolled", "insufficient_hours", "no_assessment"}
    # Published rules are frozen.
    r = service.call(
        "PUT",
        f"/api/v1/courses/{course}/rules",
        service.bureau,
        json={
            "occupation": "6-18-02-04",
            "skill_level": 1,
            "subsidy_kind": "per_learner",
            "subsidy_amount": 9,
        },
    )
    assert r.status_code == 409 and r.json()["reason"] == "rules_frozen"

    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    # An assessment needs an enrolled learner; a bad body changes nothing.
    before = service.event_count()
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id},
    )
    assert r.status_code == 422
    assert service.event_count() == before

    sid = _study(service, w, course)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": False, "score": 41},
    )
    assert r.status_code == 201, r.text
    e = _eligibility(service, w.learner, w.learner_id, course)
    assert e["reasons"] == ["assessment_failed"], e
    assert e["credited_hours"] >= 0.0005
    assert [s["chain_id"] for s in e["sessions"]] == [f"session:{sid}"]

    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True, "score": 88},
    )
    assert r.status_code == 201
    e = _eligibility(service, inspector, w.learner_id, course)
    assert e["eligible"] and e["amount"] == 1500 and e["reasons"] == []
    # Recomputation gives the same answer.
    assert _eligibility(service, w.operator, w.learner_id, course) == e

    now = datetime.now(UTC)
    period = {
        "from": (now - timedelta(days=1)).isoformat(),
        "until": (now + timedelta(days=1)).isoformat(),
        "institution_id": w.institution_id,
    }
    r = service.call("GET", "/api/v1/claims", w.operator, params=period)
    assert r.status_code == 200, r.text
    rows = [x for x in r.json() if x["course_id"] == course]
    assert len(rows) == 1 and rows[0]["eligible"] and rows[0]["amount"] == 1500
    assert rows[0]["sessions"][0]["chain_id"] == f"session:{sid}"
    assert "*" in rows[0]["id_number"]
    r = service.call("GET", "/api/v1/claims", w.operator, params={**period, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")  # after the byte-order mark Excel needs
    table = [x for x in csv.DictReader(io.StringIO(text)) if x["课程编号"] == str(course)]
    assert table[0]["是否符合补贴条件"] == "是" and table[0]["学习记录"] == f"session:{sid}"
    # An operator sees only their institution; a learner no claims.
    other = _other_operator(service)
    assert service.call("GET", "/api/v1/claims", other, params=period).status_code == 403
    assert service.call("GET", "/api/v1/claims", w.learner, params=period).status_code == 403
    bad = {**period, "from": "2026-11-01T00:00:00"}
    assert service.call("GET", "/api/v1/claims", w.operator, params=bad).status_code == 422

    month = datetime.now(UTC).astimezone().strftime("%Y-%m")
    from zoneinfo import ZoneInfo

    month = datetime.now(ZoneInfo(service.settings.subsidy.timezone)).strftime("%Y-%m")
    r = service.call(
        "GET",
        "/api/v1/reports/monthly",
        inspector,
        params={"month": month, "institution_id": w.institution_id},
    )
    assert r.status_code == 200, r.text
    (inst,) = r.json()["institutions"]
    (row,) = [c for c in inst["courses"] if c["course_id"] == course]
    checks = [e for e in service.storage.ledger.read_chain(f"session:{sid}") if e.kind == "check"]
    assert row["sessions"] == 1 and row["learners"] == 1 and row["checks"] == len(checks) >= 2
    assert row["pass_rate"] == 1.0 and row["eligible_learners"] == 1
    assert row["subsidy_total"] == 1500 and row["credited_hours"] > 0
    # An inspector may have every chain folded from its events instead of the stored
    # summaries: the same report. Operators may not (it costs a first scan's time).
    params = {"month": month, "institution_id": w.institution_id, "recompute": "true"}
    again = service.call("GET", "/api/v1/reports/monthly", inspector, params=params)
    assert again.status_code == 200 and again.json()["institutions"] == r.json()["institutions"]
    r = service.call("GET", "/api/v1/reports/monthly", w.operator, params=params)
    assert r.status_code == 403
    r = service.call(
        "GET",
        "/api/v1/reports/monthly",
        inspector,
        params={"month": month, "institution_id": w.institution_id, "format": "html"},
    )
    assert r.status_code == 200 and "<svg" in r.text and "<script" not in r.text
    assert "Welder, level 4" in r.text
    # The strict policy allows exactly the page's own style block, by its hash.
    style = r.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = r.headers["content-security-policy"]
    assert f"style-src 'sha256-{digest}'" in policy and "script-src 'none'" in policy
    r = service.call(
        "GET",
        "/api/v1/reports/monthly",
        w.operator,
        params={"month": month, "format": "csv"},
    )
    assert r.status_code == 200
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {x["机构编号"] for x in table if x["月份"] != "合计"} == {str(w.institution_id)}
    # Months that `int()` would read but that name no month the folds count in.
    for bad in ("2026-13", " 2026-1", "2026-+1", "２０２６-10", "2026-10 ", "26-10"):
        r = service.call("GET", "/api/v1/reports/monthly", inspector, params={"month": bad})
        assert r.status_code == 422 and r.json()["reason"] == "invalid_month", bad


def test_replayed_image_flag_blocks_then_decisions(service: Service) -> None:
    w = service.world()
    course = _course(service, w)
    _publish(service, w, course)
    service.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    sid = _study(service, w, course, checks=2)
    service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True},
    )
    assert _eligibility(service, w.operator, w.learner_id, course)["eligible"]

    inspector = service.token(Role.inspector)
    assert service.call("POST", "/api/v1/fraud/scan", w.operator).status_code == 403
    r = service.call("POST", "/api/v1/fraud/scan", inspector)
    assert r.status_code == 200, r.text
    # The same image three times gives three identical distances: a replay.
    mine = [f for f in r.json() if f["learner_id"] == w.learner_id]
    assert [f["kind"] for f in mine] == ["replayed_image"], r.json()
    flag = mine[0]
    assert flag["evidence"][0]["chain_id"] == f"session:{sid}"
    assert flag["evidence"][0]["seq"] == 1 and len(flag["evidence"][0]["hash"]) == 64
    # Scanning again raises nothing new.
    again = service.call("POST", "/api/v1/fraud/scan", inspector).json()
    assert not [f for f in again if f["learner_id"] == w.learner_id]

    e = _eligibility(service, w.operator, w.learner_id, course)
    assert e["reasons"] == ["open_fraud_flag"] and e["flags"] == [flag["id"]]

    r = service.call("GET", "/api/v1/flags", w.operator, params={"status": "open"})
    assert r.status_code == 200
    assert flag["id"] in [f["id"] for f in r.json()]
    assert all(f["institution_id"] == w.institution_id for f in r.json())
    assert service.call("GET", "/api/v1/flags", w.learner).status_code == 403
    other = _other_operator(service)
    assert service.call("GET", f"/api/v1/flags/{flag['id']}", other).status_code == 403
    assert (
        service.call(
            "POST", f"/api/v1/flags/{flag['id']}/decision", other, json={"status": "dismissed"}
        ).status_code
        == 403
    )
    before = service.event_count()
    r = service.call(
        "POST", f"/api/v1/flags/{flag['id']}/decision", service.bureau, json={"status": "open"}
    )
    assert r.status_code == 422 and service.event_count() == before
    # The institution never decides a flag on its own learner; it may make a statement.
    r = service.call(
        "POST",
        f"/api/v1/flags/{flag['id']}/decision",
        w.operator,
        json={"status": "dismissed", "note": "our learner, honest"},
    )
    assert r.status_code == 403 and r.json()["reason"] == "wrong_role"
    assert service.event_count() == before
    r = service.call(
        "POST",
        f"/api/v1/flags/{flag['id']}/statements",
        w.operator,
        json={"statement": "the webcam froze; the learner was present"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open" and r.json()["decisions"] == []
    assert r.json()["statements"][0]["statement"].startswith("the webcam froze")
    assert not _eligibility(service, w.operator, w.learner_id, course)["eligible"]

    # The bureau dismisses: eligibility is restored.
    r = service.call(
        "POST",
        f"/api/v1/flags/{flag['id']}/decision",
        service.bureau,
        json={"status": "dismissed", "note": "webcam froze; verified in person"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "dismissed"
    (d1,) = r.json()["decisions"]
    assert d1["chain_id"] == f"flag:{flag['id']}" and d1["seq"] == 3
    assert _eligibility(service, w.operator, w.learner_id, course)["eligible"]

    # The inspector confirms it: a new event supersedes; the learner is not eligible.
    r = service.call(
        "POST",
        f"/api/v1/flags/{flag['id']}/decision",
        inspector,
        json={"status": "confirmed", "note": "same frame replayed"},
    )
    assert r.status_code == 200
    assert [d["status"] for d in r.json()["decisions"]] == ["dismissed", "confirmed"]
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert e["reasons"] == ["confirmed_fraud_flag"]
    # The operator cannot overturn it either.
    r = service.call(
        "POST", f"/api/v1/flags/{flag['id']}/decision", w.operator, json={"status": "dismissed"}
    )
    assert r.status_code == 403 and r.json()["reason"] == "wrong_role"
    r = service.call("GET", f"/api/v1/flags/{flag['id']}", inspector)
    assert r.status_code == 200 and r.json()["raised_event"]["seq"] == 1
    r = service.call("GET", f"/api/v1/sessions/{sid}/integrity", inspector)
    integrity = service.storage.ledger.verify([f"flag:{flag['id']}"])
    assert integrity.ok and integrity.events == 4


def test_duplicate_identity_at_enrolment_is_a_flag_with_evidence(service: Service) -> None:
    w = service.world()
    r = service.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "full_name": "Someone Else",
            "id_number": new_id_number(),
        },
    )
    other = r.json()["id"]
    token = service.call("POST", f"/api/v1/learners/{other}/tokens", service.bureau).json()[
        "secret"
    ]
    version = service.settings.security.consent_text_version
    service.call("POST", f"/api/v1/learners/{other}/consent", token, json={"text_version": version})
    r = service.call(
        "POST",
        f"/api/v1/learners/{other}/templates",
        token,
        files={"photo": ("me.jpg", HOPPER_PHOTO, "image/jpeg")},
    )
    assert r.status_code == 409 and r.json()["reason"] == "duplicate_identity"
    flag_id = r.json()["flag_id"]
    r = service.call(
        "GET",
        "/api/v1/flags",
        w.operator,
        params={"kind": "duplicate_identity", "learner_id": w.learner_id},
    )
    (flag,) = [f for f in r.json() if f["id"] == flag_id]
    assert flag["learner_id"] == other and flag["other_learner_ids"] == [w.learner_id]
    assert flag["evidence"][0]["scores"]["distance"] < 0.5
    assert len(flag["evidence"][0]["evidence_sha256"]) == 64
    # The later enrolment is the suspect: the flag bars it from a subsidy, and leaves the
    # earlier learner (whose face was taken) alone.
    course = _course(service, w)
    assert "open_fraud_flag" in _eligibility(service, w.operator, other, course)["reasons"]
    assert (
        "open_fraud_flag" not in _eligibility(service, w.operator, w.learner_id, course)["reasons"]
    )
    # Only if the bureau confirms against them too is the earlier learner held up.
    r = service.call(
        "POST",
        f"/api/v1/flags/{flag_id}/decision",
        service.bureau,
        json={"status": "confirmed", "note": "both in it", "against": [w.learner_id]},
    )
    assert r.status_code == 200, r.text
    for learner in (other, w.learner_id):
        e = _eligibility(service, w.operator, learner, course)
        assert "confirmed_fraud_flag" in e["reasons"], (learner, e)


def test_institution_status_stops_training_and_expulsion_is_public(service: Service) -> None:
    w = service.world()
    r = service.call(
        "PUT",
        f"/api/v1/institutions/{w.institution_id}/credit-code",
        service.admin,
        json={"credit_code": "91350100M000100Y44"},
    )
    assert r.status_code == 422 and r.json()["reason"] == "invalid_credit_code"
    code = credit_code()
    r = service.call(
        "PUT",
        f"/api/v1/institutions/{w.institution_id}/credit-code",
        service.admin,
        json={"credit_code": code.lower()},
    )
    # The institution was filed with a code: changing it is a correction, with a reason.
    assert r.status_code == 422 and r.json()["reason"] == "reason_required"
    r = service.call(
        "PUT",
        f"/api/v1/institutions/{w.institution_id}/credit-code",
        service.bureau,
        json={"credit_code": code.lower(), "reason": "typo in the filed code"},
    )
    assert r.status_code == 200 and r.json()["credit_code"] == code
    r = service.call(
        "PUT",
        f"/api/v1/institutions/{w.institution_id}/credit-code",
        w.operator,
        json={"credit_code": code},
    )
    assert r.status_code == 403
    course = _course(service, w)

    inspector = service.token(Role.inspector)
    for who in (w.operator, inspector):
        r = service.call(
            "POST",
            f"/api/v1/institutions/{w.institution_id}/status",
            who,
            json={"status": "suspended", "reason": "self"},
        )
        assert r.status_code == 403, r.text
    r = service.call(
        "POST",
        f"/api/v1/institutions/{w.institution_id}/status",
        service.bureau,
        json={"status": "suspended", "reason": "hours short-changed in spot check"},
    )
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    before = service.event_count()
    r = service.sign_in(w.learner, course, HOPPER_FRAME)
    assert r.status_code == 403 and r.json()["reason"] == "institution_suspended"
    assert service.event_count() == before
    # Its operators can read, but create nothing: no class, course, learner, enrolment.
    now = datetime.now(UTC)
    r = service.call(
        "POST",
        "/api/v1/classes",
        w.operator,
        json={
            "course_id": course,
            "name": "Group A",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 403 and r.json()["reason"] == "institution_suspended", r.text
    r = service.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={"institution_id": w.institution_id, "full_name": "New", "id_number": new_id_number()},
    )
    assert r.status_code == 403 and r.json()["reason"] == "institution_suspended", r.text
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 403 and r.json()["reason"] == "institution_suspended", r.text
    assert service.call("GET", f"/api/v1/learners/{w.learner_id}", w.operator).status_code == 200
    assert service.event_count() == before

    when = "2026-11-20T08:00:00+08:00"
    r = service.call(
        "POST",
        f"/api/v1/institutions/{w.institution_id}/status",
        service.bureau,
        json={
            "status": "expelled",
            "reason": "fake training to obtain funds",
            "effective_at": when,
        },
    )
    assert r.status_code == 200
    r = service.client.get("/api/v1/public/expelled-institutions")
    assert r.status_code == 200
    (mine,) = [i for i in r.json() if i["institution_id"] == w.institution_id]
    assert mine["credit_code"] == code and mine["reason"] == "fake training to obtain funds"
    assert mine["effective_at"].startswith("2026-11-20T00:00:00")
    r = service.sign_in(w.learner, course, ASTRONAUT_FRAME)
    assert r.status_code == 403 and r.json()["reason"] == "institution_expelled"
    # Only an admin reinstates an expelled institution.
    body = {"status": "active", "reason": "court ruling"}
    url = f"/api/v1/institutions/{w.institution_id}/status"
    assert service.call("POST", url, inspector, json=body).status_code == 403
    assert service.call("POST", url, service.bureau, json=body).status_code == 403
    assert service.call("POST", url, service.admin, json=body).status_code == 200
    chain = service.storage.ledger.read_chain(f"institution:{w.institution_id}")
    # Filed, its code corrected once, then suspended, expelled and reinstated.
    assert [e.kind for e in chain] == [
        "institution_registered",
        "credit_code_corrected",
        *["institution_status_changed"] * 3,
    ]


ASTRONAUT_PHOTO = imagegen.jpeg_bytes(imagegen.astronaut())


def test_a_check_frame_of_another_learner_raises_check_impostor(service: Service) -> None:
    w = service.world()
    r = service.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "full_name": "Eileen Collins",
            "id_number": new_id_number(),
        },
    )
    other = r.json()["id"]
    token = service.call("POST", f"/api/v1/learners/{other}/tokens", service.bureau).json()[
        "secret"
    ]
    version = service.settings.security.consent_text_version
    service.call("POST", f"/api/v1/learners/{other}/consent", token, json={"text_version": version})
    r = service.call(
        "POST",
        f"/api/v1/learners/{other}/templates",
        token,
        files={"photo": ("me.jpg", ASTRONAUT_PHOTO, "image/jpeg")},
    )
    assert r.status_code == 201, r.text
    course = _course(service, w)
    r = service.sign_in(w.learner, course, HOPPER_FRAME)
    sid = r.json()["session"]["session_id"]
    page = StillFrames(service, w.learner, sid).attach()
    # The learner's own face: nothing is raised.
    while (own := page.check(HOPPER_FRAME))["asked"] != "identity":
        pass
    assert own["passed"], own
    flags = service.call(
        "GET",
        "/api/v1/flags",
        w.operator,
        params={"kind": "check_impostor", "learner_id": w.learner_id},
    ).json()
    assert flags == []
    # Another learner of the institution sits in front of the camera.
    while (proxy := page.check(lambda k: ASTRONAUT_FRAME if k == "identity" else HOPPER_FRAME))[
        "asked"
    ] != "identity":
        pass
    page.end()
    assert proxy["verdict"] == "mismatch", proxy
    check_id = proxy["check_id"]
    flags = service.call(
        "GET",
        "/api/v1/flags",
        w.operator,
        params={"kind": "check_impostor", "learner_id": w.learner_id},
    ).json()
    (flag,) = flags
    assert flag["learner_id"] == w.learner_id and flag["other_learner_ids"] == [other]
    (evidence,) = flag["evidence"]
    assert evidence["chain_id"] == f"session:{sid}"
    chain = service.storage.ledger.read_chain(f"session:{sid}")
    (stored,) = [e for e in chain if e.seq == evidence["seq"]]
    assert stored.kind == "check" and stored.hash == evidence["hash"]
    assert check_id in stored.payload
    scores = evidence["scores"]
    assert scores["other_distance"] <= scores["threshold"] < scores["own_distance"]
    # The other learner is named too (found by their id), but held up only if the
    # bureau confirms against them.
    r = service.call("GET", "/api/v1/flags", w.operator, params={"learner_id": other})
    assert flag["id"] in [f["id"] for f in r.json()]


def test_a_learner_on_the_non_face_path_can_earn_the_subsidy(service: Service) -> None:
    """Face recognition must not be the only way: staff verify in person instead."""
    w = service.world(enrol=False)  # no consent, no face
    course = _course(service, w)
    _publish(service, w, course)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert "no_consent" in e["reasons"]

    base = f"/api/v1/learners/{w.learner_id}/alternative"
    assert service.call("POST", base, w.learner, json={"reason": "no face"}).status_code == 201
    # The institution cannot exempt its own learner from face checks, nor attest
    # presence itself: the bureau does both, in person.
    r = service.call("POST", f"{base}/decision", w.operator, json={"approved": True})
    assert r.status_code == 403, r.text
    r = service.call("POST", f"{base}/decision", service.bureau, json={"approved": True})
    assert r.status_code == 200, r.text
    body = {"learner_id": w.learner_id, "course_id": course, "note": "ID card seen"}
    assert (
        service.call("POST", "/api/v1/sessions/in-person", w.operator, json=body).status_code == 403
    )
    r = service.call("POST", "/api/v1/sessions/in-person", service.bureau, json=body)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    time.sleep(2.2)
    r = service.call("POST", f"/api/v1/sessions/{sid}/attestations", w.operator, json={})
    assert r.status_code == 403, r.text
    r = service.call("POST", f"/api/v1/sessions/{sid}/attestations", service.bureau, json={})
    assert r.status_code == 201, r.text
    assert service.call("POST", f"/api/v1/sessions/{sid}/end", service.bureau).status_code == 200
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True, "score": 75},
    )
    assert r.status_code == 201, r.text
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert e["eligible"] and e["reasons"] == [], e
    assert e["credited_hours"] >= 0.0005

    # A refused path takes it back: no consent, no face, not eligible.
    assert (
        service.call(
            "POST", f"{base}/decision", service.bureau, json={"approved": False}
        ).status_code
        == 200
    )
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert "no_consent" in e["reasons"]

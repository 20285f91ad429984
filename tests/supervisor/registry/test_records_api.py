"""The records the bureau's statistics need, through the real HTTP API on SQLite and
PostgreSQL: institutions' profiles, courses' classification, learners' key groups and
certificates. Every refusal is a 4xx with a stable reason and leaves the ledger as it
was; every change is an event in its chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storage.types import Role
from tests.supervisor.conftest import Service, World, institution_body


def kinds(svc: Service, chain: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, json.loads(e.payload)) for e in svc.storage.ledger.read_chain(chain)]


def refused(
    svc: Service, method: str, path: str, token: str, status: int, reason: str, **kw: Any
) -> None:
    """The request is refused with `status` and `reason`, and the ledger is unchanged."""
    before = svc.event_count()
    r = svc.call(method, path, token, **kw)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason, r.text
    assert svc.event_count() == before


def other_operator(svc: Service) -> str:
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=institution_body("Elsewhere"))
    assert r.status_code == 201, r.text
    return svc.token(Role.operator, r.json()["id"])


PROFILE = {
    "division_code": "440305",
    "licence_number": "教民144030570000123号",
    "legal_representative": "李四",
    "address": "广东省深圳市南山区科技园路 1 号",
}


def test_the_bureau_records_and_corrects_an_institution_profile(service: Service) -> None:
    w = service.world(enrol=False)
    path = f"/api/v1/institutions/{w.institution_id}/profile"
    refused(service, "GET", path, w.operator, 404, "no_profile")
    # The institution does not write its own papers.
    refused(service, "PUT", path, w.operator, 403, "wrong_role", json=PROFILE)
    # Every rule of the division code, on its own.
    for code in ("110000x", "990101", "110001", "11000a", "1100", "１１００００"):
        refused(
            service,
            "PUT",
            path,
            service.bureau,
            422,
            "invalid_division_code",
            json={**PROFILE, "division_code": code},
        )
    refused(
        service,
        "PUT",
        path,
        service.bureau,
        422,
        "invalid_address",
        json={**PROFILE, "address": " "},
    )
    r = service.call("PUT", path, service.bureau, json=PROFILE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["division"] == {
        "code": "440305",
        "level": "county",
        "province_code": "440000",
        "province_name": "广东",
        "city_code": "440300",
        "county_code": "440305",
    }
    assert body["reason"] == "registered" and body["recorded_by"].startswith("bureau:")
    # A correction needs a reason; the same profile again is no correction.
    refused(
        service,
        "PUT",
        path,
        service.bureau,
        422,
        "reason_required",
        json={**PROFILE, "division_code": "440306"},
    )
    refused(service, "PUT", path, service.bureau, 409, "same_profile", json=PROFILE)
    r = service.call(
        "PUT",
        path,
        service.bureau,
        json={**PROFILE, "division_code": "440306", "reason": "迁址至宝安区"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["division"]["county_code"] == "440306"
    # The operator reads its own; another institution's operator and a learner do not.
    r = service.call("GET", path, w.operator)
    assert r.status_code == 200 and r.json()["reason"] == "迁址至宝安区"
    refused(service, "GET", path, other_operator(service), 403, "other_institution")
    refused(service, "GET", path, w.learner, 403, "wrong_role")
    refused(
        service,
        "PUT",
        "/api/v1/institutions/999999/profile",
        service.bureau,
        404,
        "unknown_id",
        json=PROFILE,
    )
    recorded = [
        p
        for k, p in kinds(service, f"institution:{w.institution_id}")
        if k == "institution_profile_recorded"
    ]
    assert [(p["division_code"], p["reason"]) for p in recorded] == [
        ("440305", "registered"),
        ("440306", "迁址至宝安区"),
    ]


def _course(svc: Service, w: World, **extra: Any) -> int:
    body = {
        "institution_id": w.institution_id,
        "name": "焊工（四级）",
        "required_hours": 40,
        "delivery_mode": "classroom",
        **extra,
    }
    r = svc.call("POST", "/api/v1/courses", w.operator, json=body)
    assert r.status_code == 201, r.text
    course: int = r.json()["id"]
    return course


RULES = {
    "occupation": "6-18-02-04",
    "skill_level": 4,
    "subsidy_kind": "per_learner",
    "subsidy_amount": 1500,
}


def test_courses_carry_an_occupation_code_and_a_skill_level(service: Service) -> None:
    w = service.world(enrol=False)
    courses = len(service.storage.registry.list_courses(w.institution_id))
    for code in ("9-18-02-04", "0-18-02-04", "6-18-02", "焊工", "6-18-2-04", "６-18-02-04"):
        refused(
            service,
            "POST",
            "/api/v1/courses",
            w.operator,
            422,
            "invalid_occupation_code",
            json={
                "institution_id": w.institution_id,
                "name": "x",
                "required_hours": 1,
                "delivery_mode": "online",
                "occupation_code": code,
                "skill_level": 4,
            },
        )
    refused(
        service,
        "POST",
        "/api/v1/courses",
        w.operator,
        422,
        "invalid_skill_level",
        json={
            "institution_id": w.institution_id,
            "name": "x",
            "required_hours": 1,
            "delivery_mode": "online",
            "occupation_code": "6-18-02-04",
            "skill_level": 6,
        },
    )
    refused(
        service,
        "POST",
        "/api/v1/courses",
        w.operator,
        422,
        "incomplete_classification",
        json={
            "institution_id": w.institution_id,
            "name": "x",
            "required_hours": 1,
            "delivery_mode": "online",
            "occupation_code": "6-18-02-04",
        },
    )
    assert len(service.storage.registry.list_courses(w.institution_id)) == courses

    course = _course(service, w, occupation_code="6-18-02-04", skill_level=4)
    path = f"/api/v1/courses/{course}/classification"
    r = service.call("GET", path, w.operator)
    assert r.status_code == 200 and r.json()["occupation_code"] == "6-18-02-04", r.text
    refused(service, "GET", path, other_operator(service), 403, "other_institution")
    refused(
        service,
        "PUT",
        path,
        w.operator,
        422,
        "invalid_occupation_code",
        json={"occupation_code": "6-18-02-4", "skill_level": 4},
    )
    refused(
        service,
        "PUT",
        path,
        w.operator,
        409,
        "same_classification",
        json={"occupation_code": "6-18-02-04", "skill_level": 4},
    )
    # Unpublished, the institution may re-classify its course.
    r = service.call(
        "PUT", path, w.operator, json={"occupation_code": "6-18-02-04", "skill_level": 3}
    )
    assert r.status_code == 200, r.text
    # The bureau's rules need a valid code, and classify the course as they say.
    refused(
        service,
        "PUT",
        f"/api/v1/courses/{course}/rules",
        service.bureau,
        422,
        "invalid_occupation_code",
        json={**RULES, "occupation": "Welder"},
    )
    r = service.call("PUT", f"/api/v1/courses/{course}/rules", service.bureau, json=RULES)
    assert r.status_code == 200, r.text
    assert service.call("GET", path, w.operator).json()["skill_level"] == 4
    # Re-classified after the rules were set: the rules cannot be published as they are.
    r = service.call(
        "PUT", path, w.operator, json={"occupation_code": "6-18-02-05", "skill_level": 4}
    )
    assert r.status_code == 200, r.text
    refused(
        service,
        "POST",
        f"/api/v1/courses/{course}/publish",
        service.bureau,
        409,
        "classification_mismatch",
    )
    r = service.call("PUT", f"/api/v1/courses/{course}/rules", service.bureau, json=RULES)
    assert r.status_code == 200, r.text
    r = service.call("POST", f"/api/v1/courses/{course}/publish", service.bureau)
    assert r.status_code == 200, r.text
    published = [p for k, p in kinds(service, f"course:{course}") if k == "course_rules_published"]
    assert published[-1]["occupation"] == "6-18-02-04" and published[-1]["skill_level"] == 4
    # Published: the institution can no longer re-classify; the bureau corrects.
    refused(
        service,
        "PUT",
        path,
        w.operator,
        403,
        "rules_published",
        json={"occupation_code": "6-18-02-05", "skill_level": 4},
    )
    r = service.call(
        "PUT", path, service.bureau, json={"occupation_code": "6-18-02-05", "skill_level": 4}
    )
    assert r.status_code == 200, r.text
    classified = [
        (p["occupation_code"], p["skill_level"], p["recorded_by"].split(":")[0])
        for k, p in kinds(service, f"course:{course}")
        if k == "course_classified"
    ]
    assert classified == [
        ("6-18-02-04", 4, "operator"),
        ("6-18-02-04", 3, "operator"),
        ("6-18-02-04", 4, "bureau"),
        ("6-18-02-05", 4, "operator"),
        ("6-18-02-04", 4, "bureau"),
        ("6-18-02-05", 4, "bureau"),
    ]


def test_learners_carry_key_groups_with_date_and_source(service: Service) -> None:
    w = service.world(enrol=False)
    path = f"/api/v1/learners/{w.learner_id}/groups"
    veteran = {"group": "veteran", "since": "2024-05-01", "source": "退役军人事务局"}
    refused(
        service,
        "POST",
        path,
        w.operator,
        422,
        "invalid_group",
        json={**veteran, "group": "pensioner"},
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    refused(
        service, "POST", path, w.operator, 422, "future_date", json={**veteran, "since": tomorrow}
    )
    for bad in ("2024-13-01", "2024-5-1", "yesterday"):
        refused(
            service, "POST", path, w.operator, 422, "invalid_date", json={**veteran, "since": bad}
        )
    # Before the birth date in the learner's ID number: the group's date is made up.
    refused(
        service,
        "POST",
        path,
        w.operator,
        422,
        "before_birth",
        json={**veteran, "since": "0001-01-01"},
    )
    refused(
        service, "POST", path, w.operator, 422, "invalid_source", json={**veteran, "source": "  "}
    )
    refused(service, "POST", path, other_operator(service), 403, "other_institution", json=veteran)
    refused(service, "POST", path, service.token(Role.inspector), 403, "wrong_role", json=veteran)
    refused(service, "POST", path, w.learner, 403, "wrong_role", json=veteran)

    r = service.call("POST", path, w.operator, json=veteran)
    assert r.status_code == 201, r.text
    refused(service, "POST", path, w.operator, 409, "group_already_held", json=veteran)
    r = service.call(
        "POST",
        path,
        service.bureau,
        json={"group": "unemployed", "since": "2025-01-15", "source": "失业登记"},
    )
    assert r.status_code == 201, r.text
    assert [g["group"] for g in r.json()["groups"]] == ["unemployed", "veteran"]
    # The learner reads their own groups.
    r = service.call("GET", path, w.learner)
    assert r.status_code == 200 and len(r.json()["groups"]) == 2
    refused(service, "DELETE", f"{path}/veteran?reason=%20", w.operator, 422, "reason_required")
    r = service.call("DELETE", f"{path}/veteran?reason=登记有误", w.operator)
    assert r.status_code == 200, r.text
    assert [g["group"] for g in r.json()["groups"]] == ["unemployed"]
    refused(service, "DELETE", f"{path}/veteran?reason=again", w.operator, 409, "group_not_held")
    refused(service, "DELETE", f"{path}/pensioner?reason=x", w.operator, 422, "invalid_group")
    events = [
        (k, p["group"])
        for k, p in kinds(service, f"learner:{w.learner_id}")
        if k.startswith("learner_group")
    ]
    assert events == [
        ("learner_group_added", "veteran"),
        ("learner_group_added", "unemployed"),
        ("learner_group_removed", "veteran"),
    ]


def test_a_certificate_only_for_a_passed_assessment_and_only_by_the_bureau(
    service: Service,
) -> None:
    w = service.world(enrol=False)
    course = _course(service, w, occupation_code="6-18-02-04", skill_level=4)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    path = f"/api/v1/learners/{w.learner_id}/certificates"
    # The certificate's date is a local (Beijing) date, as the assessment's day is read.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    cert = {
        "course_id": course,
        "number": f"S{course:06d}-0001",
        "skill_level": 4,
        "issued_on": today,
        "issuing_body": "深圳市职业技能鉴定指导中心",
    }
    refused(service, "POST", path, service.bureau, 409, "assessment_not_passed", json=cert)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": False, "score": 41},
    )
    assert r.status_code == 201, r.text
    refused(service, "POST", path, service.bureau, 409, "assessment_not_passed", json=cert)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True, "score": 78},
    )
    assert r.status_code == 201, r.text
    # The institution never certifies its own learners.
    refused(service, "POST", path, w.operator, 403, "wrong_role", json=cert)
    refused(service, "POST", path, service.token(Role.inspector), 403, "wrong_role", json=cert)
    refused(
        service,
        "POST",
        path,
        service.bureau,
        422,
        "level_mismatch",
        json={**cert, "skill_level": 3},
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    refused(
        service,
        "POST",
        path,
        service.bureau,
        422,
        "future_date",
        json={**cert, "issued_on": tomorrow},
    )
    refused(
        service,
        "POST",
        path,
        service.bureau,
        422,
        "before_assessment",
        json={**cert, "issued_on": "2020-01-01"},
    )
    r = service.call("POST", path, service.bureau, json=cert)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert (issued["skill_level"], issued["occupation_code"]) == (4, "6-18-02-04")
    refused(
        service,
        "POST",
        path,
        service.bureau,
        409,
        "already_certified",
        json={**cert, "number": cert["number"] + "b"},
    )
    # The number is unique across learners.
    w2 = service.world(enrol=False)
    c2 = _course(service, w2, occupation_code="6-18-02-04", skill_level=4)
    service.call(
        "POST",
        f"/api/v1/courses/{c2}/enrolments",
        w2.operator,
        json={"learner_ids": [w2.learner_id]},
    )
    r = service.call(
        "POST",
        f"/api/v1/courses/{c2}/assessments",
        w2.operator,
        json={"learner_id": w2.learner_id, "passed": True},
    )
    assert r.status_code == 201, r.text
    refused(
        service,
        "POST",
        f"/api/v1/learners/{w2.learner_id}/certificates",
        service.bureau,
        409,
        "duplicate_certificate_number",
        json={**cert, "course_id": c2},
    )
    refused(
        service,
        "POST",
        f"/api/v1/learners/{w2.learner_id}/certificates",
        service.bureau,
        409,
        "learner_other_institution",
        json=cert,
    )
    # A fail recorded after a pass: the latest result counts, as for eligibility.
    w3 = service.world(enrol=False)
    c3 = _course(service, w3, occupation_code="6-18-02-04", skill_level=4)
    service.call(
        "POST",
        f"/api/v1/courses/{c3}/enrolments",
        w3.operator,
        json={"learner_ids": [w3.learner_id]},
    )
    for passed in (True, False):
        r = service.call(
            "POST",
            f"/api/v1/courses/{c3}/assessments",
            w3.operator,
            json={"learner_id": w3.learner_id, "passed": passed},
        )
        assert r.status_code == 201, r.text
    refused(
        service,
        "POST",
        f"/api/v1/learners/{w3.learner_id}/certificates",
        service.bureau,
        409,
        "assessment_not_passed",
        json={**cert, "course_id": c3, "number": "S-other"},
    )
    # Read by the learner, their institution, the bureau; never another institution.
    for token in (w.learner, w.operator, service.bureau):
        r = service.call("GET", path, token)
        assert r.status_code == 200 and [c["number"] for c in r.json()] == [cert["number"]]
    refused(service, "GET", path, w2.operator, 403, "other_institution")
    refused(service, "GET", path, w2.learner, 403, "not_your_data")
    events = [p for k, p in kinds(service, f"learner:{w.learner_id}") if k == "certificate_issued"]
    assert len(events) == 1 and events[0]["number"] == cert["number"]
    assert events[0]["result_id"] == issued["result_id"]


@pytest.mark.parametrize("code", ["110000", "510100", "650102"])
def test_province_city_and_county_codes_are_all_recorded(service: Service, code: str) -> None:
    w = service.world(enrol=False)
    r = service.call(
        "PUT",
        f"/api/v1/institutions/{w.institution_id}/profile",
        service.bureau,
        json={**PROFILE, "division_code": code},
    )
    assert r.status_code == 200, r.text
    level = r.json()["division"]["level"]
    assert level == {"110000": "province", "510100": "city", "650102": "county"}[code]


def test_the_console_shows_the_records_in_chinese(service: Service) -> None:
    from tests.supervisor.test_console_pages import _open, console

    w = service.world(enrol=False)
    r = service.call(
        "PUT", f"/api/v1/institutions/{w.institution_id}/profile", service.bureau, json=PROFILE
    )
    assert r.status_code == 200, r.text
    course = _course(service, w, occupation_code="6-18-02-04", skill_level=4)
    r = service.call(
        "POST",
        f"/api/v1/learners/{w.learner_id}/groups",
        w.operator,
        json={"group": "veteran", "since": "2024-05-01", "source": "退役军人事务局"},
    )
    assert r.status_code == 201, r.text
    c, _ = console(service, w.operator)
    page = c.get("/console/institutions").text
    assert 'data-code="440305"' in page and "广东" in page and "（县/区）" not in page
    assert "县/区" in page and PROFILE["licence_number"] in page and "李四" in page
    assert "行政区划" in page and "办学许可证号" in page
    page = c.get("/console/learners").text
    assert "重点群体" in page and 'data-group="veteran"' in page and "退役军人" in page
    page = c.get("/console/courses").text
    assert f'<tr data-id="{course}">' in page and "6-18-02-04" in page and "四级/中级工" in page
    # Another institution's operator sees none of it.
    other = other_operator(service)
    oc, _ = console(service, other)
    try:
        assert PROFILE["licence_number"] not in oc.get("/console/institutions").text
    finally:
        while _open:  # the console clients (that module closes its own after each test)
            _open.pop().close()


def test_a_roster_may_carry_key_groups(service: Service) -> None:
    from tests.supervisor.conftest import new_id_number
    from tests.supervisor.registry.test_roster_import import post, xlsx

    w = service.world(enrol=False)
    ids = [new_id_number("19850101"), new_id_number("19920315")]
    bad = xlsx([["姓名", "身份证号", "重点群体"], ["张三", ids[0], "农民工、退休人员"]])
    before = service.event_count()
    r = post(service, w, bad)
    assert r.status_code == 422 and r.json()["reason"] == "roster_has_errors", r.text
    assert service.event_count() == before
    book = xlsx(
        [
            ["姓名", "身份证号", "重点群体"],
            ["张三", ids[0], "农民工、退役军人"],
            ["李四", ids[1], None],
        ]
    )
    r = post(service, w, book)
    assert r.status_code == 201, r.text
    registered = {
        lr.id_number: lr.id for lr in service.storage.registry.list_learners(w.institution_id)
    }
    zhang = registered[ids[0]]
    r = service.call("GET", f"/api/v1/learners/{zhang}/groups", w.operator)
    assert r.status_code == 200, r.text
    got = r.json()["groups"]
    assert [g["group"] for g in got] == ["rural_migrant_worker", "veteran"]
    assert {g["source"] for g in got} == {"roster import"}
    r = service.call("GET", f"/api/v1/learners/{registered[ids[1]]}/groups", w.operator)
    assert r.json()["groups"] == []
    # The same file again adds nothing: the groups are held already.
    before = service.event_count()
    r = post(service, w, book)
    assert r.status_code in (200, 201), r.text
    assert service.event_count() == before

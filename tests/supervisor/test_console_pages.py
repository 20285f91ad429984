"""The operator console over HTTP on SQLite and PostgreSQL: sign-in, CSRF on every form,
the roster import's per-row report (nothing registered from a file that fails), rosters,
a statement on a flag, the bureau's pages, and the pages in Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from storage.types import Role
from supervisor.checks.flags import raise_flag
from supervisor.rules.flags import EvidenceRef
from tests.supervisor.conftest import Service, new_id_number
from tests.supervisor.registry.test_roster_import import bad_check_digit, csv_bytes, xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_open: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def client(svc: Service) -> httpx.Client:
    c = httpx.Client(base_url=svc.url, timeout=60, headers={"Accept-Language": "zh-CN"})
    _open.append(c)
    return c


def console(svc: Service, token: str) -> tuple[httpx.Client, str]:
    """A signed-in console client (its own cookie jar) and the pages' CSRF value."""
    c = client(svc)
    r = c.post("/console/login", data={"token": token})
    assert r.status_code == 303 and r.headers["location"] == "/console", r.text
    r = c.get("/console/flags")
    assert r.status_code == 200, r.text
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', r.text)
    assert found is not None
    return c, found.group(1)


def test_sign_in_is_required_and_a_wrong_token_is_refused(service: Service) -> None:
    c = client(service)
    r = c.get("/console/learners")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    r = c.post("/console/login", data={"token": "nope"})
    assert r.status_code == 401 and 'id="login-error"' in r.text
    w = service.world(enrol=False)
    r = c.post("/console/login", data={"token": w.learner})
    assert r.status_code == 403
    # The page's headers: no inline script allowed, never cached.
    r = c.get("/console/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


def test_the_cookie_is_an_opaque_session_that_sign_out_revokes(service: Service) -> None:
    w = service.world(enrol=False)
    c, csrf = console(service, w.operator)
    session = c.cookies.get("sv_console")
    # The token never goes back to the browser: the cookie is a server-side session.
    assert session and w.operator not in session and session != w.operator
    copied = client(service)
    copied.cookies.set("sv_console", session)
    assert copied.get("/console/learners").status_code == 200
    r = c.post("/console/logout", data={"csrf": csrf})
    assert r.status_code == 303
    # Revoked on the server: the copied cookie no longer signs anyone in.
    r = copied.get("/console/learners")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


def test_operator_imports_a_roster_with_a_bad_row_then_the_fixed_file(service: Service) -> None:
    w = service.world(enrol=False)
    c, csrf = console(service, w.operator)
    r = c.get("/console/import")
    assert r.status_code == 200 and 'id="import-form"' in r.text
    assert f'<option value="{w.course_id}"' in r.text
    good = new_id_number()
    bad = bad_check_digit(new_id_number())
    book = xlsx([["姓名", "身份证号"], ["赵六", good], ["钱七", bad]])
    files = {"file": ("名单.xlsx", book, XLSX)}
    before = (len(service.storage.registry.list_learners(w.institution_id)), service.event_count())

    # No CSRF value: refused, nothing registered.
    r = c.post("/console/import", data={"mode": "all"}, files=files)
    assert r.status_code == 403 and 'data-reason="csrf"' in r.text

    r = c.post("/console/import", data={"mode": "all", "csrf": csrf}, files=files)
    assert r.status_code == 422, r.text
    assert 'data-row="3" data-status="error"' in r.text
    assert 'data-code="id_number_check_digit"' in r.text
    assert "校验码" in r.text  # the reason, in Chinese
    assert 'data-imported="no"' in r.text
    after = (len(service.storage.registry.list_learners(w.institution_id)), service.event_count())
    assert after == before

    fixed = xlsx([["姓名", "身份证号"], ["赵六", good], ["钱七", new_id_number()]])
    data = {"mode": "all", "csrf": csrf, "course_id": str(w.course_id)}
    r = c.post("/console/import", data=data, files={"file": ("名单.xlsx", fixed, XLSX)})
    assert r.status_code == 200, r.text
    assert 'data-imported="yes"' in r.text
    names = {lr.full_name for lr in service.storage.registry.list_learners(w.institution_id)}
    assert {"赵六", "钱七"} <= names
    assert service.event_count() == before[1] + 2  # two enrolments on the course

    r = c.get("/console/learners")
    assert r.status_code == 200 and "赵六" in r.text and good not in r.text  # masked

    # A file that is not a spreadsheet: a clear message, nothing registered.
    r = c.post(
        "/console/import",
        data={"mode": "all", "csrf": csrf},
        files={"file": ("photo.csv", b"\x89PNG\r\n\x1a\n\0\0", "text/csv")},
    )
    assert r.status_code == 415 and 'id="import-error"' in r.text
    assert "不是电子表格" in r.text


def test_roster_of_a_class_and_a_statement_on_a_flag(service: Service) -> None:
    w = service.world(enrol=False)
    r = service.call(
        "POST",
        "/api/v1/courses",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "name": "电工 四级 (课堂)",
            "required_hours": 40,
            "delivery_mode": "classroom",
        },
    )
    assert r.status_code == 201, r.text
    course = r.json()["id"]
    r = service.call(
        "POST",
        "/api/v1/classes",
        w.operator,
        json={
            "course_id": course,
            "name": "电工一班",
            "mode": "training",
            "starts_at": "2030-01-01T01:00:00Z",
            "ends_at": "2030-01-01T09:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    class_id = r.json()["id"]
    c, csrf = console(service, w.operator)
    book = csv_bytes([["姓名", "身份证号"], ["孙八", new_id_number()]])
    r = c.post(
        "/console/import",
        data={"mode": "all", "csrf": csrf, "class_id": str(class_id)},
        files={"file": ("名单.csv", book, "text/csv")},
    )
    assert r.status_code == 200 and 'data-imported="yes"' in r.text, r.text
    r = c.get(f"/console/classes/{class_id}")
    assert r.status_code == 200 and "孙八" in r.text
    assert f'name="learner_id" value="{w.learner_id}"' in r.text  # Grace Hopper may join
    r = c.post(
        f"/console/classes/{class_id}/roster",
        data={"csrf": csrf, "learner_id": str(w.learner_id)},
    )
    assert r.status_code == 303
    roster = {e.learner_id for e in service.storage.classroom.roster(class_id)}
    assert w.learner_id in roster and len(roster) == 2

    # A camera, and the filing (a ledger event in the class's chain).
    r = c.post(
        f"/console/classes/{class_id}/cameras",
        data={"csrf": csrf, "url": "rtsp://user:secret@10.20.30.40/stream1", "label": "前门"},
    )
    assert r.status_code == 303, r.text
    before = service.event_count()
    filing = {"teacher": "李老师", "teaching_plan": "八学时实操", "assessment_plan": "实操考核"}
    r = c.post(f"/console/classes/{class_id}/filing", data=filing)
    assert r.status_code == 403 and service.event_count() == before  # no CSRF value
    r = c.post(f"/console/classes/{class_id}/filing", data={**filing, "csrf": csrf})
    assert r.status_code == 303, r.text
    assert service.event_count() == before + 1
    r = c.get(f"/console/classes/{class_id}")
    assert 'data-filed="yes"' in r.text and "前门" in r.text
    assert "secret" not in r.text  # the camera's credentials are not shown
    # Test the connection of a camera nothing answers at: a clear "no picture".
    r = c.post(
        f"/console/classes/{class_id}/cameras",
        data={"csrf": csrf, "url": "rtsp://127.0.0.1:9/none", "label": "后门"},
    )
    assert r.status_code == 303, r.text
    (dead,) = [x for x in service.storage.classroom.cameras(class_id) if x.label == "后门"]
    before = service.event_count()
    r = c.post(f"/console/classes/{class_id}/cameras/{dead.id}/test", data={"csrf": csrf})
    assert r.status_code == 200, r.text
    assert 'data-reachable="no"' in r.text and "没有画面" in r.text
    r = service.call("POST", f"/api/v1/classes/{class_id}/cameras/{dead.id}/test", w.operator)
    assert r.status_code == 200, r.text
    assert r.json()["reachable"] is False and r.json()["error"]
    r = service.call("POST", f"/api/v1/classes/{class_id}/cameras/9999/test", w.operator)
    assert r.status_code == 404
    assert service.event_count() == before  # a test records nothing

    # A flag always carries its evidence: here the institution's filing event stands in
    # for the sessions a real duplicate_device flag names.
    filed = service.storage.ledger.read_chain(f"institution:{w.institution_id}")[0]
    flag = raise_flag(
        service.storage,
        "duplicate_device",
        w.institution_id,
        w.learner_id,
        [],
        "two learners studied from one device",
        [EvidenceRef(filed.chain_id, filed.seq, filed.hash, None, {})],
        datetime.now(UTC),
    )
    r = c.get("/console/flags")
    assert r.status_code == 200 and f'data-id="{flag.id}"' in r.text
    before = service.event_count()
    r = c.post(f"/console/flags/{flag.id}/statement", data={"statement": "同一台电脑"})
    assert r.status_code == 403  # no CSRF value
    r = c.post(
        f"/console/flags/{flag.id}/statement", data={"statement": "同一台电脑", "csrf": csrf}
    )
    assert r.status_code == 303
    assert service.event_count() == before + 1
    r = c.get(f"/console/flags/{flag.id}")
    assert "同一台电脑" in r.text and 'data-status="open"' in r.text  # it decides nothing

    # Another institution's operator sees neither the class nor the flag.
    other = service.world(enrol=False)
    c2, _ = console(service, other.operator)
    assert c2.get(f"/console/classes/{class_id}").status_code == 403
    assert c2.get(f"/console/flags/{flag.id}").status_code == 403


def test_bureau_pages(service: Service) -> None:
    w = service.world(enrol=False)
    c, _ = console(service, service.bureau)
    r = c.get("/console")
    assert r.status_code == 303 and r.headers["location"] == "/console/institutions"
    r = c.get("/console/institutions")
    assert r.status_code == 200 and f'data-id="{w.institution_id}"' in r.text
    assert "正常" in r.text or "active" not in r.text
    r = c.get("/console/catalogue")
    assert r.status_code == 200 and f'data-id="{w.course_id}"' in r.text
    # The bureau reads learners; it does not import them.
    r = c.get(f"/console/learners?institution_id={w.institution_id}")
    assert r.status_code == 200 and "Grace Hopper" in r.text
    r = c.get("/console/import")
    assert r.status_code == 403
    inspector, _ = console(service, service.token(Role.inspector))
    r = inspector.get("/console/institutions")
    assert r.status_code == 200 and 'id="status-form"' not in r.text  # the bureau's duty

    # The bureau suspends the institution, with a reason: a ledger event.
    c, csrf = console(service, service.bureau)
    before = service.event_count()
    change = {"institution_id": str(w.institution_id), "status": "suspended", "reason": "虚报学时"}
    r = c.post("/console/institutions/status", data=change)
    assert r.status_code == 403 and service.event_count() == before  # no CSRF value
    r = c.post("/console/institutions/status", data={**change, "csrf": csrf})
    assert r.status_code == 303, r.text
    assert service.event_count() == before + 1
    r = c.get("/console/institutions")
    assert f'<tr data-id="{w.institution_id}" data-status="suspended">' in r.text
    # Its operator reads, but imports nobody now.
    op, op_csrf = console(service, w.operator)
    book = csv_bytes([["姓名", "身份证号"], ["甲", new_id_number()]])
    r = op.post(
        "/console/import",
        data={"mode": "all", "csrf": op_csrf},
        files={"file": ("名单.csv", book, "text/csv")},
    )
    assert r.status_code == 403 and 'id="import-error"' in r.text
    r = service.call(
        "POST",
        f"/api/v1/institutions/{w.institution_id}/status",
        service.bureau,
        json={"status": "active", "reason": "整改完成"},
    )
    assert r.status_code == 200, r.text

    # Claims of a period: Grace Hopper is registered but has no consent, no hours.
    r = service.call(
        "POST",
        f"/api/v1/courses/{w.course_id}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    r = service.call(
        "POST",
        f"/api/v1/courses/{w.course_id}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True},
    )
    assert r.status_code == 201, r.text
    # A local (Beijing) date, the day after today there.
    today = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).date().isoformat()
    query = f"institution_id={w.institution_id}&date_from=2020-01-01&date_to={today}"
    r = c.get(f"/console/claims?{query}")
    assert r.status_code == 200, r.text
    row = re.search(
        rf'<tr data-learner="{w.learner_id}" data-eligible="(\w+)">(.*?)</tr>', r.text, re.S
    )
    assert row is not None and row.group(1) == "no"
    assert "课程未公示" in row.group(2)  # the reasons, in Chinese
    assert c.get("/console/claims?date_from=nope&date_to=2020-01-01").status_code == 422


def test_operator_records_an_assessment_result(service: Service) -> None:
    w = service.world(enrol=False)
    r = service.call(
        "POST",
        f"/api/v1/courses/{w.course_id}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    c, csrf = console(service, w.operator)
    r = c.get("/console/courses")
    assert r.status_code == 200 and f'data-id="{w.course_id}"' in r.text
    r = c.get(f"/console/courses/{w.course_id}")
    assert r.status_code == 200 and "Grace Hopper" in r.text
    before = service.event_count()
    form = {"csrf": csrf, "learner_id": str(w.learner_id), "passed": "yes", "score": "86.5"}
    r = c.post(f"/console/courses/{w.course_id}/assessments", data={**form, "score": "x"})
    assert r.status_code == 422 and service.event_count() == before
    r = c.post(f"/console/courses/{w.course_id}/assessments", data=form)
    assert r.status_code == 303, r.text
    assert service.event_count() == before + 1
    r = c.get(f"/console/courses/{w.course_id}")
    assert f'data-learner="{w.learner_id}" data-passed="yes"' in r.text and "86.5" in r.text


def test_bureau_sets_and_publishes_a_subsidy_standard(service: Service) -> None:
    w = service.world(enrol=False)
    c, csrf = console(service, service.bureau)
    r = c.get(f"/console/catalogue/{w.course_id}")
    assert r.status_code == 200 and 'id="standard-form"' in r.text
    standard = {
        "csrf": csrf,
        "action": "set",
        "occupation": "6-31-01-03",
        "skill_level": "4",
        "subsidy_kind": "per_learner",
        "subsidy_amount": "1500",
    }
    r = c.post(f"/console/catalogue/{w.course_id}", data={**standard, "skill_level": "9"})
    assert r.status_code == 422
    r = c.post(f"/console/catalogue/{w.course_id}", data=standard)
    assert r.status_code == 303, r.text
    before = service.event_count()
    r = c.post(f"/console/catalogue/{w.course_id}", data={"csrf": csrf, "action": "publish"})
    assert r.status_code == 303, r.text
    assert service.event_count() > before  # publishing is in the course's chain
    r = c.get(f"/console/catalogue/{w.course_id}")
    assert 'data-status="published"' in r.text and "1500.00" in r.text
    assert 'id="standard-form"' not in r.text  # frozen once published
    # The institution reads its catalogue, but sets no standard.
    op, op_csrf = console(service, w.operator)
    r = op.get(f"/console/catalogue/{w.course_id}")
    assert r.status_code == 200 and 'id="publish-form"' not in r.text
    r = op.post(f"/console/catalogue/{w.course_id}", data={"csrf": op_csrf, "action": "withdraw"})
    assert r.status_code == 403


def test_console_templates_hold_no_inline_script_style_or_handler() -> None:
    from supervisor.web import TEMPLATES_DIR

    pages = sorted(TEMPLATES_DIR.glob("*console*.html"))
    assert len(pages) >= 10
    for page in pages:
        html = page.read_text()
        assert "<script" not in html, page.name
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page.name}: inline event handler"
        assert "style=" not in html and "<style" not in html, f"{page.name}: inline style"
        assert "javascript:" not in html.lower(), page.name


def test_staff_create_a_class_in_local_time_and_bad_input_creates_nothing(
    service: Service,
) -> None:
    w = service.world(enrol=False)
    body = {"institution_id": w.institution_id, "name": "焊工 (课堂)", "required_hours": 40}
    r = service.call(
        "POST", "/api/v1/courses", w.operator, json={**body, "delivery_mode": "classroom"}
    )
    assert r.status_code == 201, r.text
    course = r.json()["id"]
    c, csrf = console(service, w.operator)
    page = c.get("/console/classes")
    # Only classroom and blended courses are offered (the world's own course is online).
    assert f'<option value="{course}"' in page.text
    assert f'<option value="{w.course_id}"' not in page.text
    form = {
        "csrf": csrf,
        "course_id": str(course),
        "name": "焊工一班",
        "mode": "training",
        "starts_at": "2030-03-02T09:00",
        "ends_at": "2030-03-02T17:30",
    }
    before = len(service.storage.classroom.list_classes(w.institution_id, None))
    for bad in (
        {"csrf": "wrong"},
        {"ends_at": "2030-03-02T08:00"},  # ends before it starts
        {"starts_at": "tomorrow"},
        {"mode": "party"},
        {"course_id": str(w.course_id)},  # an online course
    ):
        r = c.post("/console/classes", data={**form, **bad})
        assert r.status_code in (403, 422), (bad, r.status_code)
    assert len(service.storage.classroom.list_classes(w.institution_id, None)) == before
    r = c.post("/console/classes", data=form)
    assert r.status_code == 303, r.text
    made = service.storage.classroom.list_classes(w.institution_id, None)[-1]
    # Typed in Beijing time (web.timezone): 09:00 there is 01:00 UTC.
    assert made.name == "焊工一班"
    assert made.starts_at == datetime(2030, 3, 2, 1, 0, tzinfo=UTC)
    assert made.ends_at == datetime(2030, 3, 2, 9, 30, tzinfo=UTC)

"""The open appeals queue of the inspector's workspace: read and decided with the
workspace session and its CSRF header; never by the institution's operator."""

from __future__ import annotations

from storage.types import Role
from tests.supervisor.conftest import Service
from tests.supervisor.inspect.test_workspace_sessions import _client, _csrf, _sign_in


def test_appeals_are_listed_and_decided_in_the_workspace(sqlite_service: Service) -> None:
    svc = sqlite_service
    svc.forget_failed_sign_ins()
    w = svc.world(enrol=False)
    flag = svc.storage.registry.raise_flag("duplicate_face", "{}", w.institution_id, w.learner_id)
    r = svc.call(
        "POST",
        "/api/v1/appeals",
        w.learner,
        json={"subject": "flag", "flag_id": flag.id, "statement": "这是我本人"},
    )
    assert r.status_code == 201, r.text
    appeal = r.json()["id"]
    path = f"/inspect/appeals/{appeal}/decision"
    decision = {"upheld": True, "note": "核实为本人"}

    # The institution's operator has no appeals queue and decides nothing.
    with _client(svc) as c:
        _sign_in(c, w.operator)
        r = c.get("/inspect/appeals")
        assert r.status_code == 403 and 'data-reason="wrong_role"' in r.text
        assert 'href="/inspect/appeals"' not in c.get("/inspect").text
        r = c.post(path, json=decision, headers=_csrf(c))
        assert r.status_code == 403 and r.json()["reason"] == "wrong_role"
    assert svc.storage.appeals.get(appeal).decision is None

    with _client(svc) as c:
        _sign_in(c, svc.token(Role.inspector))
        r = c.get("/inspect/appeals")
        assert r.status_code == 200 and "待处理申诉" in r.text
        assert 'href="/inspect/appeals"' in r.text
        r = c.get("/inspect/appeals/open")
        assert r.status_code == 200 and appeal in {a["id"] for a in r.json()}
        r = c.post(path, json=decision)
        assert r.status_code == 403 and r.json()["reason"] == "csrf"
        r = c.post(path, json={"upheld": "maybe"}, headers=_csrf(c))
        assert r.status_code == 422
        assert svc.storage.appeals.get(appeal).decision is None
        r = c.post(path, json=decision, headers=_csrf(c))
        assert r.status_code == 200 and r.json()["status"] == "upheld", r.text
        r = c.post(path, json=decision, headers=_csrf(c))
        assert r.status_code == 409 and r.json()["reason"] == "appeal_decided"
        assert appeal not in {a["id"] for a in c.get("/inspect/appeals/open").json()}
    assert svc.storage.subsidy.get_flag(flag.id).status.value == "dismissed"

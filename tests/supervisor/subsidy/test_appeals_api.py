"""Appeals through the real HTTP API, on SQLite and PostgreSQL: a learner disputes a
flag or a failed check from their own token; bureau staff or an inspector decides;
the decision reaches eligibility. Every session here is real study with real face
checks on real photos; every refusal is a 4xx with a reason and leaves the ledger as
it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage.types import Role
from supervisor.ledger.events import parse_iso
from tests.supervisor.conftest import EMPTY_FRAME, HOPPER_FRAME, Service, StillFrames, World
from tests.supervisor.subsidy.test_subsidy_api import _course, _eligibility, _publish, _study


def _ready(svc: Service, w: World, hours: float = 0.0005, mode: str = "online") -> int:
    """A published course the world's learner is enrolled in."""
    course = _course(svc, w, hours, mode)
    _publish(svc, w, course)
    r = svc.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    return course


def _assess(svc: Service, w: World, course: int) -> None:
    r = svc.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True},
    )
    assert r.status_code == 201, r.text


def _refused(
    svc: Service, method: str, path: str, token: str, status: int, reason: str, **kw: Any
) -> None:
    """A refusal with its status and reason that changes nothing in the ledger."""
    before = svc.event_count()
    r = svc.call(method, path, token, **kw)
    assert r.status_code == status and r.json()["reason"] == reason, (path, kw, r.text)
    assert svc.event_count() == before


def _file(svc: Service, token: str, **body: Any) -> dict[str, Any]:
    r = svc.call("POST", "/api/v1/appeals", token, json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    assert out["status"] == "open" and out["decision"] is None
    return out


def _decide(svc: Service, token: str, appeal_id: int, upheld: bool, note: str) -> dict[str, Any]:
    r = svc.call(
        "POST",
        f"/api/v1/appeals/{appeal_id}/decision",
        token,
        json={"upheld": upheld, "note": note},
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _claim(svc: Service, token: str, w: World, course: int) -> dict[str, Any]:
    """The learner's claim row, from a full scan of the ledger (stored summaries)."""
    now = datetime.now(UTC)
    period = {
        "from": (now - timedelta(days=1)).isoformat(),
        "until": (now + timedelta(days=1)).isoformat(),
        "institution_id": w.institution_id,
    }
    r = svc.call("GET", "/api/v1/claims", token, params=period)
    assert r.status_code == 200, r.text
    (row,) = [x for x in r.json() if x["course_id"] == course]
    return row  # type: ignore[no-any-return]


def test_an_appeal_overturns_a_flag_and_restores_eligibility(service: Service) -> None:
    w = service.world()
    course = _ready(service, w)
    _study(service, w, course, checks=2)
    _assess(service, w, course)
    inspector = service.token(Role.inspector)
    # The same photo at every check: the fraud scan raises a replayed-image flag.
    r = service.call("POST", "/api/v1/fraud/scan", inspector)
    assert r.status_code == 200, r.text
    (flag,) = [f for f in r.json() if f["learner_id"] == w.learner_id]
    r = service.call(
        "POST",
        f"/api/v1/flags/{flag['id']}/decision",
        inspector,
        json={"status": "confirmed", "note": "identical distances"},
    )
    assert r.status_code == 200, r.text
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert not e["eligible"] and e["reasons"] == ["confirmed_fraud_flag"]
    assert not _claim(service, inspector, w, course)["eligible"]

    # The learner's page lists the flag, with its time in Beijing time.
    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/appealable", w.learner)
    assert r.status_code == 200, r.text
    (listed,) = r.json()["flags"]
    assert listed["flag_id"] == flag["id"] and listed["appeal"] is None
    assert listed["raised_at_local"].endswith("(UTC+8)")
    assert "summary" not in listed and "other_learner_ids" not in listed

    # Only the learner files, with their own token.
    body = {"subject": "flag", "flag_id": flag["id"], "statement": "我本人在学习，摄像头卡住了"}
    for token in (w.operator, service.bureau, inspector, service.admin):
        _refused(service, "POST", "/api/v1/appeals", token, 403, "learner_only", json=body)
    appeal = _file(service, w.learner, **body)
    assert (
        appeal["learner_id"] == w.learner_id and appeal["ledger_chain"] == f"appeal:{appeal['id']}"
    )
    _refused(service, "POST", "/api/v1/appeals", w.learner, 409, "appeal_exists", json=body)

    # The institution cannot decide it, nor the learner; the bureau upholds it.
    path = f"/api/v1/appeals/{appeal['id']}/decision"
    decision = {"upheld": True, "note": "verified in person"}
    _refused(service, "POST", path, w.operator, 403, "wrong_role", json=decision)
    _refused(service, "POST", path, w.learner, 403, "wrong_role", json=decision)
    _refused(service, "POST", path, service.bureau, 422, "appeal_note_required",
             json={"upheld": True, "note": "  "})  # fmt: skip
    r = service.call("GET", "/api/v1/appeals", service.bureau, params={"status": "open"})
    assert appeal["id"] in [a["id"] for a in r.json()]
    decided = _decide(service, service.bureau, appeal["id"], True, "verified in person")
    assert decided["status"] == "upheld" and decided["decision"]["seq"] == 2
    _refused(service, "POST", path, inspector, 409, "appeal_decided",
             json={"upheld": False, "note": "no"})  # fmt: skip

    # The flag is dismissed by a decision in its own chain that names the appeal, and
    # the learner is eligible again: on one answer and in a full scan alike.
    r = service.call("GET", f"/api/v1/flags/{flag['id']}", inspector)
    assert r.json()["status"] == "dismissed"
    last = r.json()["decisions"][-1]
    assert last["status"] == "dismissed" and f"appeal {appeal['id']} upheld" in last["note"]
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert e["eligible"] and e["reasons"] == [] and e["amount"] == 1500
    assert _claim(service, inspector, w, course)["eligible"]
    kinds = [x.kind for x in service.storage.ledger.read_chain(f"appeal:{appeal['id']}")]
    assert kinds == ["appeal_filed", "appeal_decided"]

    # The learner sees the decision on their page.
    r = service.call("GET", "/api/v1/appeals", w.learner)
    (mine,) = r.json()
    assert mine["status"] == "upheld" and mine["decision"]["note"] == "verified in person"
    assert mine["decision"]["decided_at_local"].endswith("(UTC+8)")
    # Upheld: the subject takes no new appeal.
    _refused(service, "POST", "/api/v1/appeals", w.learner, 409, "nothing_to_appeal", json=body)


def _study_with_a_failure(svc: Service, w: World, course: int) -> str:
    """A session: passes, one check answered with an empty room (failed), then passes."""
    r = svc.sign_in(w.learner, course, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid: str = r.json()["session"]["session_id"]
    with StillFrames(svc, w.learner, sid) as page:
        assert page.check(HOPPER_FRAME)["passed"]
        _, capture = page.request()
        r = page.answer(capture, [EMPTY_FRAME] * int(capture.get("count") or 1))
        assert r.status_code == 202, r.text
        failed = page.next("result", where=lambda m: m.get("check_id") == capture["check_id"])
        assert not failed["passed"]
        for _ in range(2):
            assert page.check(HOPPER_FRAME)["passed"]
    return sid


def _stopped_seconds(svc: Service, sid: str, seq: int) -> float:
    """The interval the failure at `seq` stopped: from the passed check before it to the
    passed check after it (no pause in between in this session)."""
    events = svc.storage.ledger.read_chain(f"session:{sid}")
    import json

    checks = [(e.seq, json.loads(e.payload)) for e in events if e.kind == "check"]
    before = [p for s, p in checks if s < seq and p["passed"]][-1]
    after = [p for s, p in checks if s > seq and p["passed"]][0]
    assert not [e for e in events if seq < e.seq and e.kind == "state_changed"]
    return (parse_iso(after["at"]) - parse_iso(before["at"])).total_seconds()


def test_an_upheld_appeal_on_a_failed_check_credits_the_stopped_interval(
    service: Service,
) -> None:
    w = service.world()
    course = _ready(service, w, hours=40)
    sid = _study_with_a_failure(service, w, course)
    _assess(service, w, course)
    inspector = service.token(Role.inspector)

    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/appealable", w.learner)
    assert r.status_code == 200, r.text
    (failure,) = [f for f in r.json()["failures"] if f["chain_id"] == f"session:{sid}"]
    assert failure["subject"] == "check" and failure["verdict"] != "match"
    assert failure["at_local"].endswith("(UTC+8)")
    seq = failure["seq"]
    stopped = _stopped_seconds(service, sid, seq)
    assert stopped > 0

    before = _eligibility(service, w.learner, w.learner_id, course)
    # A full scan stores every chain's summary now: the decision comes after it.
    claimed = _claim(service, inspector, w, course)
    assert claimed["credited_hours"] == before["credited_hours"]

    body = {"subject": "check", "chain_id": f"session:{sid}", "seq": seq,
            "statement": "网络断了，我一直在学习"}  # fmt: skip
    # A passed check, an unknown event or a roll call named as a check: refused.
    first_check = next(
        e.seq for e in service.storage.ledger.read_chain(f"session:{sid}") if e.kind == "check"
    )
    _refused(service, "POST", "/api/v1/appeals", w.learner, 409, "nothing_to_appeal",
             json={**body, "seq": first_check})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 404, "unknown_subject",
             json={**body, "seq": 10_000})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 422, "wrong_subject",
             json={**body, "subject": "roll_call"})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 404, "unknown_subject",
             json={**body, "chain_id": "session:no-such-session"})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 422, "empty_statement",
             json={**body, "statement": "   "})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 422, "statement_too_long",
             json={**body, "statement": "长" * 2001})  # fmt: skip

    # Dismissed: nothing changes.
    appeal = _file(service, w.learner, **body)
    dismissed = _decide(service, inspector, appeal["id"], False, "the room was empty")
    assert dismissed["status"] == "dismissed"
    assert _eligibility(service, w.learner, w.learner_id, course) == before
    assert _claim(service, inspector, w, course)["credited_hours"] == before["credited_hours"]

    # Appealed again and upheld: the interval the failure stopped is credited, on one
    # answer and in a full scan whose stored summaries predate the decision.
    again = _file(service, w.learner, **body)
    _refused(service, "POST", "/api/v1/appeals", w.learner, 409, "appeal_exists", json=body)
    upheld = _decide(service, service.bureau, again["id"], True, "server-side outage")
    assert upheld["status"] == "upheld"
    after = _eligibility(service, w.learner, w.learner_id, course)
    gained = (after["credited_hours"] - before["credited_hours"]) * 3600
    assert gained == pytest.approx(stopped, abs=0.01)
    assert after["reasons"] == before["reasons"] == ["insufficient_hours"]
    assert _claim(service, inspector, w, course)["credited_hours"] == after["credited_hours"]
    # An inspector's independent recomputation from the events agrees.
    now = datetime.now(UTC)
    r = service.call(
        "GET",
        "/api/v1/claims",
        inspector,
        params={
            "from": (now - timedelta(days=1)).isoformat(),
            "until": (now + timedelta(days=1)).isoformat(),
            "institution_id": w.institution_id,
            "recompute": "true",
        },
    )
    (row,) = [x for x in r.json() if x["course_id"] == course]
    assert row["credited_hours"] == after["credited_hours"]

    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/appealable", w.learner)
    (listed,) = [f for f in r.json()["failures"] if f["seq"] == seq]
    assert listed["appeal"]["id"] == again["id"] and listed["appeal"]["status"] == "upheld"


def test_hostile_appeals_are_refused_and_change_nothing(service: Service) -> None:
    w = service.world()
    course = _ready(service, w)
    sid = _study(service, w, course)
    other = service.world(enrol=False)
    inspector = service.token(Role.inspector)
    # A flag on the first learner, raised as a check would raise it.
    from supervisor.checks.flags import raise_flag
    from supervisor.rules.flags import EvidenceRef

    head = service.storage.ledger.read_chain(f"session:{sid}")[0]
    flag = raise_flag(
        service.storage,
        "replayed_image",
        w.institution_id,
        w.learner_id,
        (),
        "test flag",
        [EvidenceRef(head.chain_id, head.seq, head.hash, None, {})],
        datetime.now(UTC),
    )
    body = {"subject": "flag", "flag_id": flag.id, "statement": "not mine"}
    # Another learner cannot appeal this learner's flag or check, and learns nothing.
    before = service.event_count()
    r = service.call("POST", "/api/v1/appeals", other.learner, json=body)
    assert r.status_code == 403 and r.json()["reason"] == "not_your_subject"
    assert str(w.learner_id) not in r.text and "test flag" not in r.text
    assert service.event_count() == before
    check = {"subject": "check", "chain_id": f"session:{sid}", "seq": 2, "statement": "x"}
    _refused(service, "POST", "/api/v1/appeals", other.learner, 403, "not_your_subject", json=check)
    roll_call = {**check, "subject": "roll_call", "chain_id": f"class:1:learner:{w.learner_id}"}
    _refused(service, "POST", "/api/v1/appeals", other.learner, 403, "not_your_subject",
             json=roll_call)  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 404, "unknown_subject",
             json={**body, "flag_id": 10**6})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 422, "wrong_subject",
             json={**body, "chain_id": f"session:{sid}"})  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 422, "wrong_subject",
             json={**check, "chain_id": f"learner:{w.learner_id}"})  # fmt: skip
    # The other learner's page and appeals are not theirs to read.
    path = f"/api/v1/learners/{w.learner_id}/appealable"
    _refused(service, "GET", path, other.learner, 403, "not_your_data")
    _refused(service, "GET", path, w.operator, 403, "wrong_role")
    _refused(service, "GET", "/api/v1/appeals", w.operator, 403, "wrong_role")
    _refused(service, "GET", "/api/v1/appeals", other.learner, 403, "not_your_data",
             params={"learner_id": w.learner_id})  # fmt: skip

    appeal = _file(service, w.learner, **body)
    _refused(service, "GET", f"/api/v1/appeals/{appeal['id']}", other.learner, 403, "not_your_data")
    _refused(service, "GET", f"/api/v1/appeals/{appeal['id']}", w.operator, 403, "wrong_role")
    # Double appeal, and the operator deciding its own learner's case: refused.
    _refused(service, "POST", "/api/v1/appeals", w.learner, 409, "appeal_exists", json=body)
    decision = {"upheld": True, "note": "ok"}
    dpath = f"/api/v1/appeals/{appeal['id']}/decision"
    _refused(service, "POST", dpath, w.operator, 403, "wrong_role", json=decision)
    _refused(service, "POST", "/api/v1/appeals/999999/decision", inspector, 404, "unknown_appeal",
             json=decision)  # fmt: skip
    _decide(service, inspector, appeal["id"], False, "the evidence holds")
    # Deciding twice: refused, whoever asks and whatever they decide.
    _refused(service, "POST", dpath, service.bureau, 409, "appeal_decided", json=decision)
    # Dismissed: the flag is untouched (still open: it holds the learner up).
    assert service.storage.subsidy.get_flag(flag.id).status.value == "open"
    e = _eligibility(service, w.operator, w.learner_id, course)
    assert "open_fraud_flag" in e["reasons"]


def test_an_upheld_appeal_on_a_missed_roll_call_credits_classroom_time(service: Service) -> None:
    from supervisor.ledger import codec
    from supervisor.ledger.classroom import ClassPresence, learner_class_chain

    w = service.world()
    course = _ready(service, w, hours=40, mode="classroom")
    now = datetime.now(UTC)
    r = service.call(
        "POST",
        "/api/v1/classes",
        w.operator,
        json={
            "course_id": course,
            "name": "Welding, morning",
            "starts_at": (now - timedelta(hours=2)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    class_id = r.json()["id"]
    # The learner's chain in the class as a supervision run writes it (the classroom
    # tests drive real cameras for that): found, absent, found, found, 10 minutes apart.
    chain = learner_class_chain(class_id, w.learner_id)
    t0 = now - timedelta(hours=1)
    found = [True, False, True, True]
    service.storage.ledger.append(chain, [codec.encode(ClassPresence(
        check_id=f"rc-{n}", check_kind="roll_call", purpose="random",
        verdict="present" if ok else "absent", passed=ok, at=t0 + n * timedelta(minutes=10),
        distance=0.4 if ok else None, threshold=0.53, issues=(), faces=12, frames=3,
        evidence_sha256=None, class_id=class_id, learner_id=w.learner_id, run_id=1,
    )) for n, ok in enumerate(found)])  # fmt: skip
    _assess(service, w, course)

    before = _eligibility(service, w.learner, w.learner_id, course)
    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/appealable", w.learner)
    (absent,) = [f for f in r.json()["failures"] if f["chain_id"] == chain]
    assert absent["subject"] == "roll_call" and absent["verdict"] == "absent"
    body = {"subject": "roll_call", "chain_id": chain, "seq": absent["seq"],
            "statement": "我坐在摄像头拍不到的角落"}  # fmt: skip
    _refused(service, "POST", "/api/v1/appeals", w.learner, 422, "wrong_subject",
             json={**body, "subject": "check"})  # fmt: skip
    appeal = _file(service, w.learner, **body)
    _decide(service, service.bureau, appeal["id"], True, "teacher's register shows present")
    after = _eligibility(service, w.learner, w.learner_id, course)
    # The absence stopped 10 + 10 minutes (found before it, found after it).
    assert before["classroom_hours"] * 3600 == pytest.approx(10 * 60, abs=0.01)
    gained = after["classroom_hours"] - before["classroom_hours"]
    assert gained * 3600 == pytest.approx(20 * 60, abs=0.01)
    assert after["online_hours"] == before["online_hours"] == 0

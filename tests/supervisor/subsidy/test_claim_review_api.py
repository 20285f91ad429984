"""Claim review through the real HTTP API, on SQLite and PostgreSQL: submit, sample,
verify, decide, public notice (公示), objections, payment export and the history, with
the hostile requests of each step refused with a reason and the ledger unchanged.

Learners become eligible by real sessions with real face checks (Grace Hopper and the
astronaut, the two faces the packaged photos hold)."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta

from openpyxl import load_workbook

from storage.canonical import canonical_json
from storage.types import Role
from supervisor.rules.claims import draw_claims
from tests import imagegen
from tests.storage.helpers import tamper
from tests.supervisor.conftest import (
    ASTRONAUT_FRAME,
    HOPPER_FRAME,
    Service,
    StillFrames,
    World,
    institution_body,
    new_id_number,
)

ASTRONAUT_PHOTO = imagegen.jpeg_bytes(imagegen.astronaut())


def _course(svc: Service, w: World, name: str = "Welder, level 4") -> int:
    r = svc.call(
        "POST",
        "/api/v1/courses",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "name": name,
            "required_hours": 0.0005,
            "delivery_mode": "online",
        },
    )
    assert r.status_code == 201, r.text
    course: int = r.json()["id"]
    rules = {
        "occupation": "6-18-02-04",
        "skill_level": 4,
        "subsidy_kind": "per_learner",
        "subsidy_amount": 1500,
    }
    r = svc.call("PUT", f"/api/v1/courses/{course}/rules", svc.bureau, json=rules)
    assert r.status_code == 200, r.text
    r = svc.call("POST", f"/api/v1/courses/{course}/publish", svc.bureau)
    assert r.status_code == 200, r.text
    return course


def _learner(svc: Service, w: World, name: str, photo: bytes) -> tuple[int, str]:
    r = svc.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={"institution_id": w.institution_id, "full_name": name, "id_number": new_id_number()},
    )
    assert r.status_code == 201, r.text
    lid: int = r.json()["id"]
    r = svc.call("POST", f"/api/v1/learners/{lid}/tokens", svc.bureau)
    assert r.status_code == 201, r.text
    token: str = r.json()["secret"]
    version = svc.settings.security.consent_text_version
    r = svc.call("POST", f"/api/v1/learners/{lid}/consent", token, json={"text_version": version})
    assert r.status_code == 201, r.text
    r = svc.call(
        "POST",
        f"/api/v1/learners/{lid}/templates",
        token,
        files={"photo": ("me.jpg", photo, "image/jpeg")},
    )
    assert r.status_code == 201, r.text
    return lid, token


def _eligible(svc: Service, w: World, course: int, learners: list[tuple[int, str, bytes]]) -> None:
    """Enrol, assess and have each learner study one real session (one passed check
    after the course's 1.8 s)."""
    r = svc.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [lid for lid, _, _ in learners]},
    )
    assert r.status_code == 201, r.text
    pages = []
    for lid, token, frame in learners:
        r = svc.call(
            "POST",
            f"/api/v1/courses/{course}/assessments",
            w.operator,
            json={"learner_id": lid, "passed": True, "score": 90},
        )
        assert r.status_code == 201, r.text
        r = svc.sign_in(token, course, frame)
        assert r.status_code == 201, r.text
        pages.append((StillFrames(svc, token, r.json()["session"]["session_id"]).attach(), frame))
    time.sleep(2.5)
    for page, frame in pages:
        assert page.check(frame)["passed"]
        page.end()
    for lid, _, _ in learners:
        r = svc.call("GET", f"/api/v1/learners/{lid}/eligibility/{course}", w.operator)
        assert r.status_code == 200 and r.json()["eligible"], r.text


def _period(w: World, **more: object) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "institution_id": w.institution_id,
        "from": (now - timedelta(days=1)).isoformat(),
        "until": now.isoformat(),  # a claim is for a period that has ended
        **more,
    }


def _refused(svc: Service, r_status: int, reason: str, before: int, r: object) -> None:
    resp = r  # an httpx.Response
    assert resp.status_code == r_status, resp.text  # type: ignore[attr-defined]
    assert resp.json()["reason"] == reason, resp.text  # type: ignore[attr-defined]
    assert svc.event_count() == before


def _other_operator(svc: Service) -> str:
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=institution_body("Other school"))
    assert r.status_code == 201, r.text
    return svc.token(Role.operator, r.json()["id"])


def test_a_claim_from_submission_to_payment(service: Service) -> None:
    svc = service
    w = svc.world()
    course = _course(svc, w, name='=HYPERLINK("http://x")')
    second, second_token = _learner(svc, w, "Astronaut Two", ASTRONAUT_PHOTO)
    _eligible(
        svc,
        w,
        course,
        [(w.learner_id, w.learner, HOPPER_FRAME), (second, second_token, ASTRONAUT_FRAME)],
    )
    inspector = svc.token(Role.inspector)
    other = _other_operator(svc)

    # -- submit ------------------------------------------------------------------------
    before = svc.event_count()
    _refused(
        svc,
        403,
        "wrong_role",
        before,
        svc.call("POST", "/api/v1/submitted-claims", svc.bureau, json=_period(w)),
    )
    _refused(
        svc,
        403,
        "other_institution",
        before,
        svc.call("POST", "/api/v1/submitted-claims", other, json=_period(w)),
    )
    _refused(
        svc,
        409,
        "nothing_to_claim",
        before,
        svc.call(
            "POST",
            "/api/v1/submitted-claims",
            w.operator,
            json=_period(
                w, **{"from": "2020-01-01T00:00:00+08:00", "until": "2020-02-01T00:00:00+08:00"}
            ),
        ),
    )
    r = svc.call("POST", "/api/v1/submitted-claims", w.operator, json=_period(w))
    assert r.status_code == 201, r.text
    claim = r.json()
    cid = claim["id"]
    assert svc.event_count() == before + 1
    assert claim["status"] == "submitted" and claim["learners"] == 2 and claim["amount"] == 3000
    assert [x["learner_id"] for x in claim["lines"]] == sorted([w.learner_id, second])
    # The digest covers the canonical JSON of the frozen lines.
    body = [
        {
            "learner_id": x["learner_id"],
            "course_id": x["course_id"],
            "credited_hours": x["credited_hours"],
            "amount": x["amount"],
            "chains": [[c["chain_id"], c["seq"], c["hash"]] for c in x["chains"]],
        }
        for x in claim["lines"]
    ]
    assert claim["lines_sha256"] == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    # Each line rests on the learner's, the course's and its session's chain heads.
    line = claim["lines"][0]
    chains = {c["chain_id"]: c for c in line["chains"]}
    assert f"learner:{line['learner_id']}" in chains and f"course:{course}" in chains
    session = next(c for c in chains if c.startswith("session:"))
    held = svc.storage.ledger.read_chain(session, chains[session]["seq"] - 1, 1)[0]
    assert held.hash == chains[session]["hash"]

    before = svc.event_count()
    _refused(
        svc,
        409,
        "claim_overlaps",
        before,
        svc.call("POST", "/api/v1/submitted-claims", w.operator, json=_period(w)),
    )
    _refused(
        svc,
        403,
        "other_institution",
        before,
        svc.call("GET", f"/api/v1/submitted-claims/{cid}", other),
    )
    r = svc.call("GET", "/api/v1/submitted-claims", other)
    assert r.status_code == 200 and all(c["id"] != cid for c in r.json())
    r = svc.call("GET", "/api/v1/submitted-claims", w.operator)
    assert [c["id"] for c in r.json()] == [cid]

    # -- the institution decides nothing ---------------------------------------------------
    _refused(
        svc,
        403,
        "wrong_role",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/decision",
            w.operator,
            json={"status": "approved"},
        ),
    )
    _refused(
        svc,
        403,
        "wrong_role",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/verification",
            w.operator,
            json={"verdict": "verified"},
        ),
    )
    draw_body = {
        "from": _period(w)["from"],
        "until": _period(w)["until"],
        "base_rate": 1.0,
        "seed": "claims-2026",
    }
    _refused(
        svc,
        403,
        "wrong_role",
        before,
        svc.call("POST", "/api/v1/claim-draws", w.operator, json=draw_body),
    )
    _refused(
        svc,
        409,
        "claim_not_sampled",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/verification",
            inspector,
            json={"verdict": "verified"},
        ),
    )

    # -- sample ------------------------------------------------------------------------
    r = svc.call("POST", "/api/v1/claim-draws", svc.bureau, json=draw_body)
    assert r.status_code == 201, r.text
    drawn = r.json()
    assert cid in drawn["sampled"] and drawn["reproduced"] and drawn["seed"] == "claims-2026"
    assert tuple(drawn["sampled"]) == draw_claims(
        drawn["population"], drawn["rates"], "claims-2026"
    )
    r = svc.call("GET", f"/api/v1/claim-draws/{drawn['draw_id']}", inspector)
    assert r.status_code == 200 and r.json() == drawn
    # A claim is in one draw only: drawing again finds nothing of it.
    before = svc.event_count()
    r = svc.call("POST", "/api/v1/claim-draws", svc.bureau, json=draw_body)
    assert r.status_code in (201, 409), r.text
    if r.status_code == 201:
        assert cid not in r.json()["population"]
    before = svc.event_count()
    _refused(
        svc,
        409,
        "claim_not_verified",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/decision",
            svc.bureau,
            json={"status": "approved"},
        ),
    )

    # -- verify ------------------------------------------------------------------------
    _refused(
        svc,
        422,
        "note_required",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/verification",
            inspector,
            json={"verdict": "irregular", "rejected_learners": [second]},
        ),
    )
    _refused(
        svc,
        422,
        "not_in_claim",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/verification",
            inspector,
            json={"verdict": "irregular", "note": "x", "rejected_learners": [10**6]},
        ),
    )
    r = svc.call(
        "POST",
        f"/api/v1/submitted-claims/{cid}/verification",
        inspector,
        json={
            "verdict": "irregular",
            "note": "absent at the roll call of 3 May",
            "rejected_learners": [second],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "verified" and r.json()["rejected_learners"] == [second]
    assert r.json()["chain_broken"] == [] and r.json()["payable"] == 1500

    # -- decide and the public notice --------------------------------------------------
    r = svc.call(
        "POST",
        f"/api/v1/submitted-claims/{cid}/decision",
        svc.bureau,
        json={"status": "approved", "note": "one learner out"},
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["status"] == "approved" and decided["amount_approved"] == 1500
    until = datetime.fromisoformat(decided["notice_until"])
    start = datetime.fromisoformat(decided["notice_from"])
    assert until - start == timedelta(days=svc.settings.subsidy.notice_days)
    before = svc.event_count()
    _refused(
        svc,
        409,
        "already_decided",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/decision",
            svc.bureau,
            json={"status": "rejected"},
        ),
    )

    r = svc.call("GET", "/api/v1/public/claim-notices", None)
    assert r.status_code == 200, r.text
    (notice,) = [n for n in r.json() if n["claim_id"] == cid]
    (shown,) = notice["lines"]  # the rejected learner is not shown
    learner = svc.storage.registry.get_learner(w.learner_id)
    assert shown["learner_id"] == w.learner_id and shown["amount"] == 1500
    assert shown["name"] == "G" + "*" * (len(learner.full_name) - 1)
    assert shown["id_number"] == learner.id_number[:4] + "*" * 10 + learner.id_number[-4:]
    page = svc.client.get("/public/notices", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200 and "公示" in page.text
    assert f'data-claim="{cid}"' in page.text and shown["id_number"] in page.text
    assert learner.id_number not in page.text and learner.full_name not in page.text

    # -- payment is refused during the notice --------------------------------------------
    _refused(
        svc,
        409,
        "notice_open",
        before,
        svc.call("POST", "/api/v1/claim-payments", svc.bureau, json={"claim_ids": [cid]}),
    )

    # -- objections --------------------------------------------------------------------
    _refused(
        svc,
        422,
        "not_in_claim",
        before,
        svc.call(
            "POST",
            f"/api/v1/public/claim-notices/{cid}/objections",
            None,
            json={"statement": "他没来", "learner_id": second},
        ),
    )
    _refused(
        svc,
        404,
        "unknown_claim",
        before,
        svc.call(
            "POST", "/api/v1/public/claim-notices/999999/objections", None, json={"statement": "x"}
        ),
    )
    statement = "此学员当月在外地务工，未参加培训。"
    r = svc.call(
        "POST",
        f"/api/v1/public/claim-notices/{cid}/objections",
        None,
        json={"statement": statement, "learner_id": w.learner_id},
    )
    assert r.status_code == 201, r.text
    objection = r.json()
    assert objection["statement_sha256"] == hashlib.sha256(statement.encode()).hexdigest()
    # The form on the page files one too (a whole-claim objection).
    r = svc.client.post(f"/public/notices/{cid}/objections", data={"statement": "整体造假"})
    assert r.status_code == 201 and 'id="objection-done"' in r.text, r.text
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid}", svc.bureau)
    assert r.json()["open_objections"] == 2
    page_objection = max(o["id"] for o in r.json()["objections"])

    claims = svc.app.state.claims
    real_clock = claims.clock
    # The notice lasts days: only the claim service's clock is moved past it.
    claims.clock = lambda: datetime.now(UTC) + timedelta(days=svc.settings.subsidy.notice_days + 1)
    try:
        before = svc.event_count()
        _refused(
            svc,
            409,
            "objection_open",
            before,
            svc.call("POST", "/api/v1/claim-payments", svc.bureau, json={"claim_ids": [cid]}),
        )
        _refused(
            svc,
            409,
            "notice_closed",
            before,
            svc.call(
                "POST",
                f"/api/v1/public/claim-notices/{cid}/objections",
                None,
                json={"statement": "too late"},
            ),
        )
        _refused(
            svc,
            403,
            "wrong_role",
            before,
            svc.call(
                "POST",
                f"/api/v1/submitted-claims/{cid}/objections/{objection['objection_id']}/decision",
                w.operator,
                json={"upheld": False},
            ),
        )
        for oid in (objection["objection_id"], page_objection):
            r = svc.call(
                "POST",
                f"/api/v1/submitted-claims/{cid}/objections/{oid}/decision",
                svc.bureau,
                json={"upheld": False, "note": "attendance confirmed on video"},
            )
            assert r.status_code == 200, r.text
        assert r.json()["open_objections"] == 0 and r.json()["status"] == "approved"

        # -- payment -------------------------------------------------------------------
        before = svc.event_count()
        _refused(
            svc,
            403,
            "wrong_role",
            before,
            svc.call("POST", "/api/v1/claim-payments", w.operator, json={"claim_ids": [cid]}),
        )
        r = svc.call("POST", "/api/v1/claim-payments", svc.bureau, json={"claim_ids": [cid]})
        assert r.status_code == 201, r.text
        export = r.json()
        assert export["claims"] == 1 and export["amount"] == 1500
        before = svc.event_count()
        _refused(
            svc,
            409,
            "already_paid",
            before,
            svc.call("POST", "/api/v1/claim-payments", svc.bureau, json={"claim_ids": [cid]}),
        )
    finally:
        claims.clock = real_clock

    eid = export["export_id"]
    _refused(
        svc, 403, "wrong_role", before, svc.call("GET", f"/api/v1/claim-payments/{eid}", w.operator)
    )
    r = svc.client.get(
        f"/api/v1/claim-payments/{eid}",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {svc.bureau}", "Accept-Language": "zh-CN"},
    )
    assert r.status_code == 200 and r.text.startswith("\ufeff"), r.text
    rows = list(csv.reader(io.StringIO(r.text.removeprefix("\ufeff"))))
    (paid,) = [x for x in rows[1:-1]]
    assert paid[1] == str(cid) and shown["id_number"] in paid and learner.id_number not in r.text
    assert paid[7] == '\'=HYPERLINK("http://x")'  # the course name, neutralised
    r = svc.call("GET", f"/api/v1/claim-payments/{eid}", svc.bureau, params={"format": "xlsx"})
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    cells = [c.value for c in ws[2]]
    assert cells[7] == '\'=HYPERLINK("http://x")' and ws.cell(row=2, column=8).data_type == "s"

    # -- the history replays every step --------------------------------------------------
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid}/history", w.operator)
    assert r.status_code == 200, r.text
    history = r.json()
    assert history["intact"] is True
    assert [e["kind"] for e in history["events"]] == [
        "claim_submitted",
        "claim_verified",
        "claim_decided",
        "claim_notice_published",
        "claim_objection_received",
        "claim_objection_received",
        "claim_objection_decided",
        "claim_objection_decided",
        "claim_paid",
    ]
    assert [e["seq"] for e in history["events"]] == list(range(1, 10))
    assert history["events"][0]["payload"]["lines_sha256"] == claim["lines_sha256"]
    assert history["events"][-1]["payload"]["amount"] == 1500
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid}", w.operator)
    assert r.json()["status"] == "paid" and r.json()["paid_export"] == eid
    # And as a page of the inspector's workspace.
    r = svc.client.post("/inspect/login", data={"token": inspector}, follow_redirects=False)
    page = svc.client.get(
        f"/inspect/claims/{cid}",
        cookies={"sv_session": r.cookies["sv_session"]},
        headers={"Accept-Language": "zh-CN"},
    )
    svc.client.cookies.clear()
    assert page.status_code == 200, page.text
    assert f'data-claim="{cid}"' in page.text and 'data-status="paid"' in page.text
    assert page.text.count('data-kind="claim_') == 9 and 'id="intact" class="ok"' in page.text


def test_broken_chains_upheld_objections_and_suspension_refuse_money(service: Service) -> None:
    svc = service
    w = svc.world()
    course = _course(svc, w)
    _eligible(svc, w, course, [(w.learner_id, w.learner, HOPPER_FRAME)])
    r = svc.call("POST", "/api/v1/submitted-claims", w.operator, json=_period(w))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    p = _period(w)
    r = svc.call(
        "POST",
        "/api/v1/claim-draws",
        svc.bureau,
        json={"from": p["from"], "until": p["until"], "base_rate": 1.0},
    )
    assert r.status_code == 201 and cid in r.json()["sampled"], r.text

    # The session chain the line rests on is rewritten in the database after submission.
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid}", svc.bureau)
    chains = r.json()["lines"][0]["chains"]
    session = next(c["chain_id"] for c in chains if c["chain_id"].startswith("session:"))
    first = svc.storage.ledger.read_chain(session, 0, 1)[0]
    tamper(
        svc.storage,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
        p=first.payload[:-1] + ',"x":1}',
        c=session,
        s=first.seq,
    )
    inspector = svc.token(Role.inspector)
    r = svc.call(
        "POST",
        f"/api/v1/submitted-claims/{cid}/verification",
        inspector,
        json={"verdict": "verified"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["chain_broken"] == [w.learner_id] and r.json()["payable"] == 0
    assert r.json()["rejected_learners"] == [w.learner_id]
    before = svc.event_count()
    _refused(
        svc,
        409,
        "nothing_to_approve",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid}/decision",
            svc.bureau,
            json={"status": "approved"},
        ),
    )
    r = svc.call(
        "POST",
        f"/api/v1/submitted-claims/{cid}/decision",
        svc.bureau,
        json={"status": "rejected", "note": "evidence altered"},
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    # A rejected claim frees its period: nobody is eligible now (the chain is broken).
    r = svc.call("POST", "/api/v1/submitted-claims", w.operator, json=_period(w))
    assert r.status_code == 409 and r.json()["reason"] == "nothing_to_claim", r.text

    # A second institution: no claim is approved before a draw has seen it; drawn and
    # not sampled, approved; then an upheld objection against the whole claim rejects
    # it, and a resubmission does not bring its line back; a suspended institution
    # cannot claim at all.
    w2 = svc.world(enrol=False)
    course2 = _course(svc, w2)
    lid, token = _learner(svc, w2, "Astronaut", ASTRONAUT_PHOTO)
    _eligible(svc, w2, course2, [(lid, token, ASTRONAUT_FRAME)])
    p2 = _period(w2)
    r = svc.call("POST", "/api/v1/submitted-claims", w2.operator, json=p2)
    assert r.status_code == 201, r.text
    cid2 = r.json()["id"]
    before = svc.event_count()
    _refused(
        svc,
        409,
        "claim_not_drawn",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid2}/decision",
            svc.bureau,
            json={"status": "approved"},
        ),
    )
    r = svc.call(
        "POST",
        "/api/v1/claim-draws",
        svc.bureau,
        json={"from": p2["from"], "until": p2["until"], "base_rate": 0.0},
    )
    assert r.status_code == 201 and cid2 not in r.json()["sampled"], r.text
    r = svc.call(
        "POST", f"/api/v1/submitted-claims/{cid2}/decision", svc.bureau, json={"status": "approved"}
    )
    assert r.status_code == 200 and r.json()["amount_approved"] == 1500, r.text
    r = svc.call(
        "POST",
        f"/api/v1/public/claim-notices/{cid2}/objections",
        None,
        json={"statement": "该机构整班代学"},
    )
    assert r.status_code == 201, r.text
    oid = r.json()["objection_id"]
    before = svc.event_count()
    _refused(
        svc,
        422,
        "uphold_needs_note",
        before,
        svc.call(
            "POST",
            f"/api/v1/submitted-claims/{cid2}/objections/{oid}/decision",
            svc.bureau,
            json={"upheld": True},
        ),
    )
    r = svc.call(
        "POST",
        f"/api/v1/submitted-claims/{cid2}/objections/{oid}/decision",
        svc.bureau,
        json={"upheld": True, "note": "confirmed by the spot check"},
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    # The operator sees that an objection was upheld, never what the objector wrote.
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid2}", w2.operator)
    assert r.status_code == 200 and r.json()["objections"][0]["statement"] is None, r.text
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid2}", svc.bureau)
    assert r.json()["objections"][0]["statement"] == "该机构整班代学"
    # The ledger says how much the objection took out (the dispatch report reads it).
    r = svc.call("GET", f"/api/v1/submitted-claims/{cid2}/history", svc.bureau)
    decided = [e for e in r.json()["events"] if e["kind"] == "claim_objection_decided"]
    assert decided[0]["payload"]["amount_withdrawn"] == 1500, r.text
    # The same period again: the line the objection took out is not claimed again.
    before = svc.event_count()
    _refused(
        svc,
        409,
        "nothing_to_claim",
        before,
        svc.call("POST", "/api/v1/submitted-claims", w2.operator, json=_period(w2)),
    )
    r = svc.call("GET", "/api/v1/public/claim-notices", None)
    assert all(n["claim_id"] != cid2 for n in r.json())
    claims = svc.app.state.claims
    real_clock = claims.clock
    claims.clock = lambda: datetime.now(UTC) + timedelta(days=svc.settings.subsidy.notice_days + 1)
    try:
        before = svc.event_count()
        _refused(
            svc,
            409,
            "claim_not_approved",
            before,
            svc.call("POST", "/api/v1/claim-payments", svc.bureau, json={"claim_ids": [cid2]}),
        )
    finally:
        claims.clock = real_clock

    r = svc.call(
        "POST",
        f"/api/v1/institutions/{w2.institution_id}/status",
        svc.bureau,
        json={"status": "suspended", "reason": "proxy study"},
    )
    assert r.status_code == 200, r.text
    before = svc.event_count()
    _refused(
        svc,
        409,
        "institution_suspended",
        before,
        svc.call("POST", "/api/v1/submitted-claims", w2.operator, json=_period(w2)),
    )

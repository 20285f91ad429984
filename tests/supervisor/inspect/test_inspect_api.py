"""The inspector's workspace through the real HTTP API and pages, on SQLite and PostgreSQL:
scope, access log, search, replay, spot checks, seals, evidence packs and tampering."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.canonical import event_hash
from storage.types import Role
from supervisor.cli.main import main as cli_main
from supervisor.inspect.packs import verify_pack
from supervisor.inspect.spot_checks import draw_sample
from tests import imagegen
from tests.conftest import scratch_postgres_db
from tests.storage.helpers import tamper
from tests.supervisor.conftest import HOPPER_FRAME, Service, World, _service, institution_body
from tests.supervisor.inspect_helpers import record_session

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ASTRO = imagegen.jpeg_bytes(imagegen.astronaut())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def svc(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """A service of its own: these tests tamper with its ledger and evidence."""
    tmp = tmp_path_factory.mktemp(f"inspect-{request.param}")
    overrides = {"inspection": {"seal_interval_s": 0}}
    if request.param == "sqlite":
        yield from _service(tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite", **overrides)
        return
    server: str = request.getfixturevalue("postgres_server_url")
    with scratch_postgres_db(server, "sv_insp") as url:
        yield from _service(tmp, url, "postgres", **overrides)


def _world(svc: Service) -> tuple[World, str]:
    w = svc.world(enrol=False)
    sid = record_session(
        svc.storage, w.institution_id, w.course_id, w.learner_id, T0, [HOPPER_FRAME, ASTRO]
    )
    return w, sid


def test_scope_operator_of_another_institution_and_learner_are_refused(svc: Service) -> None:
    w, sid = _world(svc)
    other, _ = _world(svc)
    own_op = w.operator
    foreign_op = other.operator
    sha = svc.storage.ledger.read_chain(f"session:{sid}")[1].payload.split('"evidence_sha256":"')[
        1
    ][:64]
    for path in (
        f"/api/v1/inspect/sessions/{sid}/replay",
        f"/api/v1/inspect/sessions/{sid}/frames/{sha}",
        f"/api/v1/inspect/evidence/session/{sid}",
    ):
        assert svc.call("GET", path, own_op).status_code == 200, path
        r = svc.call("GET", path, foreign_op)
        assert r.status_code == 403 and r.json()["reason"] == "other_institution", path
        r = svc.call("GET", path, w.learner)
        assert r.status_code == 403 and r.json()["reason"] == "wrong_role", path
    # An operator's search sees its own institution only, whatever it asks for.
    rows = svc.call("GET", "/api/v1/inspect/search", foreign_op, params={"learner": "Grace"}).json()
    assert rows and sid not in {r["id"] for r in rows}
    assert {
        svc.storage.registry.get_session(r["id"]).institution_id
        for r in rows
        if r["kind"] == "session"
    } == {other.institution_id}
    r = svc.call(
        "GET", "/api/v1/inspect/search", foreign_op, params={"institution_id": w.institution_id}
    )
    assert r.status_code == 403
    # Pages: the learner cannot sign in; the foreign operator sees a 403 page.
    r = svc.client.post("/inspect/login", data={"token": w.learner})
    # In the default language, Chinese; the reason stays a code.
    assert r.status_code == 403 and "学员不能使用监管工作台" in r.text
    r = svc.client.post("/inspect/login", data={"token": foreign_op}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.cookies["sv_session"]
    r = svc.client.get(f"/inspect/sessions/{sid}", cookies={"sv_session": cookie})
    assert r.status_code == 403 and 'data-reason="other_institution"' in r.text
    assert "这属于其他机构" in r.text
    svc.client.cookies.clear()


def test_frames_are_served_by_hash_only_for_their_record(svc: Service) -> None:
    w, sid = _world(svc)
    inspector = svc.token(Role.inspector)
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, "g" * 64):
        r = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/frames/{bad}", inspector)
        assert r.status_code in (404, 422), bad
    # A real frame hash that this session does not refer to is not served through it.
    other = svc.storage.evidence.put(
        b"not this session's" * 10, "image/jpeg", T0 + timedelta(days=9999)
    )
    r = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/frames/{other.sha256}", inspector)
    assert r.status_code == 404


def test_search_replay_and_every_read_is_logged(svc: Service) -> None:
    w, sid = _world(svc)
    inspector = svc.token(Role.inspector)
    learner = svc.storage.registry.get_learner(w.learner_id)
    masked = learner.id_number[:4] + "*" * 10 + learner.id_number[-4:]
    for query in (
        {"learner": "grace hop"},
        {"learner": masked},
        {"learner": learner.id_number[-4:]},
    ):
        rows = svc.call(
            "GET",
            "/api/v1/inspect/search",
            inspector,
            params={**query, "institution_id": w.institution_id},
        ).json()
        assert [r["id"] for r in rows if r["kind"] == "session"] == [sid], query
        assert rows[0]["learner_masked_id"] == masked
        assert learner.id_number not in json.dumps(rows)
    rows = svc.call(
        "GET",
        "/api/v1/inspect/search",
        inspector,
        params={
            "institution_id": w.institution_id,
            "date_from": (T0 + timedelta(days=1)).isoformat(),
        },
    ).json()
    assert rows == []
    rows = svc.call(
        "GET",
        "/api/v1/inspect/search",
        inspector,
        params={"institution_id": w.institution_id, "outcome": "learner"},
    ).json()
    assert [r["id"] for r in rows] == [sid] and rows[0]["credited_seconds"] > 0
    rows = svc.call(
        "GET",
        "/api/v1/inspect/search",
        inspector,
        params={"institution_id": w.institution_id, "flagged": "any"},
    ).json()
    assert rows == []
    svc.storage.registry.raise_flag("test_flag", "{}", w.institution_id, w.learner_id)
    rows = svc.call(
        "GET",
        "/api/v1/inspect/search",
        inspector,
        params={"institution_id": w.institution_id, "flagged": "open"},
    ).json()
    assert [r["id"] for r in rows] == [sid] and rows[0]["flags"] == 1

    replay = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/replay", inspector).json()
    assert [c["verdict"] for c in replay["checks"]] == [
        "match",
        "match",
        "match",
        "mismatch",
        "match",
        "match",
    ]
    assert replay["checks"][3]["distance"] == pytest.approx(0.71)
    assert replay["checks"][3]["issues"] == ["blurred"]
    assert {c["evidence_status"] for c in replay["checks"]} == {"retained"}
    assert [i["text"] for i in replay["items"] if i["kind"] == "state"] == [
        "active → paused (failed_check)",
        "paused → active (check_passed)",
    ]
    # Credited: three checks 5 min apart (10 min), then the resume at check 4 to check 5 (5 min).
    assert replay["credited_seconds"] == pytest.approx(15 * 60)
    assert replay["integrity"]["ok"] and replay["integrity"]["chain"]["ok"]

    log = svc.call(
        "GET", "/api/v1/access-log", svc.admin, params={"learner_id": w.learner_id}
    ).json()
    actions = [(a["action"], a["session_id"], a["role"]) for a in log]
    assert ("replay_session", sid, "inspector") in actions
    assert svc.call("GET", "/api/v1/access-log", inspector).status_code == 403


def test_spot_check_draw_is_reproducible_and_verdicts_are_ledger_events(svc: Service) -> None:
    w, _ = _world(svc)
    sids = sorted(
        record_session(
            svc.storage,
            w.institution_id,
            w.course_id,
            w.learner_id,
            T0 + timedelta(hours=h),
            [HOPPER_FRAME],
            checks=2,
        )
        for h in range(1, 9)
    )
    inspector = svc.token(Role.inspector)
    body = {
        "institution_id": w.institution_id,
        "period_start": (T0 + timedelta(minutes=30)).isoformat(),
        "period_end": (T0 + timedelta(days=1)).isoformat(),
        "size": 3,
        "seed": "audit-2026-03",
    }
    a = svc.call("POST", "/api/v1/inspect/spot-checks", inspector, json=body)
    b = svc.call("POST", "/api/v1/inspect/spot-checks", inspector, json=body)
    assert a.status_code == b.status_code == 201, a.text
    da, db = a.json(), b.json()
    assert da["draw_id"] != db["draw_id"]
    assert da["sessions"] == db["sessions"] == draw_sample(sids, "audit-2026-03", 3)
    assert da["population"] == 8 and set(da["sessions"]) <= set(sids)
    other = dict(body, seed="another seed")
    dc = svc.call("POST", "/api/v1/inspect/spot-checks", inspector, json=other).json()
    assert dc["seed"] == "another seed"
    assert (
        svc.call("GET", f"/api/v1/inspect/spot-checks/{da['draw_id']}", inspector).json()[
            "reproduced"
        ]
        is True
    )
    # The draw is in the ledger with its seed.
    chain = svc.storage.ledger.read_chain(f"spotcheck:{da['draw_id']}")
    assert chain[0].kind == "spot_check_drawn" and '"seed":"audit-2026-03"' in chain[0].payload

    before = svc.event_count()
    for bad in (
        {
            "session_id": sids[0] if sids[0] not in da["sessions"] else str(uuid.uuid4()),
            "verdict": "regular",
        },
        {"session_id": da["sessions"][0], "verdict": "fine"},
        {"session_id": da["sessions"][0], "verdict": "irregular", "note": ""},
    ):
        r = svc.call(
            "POST", f"/api/v1/inspect/spot-checks/{da['draw_id']}/verdicts", inspector, json=bad
        )
        assert r.status_code == 422, (bad, r.text)
    assert (
        svc.call(
            "POST",
            f"/api/v1/inspect/spot-checks/{da['draw_id']}/verdicts",
            w.operator,
            json={"session_id": da["sessions"][0], "verdict": "regular"},
        ).status_code
        == 403
    )
    assert svc.event_count() == before
    r = svc.call(
        "POST",
        f"/api/v1/inspect/spot-checks/{da['draw_id']}/verdicts",
        inspector,
        json={
            "session_id": da["sessions"][0],
            "verdict": "irregular",
            "note": "face covered at 09:05",
        },
    )
    assert r.status_code == 201, r.text
    chain = svc.storage.ledger.read_chain(f"spotcheck:{da['draw_id']}")
    assert [e.kind for e in chain] == ["spot_check_drawn", "spot_check_verdict"]
    assert "face covered at 09:05" in chain[1].payload
    got = svc.call("GET", f"/api/v1/inspect/spot-checks/{da['draw_id']}", inspector).json()
    assert got["verdicts"][0]["verdict"] == "irregular"
    # Bad draws are refused and record nothing.
    before = svc.event_count()
    for bad_body in (
        dict(body, size=0),
        dict(body, period_end=body["period_start"]),
        dict(body, institution_id=10**6),
    ):
        r = svc.call("POST", "/api/v1/inspect/spot-checks", inspector, json=bad_body)
        assert r.status_code in (404, 422), r.text
    assert svc.event_count() == before


def test_draw_sample_is_a_pure_function_of_population_seed_and_size() -> None:
    pop = [str(uuid.UUID(int=i)) for i in range(50)]
    assert draw_sample(pop, "s", 5) == draw_sample(list(reversed(pop)), "s", 5)
    assert draw_sample(pop, "s", 5) != draw_sample(pop, "t", 5)
    assert len(draw_sample(pop, "s", 500)) == 50


def _pack(svc: Service, token: str, subject: str, ident: str) -> bytes:
    r = svc.call("GET", f"/api/v1/inspect/evidence/{subject}/{ident}", token)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    return r.content


def _rezip(data: bytes, change: dict[str, bytes | None]) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            if info.filename in change:
                new = change[info.filename]
                if new is not None:
                    z.writestr(info.filename, new)
            else:
                z.writestr(info.filename, src.read(info))
    return out.getvalue()


def test_seal_pack_and_offline_verification_name_every_alteration(
    svc: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w, sid = _world(svc)
    inspector = svc.token(Role.inspector)
    assert svc.call("POST", "/api/v1/seals", inspector).status_code == 403
    r = svc.call("POST", "/api/v1/seals", svc.admin)
    assert r.status_code == 201, r.text
    seal = r.json()
    public = svc.client.get("/api/v1/seals/latest").json()  # no token: published
    assert public["id"] == seal["id"] and public["public_key"] == seal["public_key"]
    key = svc.client.get("/api/v1/seals/public-key").json()
    assert key["public_key"] == seal["public_key"]
    proof = svc.call("GET", f"/api/v1/seals/{seal['id']}/proofs/session:{sid}", inspector).json()
    assert proof["chain_matches"] is True and proof["root"] == seal["root"]

    data = _pack(svc, inspector, "session", sid)
    report = verify_pack(data, key["public_key"])
    assert report.ok, report.problems
    assert report.frames_retained == 2 and report.events == len(
        svc.storage.ledger.read_chain(f"session:{sid}")
    )
    assert any("included in seal" in c for c in report.ok_checks)
    pack = tmp_path / "pack.zip"
    pack.write_bytes(data)
    assert cli_main(["evidence", "verify", str(pack), "--public-key", key["public_key"]]) == 0
    assert "RESULT: intact" in capsys.readouterr().out

    z = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(z.read("manifest.json"))
    events_file = manifest["chains"][0]["file"]
    lines = z.read(events_file).decode().splitlines()
    frame_file = next(f["file"] for f in manifest["frames"] if f["status"] == "retained")

    edited = lines.copy()
    edited[3] = edited[3].replace(
        '"mismatch' if "mismatch" in edited[3] else '\\"match', '\\"MATCH', 1
    )
    assert edited[3] != lines[3]
    cases = {
        "edited event": (
            _rezip(data, {events_file: ("\n".join(edited) + "\n").encode()}),
            ["event seq 4 edited", f"{events_file}: altered"],
        ),
        "removed event": (
            _rezip(data, {events_file: ("\n".join(lines[:-1]) + "\n").encode()}),
            ["events removed", "sealed event seq"],
        ),
        "swapped frame": (
            _rezip(data, {frame_file: HOPPER_FRAME if ASTRO == z.read(frame_file) else ASTRO}),
            ["swapped"],
        ),
        "wrong signature": (
            _rezip(data, {"manifest.sig": b"00" * 64 + b"\n"}),
            ["signature is wrong"],
        ),
        "removed frame": (_rezip(data, {frame_file: None}), ["removed from the pack"]),
    }
    for name, (altered, expected) in cases.items():
        rep = verify_pack(altered, key["public_key"])
        assert not rep.ok, name
        text = "\n".join(rep.problems)
        for phrase in expected:
            assert phrase in text, (name, phrase, text)
        bad = tmp_path / f"{name.replace(' ', '-')}.zip"
        bad.write_bytes(altered)
        assert cli_main(["evidence", "verify", str(bad)]) == 1
        out = capsys.readouterr().out
        assert "ALTERED:" in out and expected[0] in out, (name, out)

    # A pack re-signed with another key is caught against the published key.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from supervisor.inspect import seals as sl
    from supervisor.inspect.packs import build_pack

    forged = build_pack({"kind": "session"}, [], [], None, {}, Ed25519PrivateKey.generate(), T0)
    rep = verify_pack(forged, key["public_key"])
    assert not rep.ok and "another key" in rep.problems[0]
    assert sl.fingerprint(key["public_key"]) == key["key_fingerprint"]


def test_tampering_is_shown_in_the_replay_and_by_the_commands(
    svc: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    w, sid = _world(svc)
    chain = f"session:{sid}"
    inspector = svc.token(Role.inspector)
    assert svc.call("POST", "/api/v1/seals", svc.admin).status_code == 201
    replay = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/replay", inspector).json()
    assert replay["integrity"]["seal"]["state"] == "sealed_ok"

    # Swap an evidence file on disk for another image.
    sha = replay["checks"][0]["evidence_sha256"]
    path = svc.storage.evidence.path_for(sha)
    path.write_bytes(ASTRO if path.read_bytes() != ASTRO else HOPPER_FRAME)
    check = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/frames-check", inspector).json()
    assert check[sha] == "altered" and list(check.values()).count("ok") == 1
    r = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/frames/{sha}", inspector)
    assert r.status_code == 409
    rep = verify_pack(_pack(svc, inspector, "session", sid))
    assert any(sha in p and "altered" in p for p in rep.problems), rep.problems

    # Edit an event row behind the store's back (triggers bypassed, as an attacker would).
    tamper(
        svc.storage,
        "UPDATE ledger_events SET payload = replace(payload, '\"mismatch\"', '\"match\"') "
        "WHERE chain_id = :c AND seq = 5",
        c=chain,
    )
    replay = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/replay", inspector).json()
    assert replay["integrity"]["ok"] is False
    assert replay["integrity"]["chain"]["breaks"][0]["seq"] == 5
    assert replay["integrity"]["seal"]["state"] == "sealed_mismatch"
    assert cli_main(["--config", str(_toml(svc)), "ledger", "verify-seal", "--chain", chain]) == 1
    assert "ALTERED" in capsys.readouterr().out
    rep = verify_pack(_pack(svc, inspector, "session", sid))
    assert any("event seq 5 edited" in p for p in rep.problems), rep.problems
    # The page says so plainly.
    r = svc.client.post("/inspect/login", data={"token": inspector}, follow_redirects=False)
    page = svc.client.get(
        f"/inspect/sessions/{sid}", cookies={"sv_session": r.cookies["sv_session"]}
    )
    svc.client.cookies.clear()
    assert page.status_code == 200
    assert "哈希链已断裂" in page.text and "第 5 条记录" in page.text
    assert 'data-state="sealed_mismatch"' in page.text

    # A careful forger rewrites an event AND recomputes every later hash: the chain
    # recomputes, but its head no longer matches the seal.
    _, sid2 = _world(svc)
    chain2 = f"session:{sid2}"
    assert svc.call("POST", "/api/v1/seals", svc.admin).status_code == 201
    _rewrite(svc, chain2, 5, lambda p: p.replace('"mismatch"', '"match"').replace("false", "true"))
    # The chain's row in the head index still names the old last hash ...
    (stale,) = svc.storage.ledger.verify([chain2]).breaks
    assert "head index" in stale.reason
    # ... so the careful forger rewrites that too.
    last = svc.storage.ledger.read_chain(chain2)[-1]
    tamper(
        svc.storage,
        "UPDATE ledger_heads SET hash = :h WHERE chain_id = :c",
        h=last.hash,
        c=chain2,
    )
    replay = svc.call("GET", f"/api/v1/inspect/sessions/{sid2}/replay", inspector).json()
    assert replay["integrity"]["chain"]["ok"] is True
    assert replay["integrity"]["seal"]["state"] == "sealed_mismatch"
    assert replay["integrity"]["ok"] is False
    assert cli_main(["--config", str(_toml(svc)), "ledger", "verify-seal", "--chain", chain2]) == 1
    assert "missing or altered" in capsys.readouterr().out
    rep = verify_pack(_pack(svc, inspector, "session", sid2))
    assert any("sealed event seq" in p for p in rep.problems), rep.problems


def _rewrite(svc: Service, chain_id: str, seq: int, edit: Callable[[str], str]) -> None:
    """Edit one event's payload and recompute every hash from there (a forger's rewrite)."""
    events = svc.storage.ledger.read_chain(chain_id)
    prev = events[seq - 2].hash
    for e in events[seq - 1 :]:
        payload = edit(e.payload) if e.seq == seq else e.payload
        h = event_hash(prev, chain_id, e.seq, e.recorded_at, e.kind, payload)
        tamper(
            svc.storage,
            "UPDATE ledger_events SET payload = :p, prev_hash = :ph, hash = :h "
            "WHERE chain_id = :c AND seq = :s",
            p=payload,
            ph=prev,
            h=h,
            c=chain_id,
            s=e.seq,
        )
        prev = h


def _toml(svc: Service) -> Path:
    s = svc.settings
    path = Path(str(s.data_dir)) / "cli.toml"
    path.write_text(
        f'environment = "development"\n[database]\nurl = "{s.database.url}"\n'
        f'[evidence]\ndirectory = "{s.evidence.directory}"\n'
    )
    return path


def test_pages_escape_what_they_show_and_forms_need_the_csrf_value(svc: Service) -> None:
    r = svc.call(
        "POST",
        "/api/v1/institutions",
        svc.admin,
        json=institution_body("<img src=x onerror=alert(1)>"),
    )
    inst = r.json()["id"]
    inspector = svc.token(Role.inspector)
    r = svc.client.post("/inspect/login", data={"token": inspector}, follow_redirects=False)
    cookies = {"sv_session": r.cookies["sv_session"]}
    r_login_csrf = r.cookies["sv_csrf"]
    page = svc.client.get("/inspect/spot-checks", cookies=cookies)
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    before = svc.event_count()
    r = svc.client.post(
        "/inspect/spot-checks",
        data={
            "institution_id": str(inst),
            "period_start": "2026-01-01",
            "period_end": "2026-02-01",
            "size": "2",
        },
        cookies=cookies,
    )
    # Without the X-CSRF-Token header repeating the CSRF cookie: refused before the page.
    assert r.status_code == 403 and r.json()["reason"] == "csrf" and "表单已过期" in r.text
    # With the header but without the form's own value: refused by the page.
    cookies["sv_csrf"] = r_login_csrf
    r = svc.client.post(
        "/inspect/spot-checks",
        data={"institution_id": str(inst), "size": "2"},
        cookies=cookies,
        headers={"X-CSRF-Token": r_login_csrf, "Origin": svc.url},
    )
    assert r.status_code == 403 and 'data-reason="csrf"' in r.text and "表单已过期" in r.text
    assert svc.event_count() == before
    svc.client.cookies.clear()


def _class_record(svc: Service, w: World) -> int:
    """A class with one supervision run and two roll calls, as the service records them."""
    from storage.types import ClassMode
    from supervisor.ledger import classroom as cev
    from supervisor.ledger import codec
    from supervisor.ledger import events as ev

    st = svc.storage
    tc = st.classroom.create_class(
        w.course_id, "Welding A", ClassMode.training, T0, T0 + timedelta(hours=3)
    )
    st.classroom.add_to_roster(tc.id, [w.learner_id], T0 - timedelta(days=1))
    retain = T0 + timedelta(days=3650)
    sha = [st.evidence.put(f, "image/jpeg", retain).sha256 for f in (HOPPER_FRAME, ASTRO)]
    run = 1
    chain = cev.class_chain(tc.id)
    events: list[ev.Event] = [
        cev.ClassSupervisionStarted(
            tc.id, run, "training", (w.learner_id,), (1,), "0" * 64, "operator:1", False, T0
        )
    ]
    for n, present in enumerate((True, False)):
        at = T0 + timedelta(minutes=10 * (n + 1))
        events.append(
            cev.ClassRollCall(
                tc.id,
                run,
                f"rc{n}",
                "random",
                "done",
                None,
                at,
                (1,),
                (),
                1,
                (w.learner_id,) if present else (),
                () if present else (w.learner_id,),
                (),
                (),
                0 if present else 1,
                0,
                0,
                (1,),
                (at,),
                (None,),
                (None,),
                (sha[n],),
                (1,),
                (0 if present else 1,),
            )
        )
    events.append(
        cev.ClassSupervisionStopped(
            tc.id, run, "operator", "operator:1", T0 + timedelta(minutes=30)
        )
    )
    st.ledger.append(chain, [codec.encode(e) for e in events])
    st.ledger.append(
        cev.learner_class_chain(tc.id, w.learner_id),
        [
            codec.encode(
                cev.ClassPresence(
                    check_id="rc0",
                    check_kind="roll_call",
                    purpose="random",
                    verdict="present",
                    passed=True,
                    at=T0 + timedelta(minutes=10),
                    distance=0.3,
                    threshold=0.5,
                    issues=(),
                    faces=1,
                    frames=1,
                    evidence_sha256=sha[0],
                    class_id=tc.id,
                    learner_id=w.learner_id,
                    run_id=run,
                )
            )
        ],
    )
    return tc.id


def test_class_replay_search_scope_and_pack(svc: Service) -> None:
    w = svc.world(enrol=False)
    class_id = _class_record(svc, w)
    other = svc.world(enrol=False)
    inspector = svc.token(Role.inspector)
    rows = svc.call(
        "GET",
        "/api/v1/inspect/search",
        inspector,
        params={"kind": "class", "learner": "Grace", "institution_id": w.institution_id},
    ).json()
    assert [r["id"] for r in rows] == [str(class_id)]
    replay = svc.call("GET", f"/api/v1/inspect/classes/{class_id}/replay", inspector).json()
    assert [c["kind"] for c in replay["checks"]] == ["roll_call", "roll_call"]
    assert [c["passed"] for c in replay["checks"]] == [True, False]
    assert "1 absent" in replay["checks"][1]["detail"]
    assert replay["credited_seconds"] == 30 * 60  # the supervised stretch
    assert replay["integrity"]["ok"] and replay["integrity"]["chain"]["chains"] == 2
    sha = replay["checks"][1]["evidence_sha256"]
    r = svc.call("GET", f"/api/v1/inspect/classes/{class_id}/frames/{sha}", inspector)
    assert r.status_code == 200 and r.content == ASTRO
    assert (
        svc.call("GET", f"/api/v1/inspect/classes/{class_id}/replay", other.operator).status_code
        == 403
    )
    assert (
        svc.call(
            "GET", f"/api/v1/inspect/classes/{class_id}/frames/{sha}", other.operator
        ).status_code
        == 403
    )
    assert (
        svc.call("GET", f"/api/v1/inspect/classes/{class_id}/replay", w.operator).status_code == 200
    )
    report = verify_pack(_pack(svc, inspector, "class", str(class_id)))
    assert report.ok and report.chains == 2 and report.frames_retained == 2, report.problems
    learner_pack = verify_pack(_pack(svc, inspector, "learner", str(w.learner_id)))
    assert learner_pack.ok and learner_pack.chains == 1  # their chain in the class
    assert learner_pack.frames_retained == 1
    log = svc.call("GET", "/api/v1/access-log", svc.admin).json()
    assert any(a["action"] == "replay_class" and a["class_id"] == class_id for a in log)
    # The page of the class replay.
    r = svc.client.post("/inspect/login", data={"token": inspector}, follow_redirects=False)
    page = svc.client.get(
        f"/inspect/classes/{class_id}", cookies={"sv_session": r.cookies["sv_session"]}
    )
    svc.client.cookies.clear()
    assert page.status_code == 200 and "Class Welding A" in page.text
    assert page.text.count('class="check ') == 2 and "1 absent" in page.text
    assert 'data-state="intact"' in page.text


def test_inspectors_reads_of_other_apis_are_logged_too(svc: Service) -> None:
    w, sid = _world(svc)
    inspector = svc.token(Role.inspector)
    assert svc.call("GET", f"/api/v1/sessions/{sid}/events", inspector).status_code == 200
    assert svc.call("GET", f"/api/v1/learners/{w.learner_id}", w.operator).status_code == 200
    assert svc.call("GET", f"/api/v1/learners/{w.learner_id}", svc.admin).status_code == 200
    log = svc.call("GET", "/api/v1/access-log", svc.admin).json()
    reads = [(a["role"], a["action"], a["session_id"], a["learner_id"]) for a in log]
    assert ("inspector", "api_read", sid, None) in reads
    assert ("operator", "api_read", None, w.learner_id) in reads
    assert not any(a["role"] == "admin" and a["action"] == "api_read" for a in log)
    # A refused read is not a read.
    before = len(log)
    assert svc.call("GET", f"/api/v1/learners/{w.learner_id}", w.learner + "x").status_code == 401
    assert len(svc.call("GET", "/api/v1/access-log", svc.admin).json()) == before


def test_the_seal_command_tells_a_person_the_local_time(
    svc: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    _world(svc)
    path = _toml(svc)
    key = svc.settings.security.seal_key.get_secret_value()
    path.write_text(path.read_text() + f'[security]\nseal_key = "{key}"\n')
    assert cli_main(["--config", str(path), "ledger", "seal"]) == 0
    out = capsys.readouterr().out
    # Beijing time with its offset (web.timezone, Asia/Shanghai by default); the seal
    # itself keeps UTC.
    assert "(UTC+8)" in out and "+00:00" not in out, out

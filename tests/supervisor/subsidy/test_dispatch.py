"""The monthly dispatch report: roll-up by region, key groups, closing, sealing and
corrections, through the real HTTP API on SQLite and PostgreSQL.

The records the report reads (institutions' division codes, courses' occupation codes,
learners' key groups, certificates) and the claims' money are appended here straight
to the ledger through the service's own ledger store, with the event kinds of the
contract (`supervisor/ledger/records.py`, `supervisor/ledger/claims.py`): the ledger
is the truth the report reads, and the records and claim-review APIs that will write
these events are being built beside this work. Everything else (institutions,
courses, rules, enrolment, study with real face checks, assessments) goes through the
API as in the other subsidy tests.
"""

from __future__ import annotations

import hashlib
import io
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import text

from config import Settings
from storage import Storage
from storage.canonical import canonical_json
from storage.exceptions import StorageUnavailable
from storage.types import Role
from supervisor.ledger import claims as cl
from supervisor.ledger import codec
from supervisor.ledger import records as rec
from supervisor.ledger.dispatch import DispatchReportClosed
from supervisor.ledger.events import Event
from supervisor.rules.dispatch import (
    ClaimFact,
    CourseFacts,
    dispatch_report,
    parse_period,
    region_level,
)
from supervisor.rules.eligibility import FlagSummary, LearnerSummary, SessionSummary, Standing
from supervisor.subsidy.dispatch import compute
from tests import ledgergen as lg
from tests.supervisor.conftest import Service, World
from tests.supervisor.subsidy.test_subsidy_api import _course, _publish, _study

# Figures that add up from child regions to their parent (learners are distinct
# people, and shares are ratios: neither adds up).
ADDITIVE = (
    "trainings",
    "high_skill_trainings",
    "credited_hours",
    "completions",
    "certificates",
    "high_skill_certificates",
    "checks",
    "passed_checks",
    "subsidy_claimed",
    "subsidy_approved",
    "subsidy_paid",
    "flags_raised",
    "flags_confirmed",
    "institutions_suspended",
    "institutions_expelled",
)


def assert_rolls_up(report: dict) -> None:  # type: ignore[type-arg]
    """Every region's additive figures equal the sum of its child regions' (the
    institutions of these tests all carry county codes)."""
    rows = {r["code"]: r for r in report["regions"]}
    parents = {r["parent"] for r in report["regions"] if r["parent"] is not None}
    assert parents, "no child regions"
    for code in parents:
        children = [r for r in report["regions"] if r["parent"] == code]
        for key in ADDITIVE:
            total = sum(c["figures"][key] for c in children)
            assert rows[code]["figures"][key] == pytest.approx(total, abs=1e-3), (code, key)


# -- the pure function, on many counties ------------------------------------------------


def test_region_roll_up_sums_equal_their_parts_over_many_counties() -> None:
    rng = random.Random(19)
    tz = "Asia/Shanghai"
    period = parse_period("2026-11", tz)
    t0 = period.start + timedelta(days=3)
    counties = [f"{p}{c:02d}{k:02d}" for p in (33, 44, 51) for c in (1, 2) for k in (2, 3, 4)]
    standings = {
        i: Standing(
            i,
            ((t0, "suspended"),) if i % 7 == 0 else (),
            counties[i % len(counties)],
        )
        for i in range(1, 41)
    }
    courses = {
        c: CourseFacts(
            c, 1 + c % 40, ("online", "classroom", "blended")[c % 3], f"6-0{c % 4}", 1 + c % 5
        )
        for c in range(1, 81)
    }
    learners, sessions = {}, []
    for lid in range(1, 801):
        course = 1 + lid % 80
        groups = tuple((g, "2026-01-01", None) for g in rec.KEY_GROUPS if rng.random() < 0.15)
        learners[lid] = LearnerSummary(
            lid,
            True,
            True,
            frozenset({course}),
            ((course, True, t0),) if lid % 3 == 0 else (),
            False,
            groups,
            ((course, 1 + lid % 5, "6-01", "2026-11-20"),) if lid % 4 == 0 else (),
        )
        sessions.append(
            SessionSummary(
                f"session:{lid}",
                "online",
                lid,
                course,
                courses[course].institution_id,
                t0,
                t0 + timedelta(hours=1),
                3600.0,
                (("2026-11", 3600.0),),
                True,
                10,
                9 - lid % 2,
                60.0,
                (),
                (),
            )  # fmt: skip
        )
    flags = [
        FlagSummary(
            n, "pass_rate_outlier", 1 + n % 40, (), "confirmed" if n % 2 else "open", t0, ()
        )
        for n in range(1, 30)
    ]
    claims = [
        ClaimFact(n, 1 + n % 40, t0, 1000.0, t0, "approved", 900.0, ((t0, 900.0),))
        for n in range(1, 60)
    ]
    args = (courses, standings, learners, sessions, flags, claims)
    country = dispatch_report(period, None, tz, period.end, *args)
    assert_rolls_up(country)
    (top,) = [r for r in country["regions"] if r["code"] == ""]
    assert top["figures"]["trainings"] == 800 and top["figures"]["learners"] == 800
    assert top["figures"]["subsidy_paid"] == pytest.approx(59 * 900)
    assert len([r for r in country["regions"] if r["level"] == "county"]) == len(counties)
    province = dispatch_report(period, "440000", tz, period.end, *args)
    assert_rolls_up(province)
    (p,) = [r for r in country["regions"] if r["code"] == "440000"]
    (q,) = [r for r in province["regions"] if r["code"] == "440000"]
    assert p["figures"] == q["figures"] and p["by_group"] == q["by_group"]
    # A learner counts in each of their groups: the group rows add up to at least the total.
    assert sum(c["trainings"] for c in top["by_group"].values()) >= top["figures"]["trainings"]
    for dim in ("by_occupation", "by_skill_level", "by_delivery_mode"):
        assert sum(c["trainings"] for c in top[dim].values()) == top["figures"]["trainings"]


def test_periods_and_regions_are_read_strictly() -> None:
    tz = "Asia/Shanghai"
    q = parse_period("2026-Q4", tz)
    assert q.months == ("2026-10", "2026-11", "2026-12") and q.kind == "quarter"
    assert q.start == datetime(2026, 9, 30, 16, tzinfo=UTC)
    y = parse_period("2026", tz)
    assert len(y.months) == 12 and y.end == datetime(2026, 12, 31, 16, tzinfo=UTC)
    for bad in (
        "2026-13",
        "2026-Q5",
        "2026-Q0",
        "26-01",
        "2026-1",
        " 2026-01",
        "２０２６-01",
        "2026-00",
    ):
        with pytest.raises(ValueError):
            parse_period(bad, tz)
    assert [region_level(c) for c in ("330000", "330100", "330106")] == [
        "province",
        "city",
        "county",
    ]
    for bad in ("33010", "3301067", "000000", "abcdef", "33O106"):
        with pytest.raises(ValueError):
            region_level(bad)


# -- through the API ---------------------------------------------------------------------


def _append(service: Service, chain: str, event: Event) -> None:
    # The records and claim-review APIs are built beside this work: their facts are
    # appended to the ledger, the truth the report reads, with the contract's kinds.
    service.storage.ledger.append(chain, [codec.encode(event)])


def _trained(service: Service, division: str, occupation: str, level: int) -> tuple[World, int]:
    """An institution in `division` with a classified course, and a learner who studied
    it (real face checks) and passed its assessment."""
    service.forget_faces()  # the packaged photos hold one person: each world enrols her
    w = service.world()
    course = _course(service, w)
    _publish(service, w, course)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    _study(service, w, course)
    r = service.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True, "score": 90},
    )
    assert r.status_code == 201, r.text
    now = datetime.now(UTC)
    _append(
        service,
        f"institution:{w.institution_id}",
        rec.InstitutionProfileRecorded(
            w.institution_id, division, "L-1", "Zhang San", "1 Road", "registered", "bureau:1", now
        ),
    )
    _append(
        service,
        f"course:{course}",
        rec.CourseClassified(course, w.institution_id, occupation, level, "bureau:1", now),
    )
    return w, course


def _certificate(service: Service, w: World, course: int, n: int, level: int, today: str) -> None:
    _append(
        service,
        f"learner:{w.learner_id}",
        rec.CertificateIssued(
            n,
            w.learner_id,
            course,
            n,
            f"CERT-{n}",
            level,
            "6-18-02-04",
            today,
            "Skills Centre",
            "bureau:1",
            datetime.now(UTC),
        ),  # fmt: skip
    )


def test_dispatch_report_rolls_up_closes_seals_and_corrects(service: Service) -> None:
    tz = ZoneInfo(service.settings.subsidy.timezone)
    local = datetime.now(tz)
    month, today = local.strftime("%Y-%m"), local.strftime("%Y-%m-%d")
    # Xinjiang's codes, which no other test of the shared service uses.
    a, course_a = _trained(service, "650102", "6-18-02-04", 3)
    b, course_b = _trained(service, "650202", "4-01-02-01", 4)
    now = datetime.now(UTC)
    for group in ("veteran", "unemployed"):
        _append(
            service,
            f"learner:{a.learner_id}",
            rec.LearnerGroupAdded(a.learner_id, group, "2026-01-01", "register", "bureau:1", now),
        )
    _certificate(service, a, course_a, 1_900_001 + (service.backend == "postgres"), 3, today)
    claim = 1_900_100 + (service.backend == "postgres")
    submitted = cl.ClaimSubmitted(
        claim, a.institution_id, now - timedelta(days=1), now, 1, 1500.0, "0" * 64, "op:1", now
    )
    for event in (
        submitted,
        cl.ClaimDecided(claim, "approved", 1200.0, "", "bureau:1", now),
        cl.ClaimPaid(claim, "export-1", 1200.0, "bureau:1", now),
    ):  # fmt: skip
        _append(service, f"claim:{claim}", event)

    inspector = service.token(Role.inspector)
    params = {"period": month, "region": "650000"}
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.status_code == 200, r.text
    served = r.json()
    assert served["status"] == "open" and served["version"] is None
    report = served["report"]
    rows = {x["code"]: x for x in report["regions"]}
    assert set(rows) == {"650000", "650100", "650200", "650102", "650202"}
    assert rows["650102"]["parent"] == "650100" and rows["650100"]["parent"] == "650000"
    assert_rolls_up(report)
    top = rows["650000"]
    f = top["figures"]
    assert f["learners"] == 2 and f["trainings"] == 2 and f["completions"] == 2
    assert f["certificates"] == 1 and f["high_skill_certificates"] == 1
    assert (
        f["subsidy_claimed"] == 1500 and f["subsidy_approved"] == 1200 and f["subsidy_paid"] == 1200
    )
    assert f["checks"] >= 2 and f["pass_rate"] == 1.0 and f["credited_hours"] > 0
    assert top["headline"] == {
        "high_skill_training_share": 0.5,
        "high_skill_certificate_share": 1.0,
        "key_group_learner_share": 0.5,
    }
    # Learner a is in two groups and counts in each.
    assert {k: v["learners"] for k, v in top["by_group"].items()} == {
        "unemployed": 1,
        "veteran": 1,
        "none": 1,
    }
    assert {k: v["trainings"] for k, v in top["by_skill_level"].items()} == {"3": 1, "4": 1}
    assert set(top["by_occupation"]) == {"6-18-02-04", "4-01-02-01"}
    assert top["by_delivery_mode"]["online"]["trainings"] == 2
    assert rows["650202"]["figures"]["subsidy_claimed"] == 0
    # A city's report is the same region rows from the city down.
    r = service.call(
        "GET", "/api/v1/reports/dispatch", inspector, params={"period": month, "region": "650100"}
    )
    assert r.status_code == 200, r.text
    city = {x["code"]: x for x in r.json()["report"]["regions"]}
    assert (
        set(city) == {"650100", "650102"} and city["650100"]["figures"] == rows["650100"]["figures"]
    )

    # Roles: the institution is the supervised party; learners see nothing of it.
    for token in (a.operator, a.learner):
        r = service.call("GET", "/api/v1/reports/dispatch", token, params=params)
        assert r.status_code == 403 and r.json()["reason"] == "wrong_role", r.text
    before = service.event_count()
    for token in (a.operator, inspector):
        r = service.call("POST", "/api/v1/reports/dispatch/close", token, json=params)
        assert r.status_code == 403 and r.json()["reason"] == "wrong_role", r.text
    # Wrong periods and regions: refused with a reason, nothing recorded.
    for bad in ("2026-13", "2026-Q5", "26-12", "2026-1", "２０２６-12"):
        r = service.call("GET", "/api/v1/reports/dispatch", inspector, params={"period": bad})
        assert r.status_code == 422 and r.json()["reason"] == "invalid_report_period", bad
        r = service.call(
            "POST", "/api/v1/reports/dispatch/close", service.bureau, json={"period": bad}
        )
        assert r.status_code == 422 and r.json()["reason"] == "invalid_report_period", bad
    for bad in ("65000", "6500000", "000000", "65O000", "xinjiang"):
        r = service.call(
            "GET", "/api/v1/reports/dispatch", inspector, params={"period": month, "region": bad}
        )
        assert r.status_code == 422 and r.json()["reason"] == "invalid_region", bad
        r = service.call(
            "POST",
            "/api/v1/reports/dispatch/close",
            service.bureau,
            json={"period": month, "region": bad},
        )
        assert r.status_code == 422 and r.json()["reason"] == "invalid_region", bad
    r = service.call(
        "POST", "/api/v1/reports/dispatch/correct", service.bureau, json={**params, "reason": "x"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_closed"
    r = service.call(
        "POST", "/api/v1/reports/dispatch/close", service.bureau, json={"period": "2199-01"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "period_not_started"
    assert service.event_count() == before

    # The bureau closes the month: kept, and its SHA-256 in the ledger.
    r = service.call("POST", "/api/v1/reports/dispatch/close", service.bureau, json=params)
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed" and closed["version"] == 1 and closed["versions"] == [1]
    sha = closed["sha256"]
    assert hashlib.sha256(canonical_json(closed["report"]).encode()).hexdigest() == sha
    assert closed["report"]["regions"] == report["regions"]
    chain = f"dispatch:650000:{month}"
    (event,) = service.storage.ledger.read_chain(chain)
    assert event.kind == "dispatch_report_closed"
    assert closed["ledger_event"] == {"chain_id": chain, "seq": 1, "hash": event.hash}
    payload = codec.decode_payload(event.kind, event.payload)
    assert payload.sha256 == sha and payload.version == 1  # type: ignore[attr-defined]
    assert service.event_count() == before + 1
    r = service.call("POST", "/api/v1/reports/dispatch/close", service.bureau, json=params)
    assert r.status_code == 409 and r.json()["reason"] == "already_closed"

    # Later appends: a second certificate and a payment. The closed month is unchanged.
    _certificate(service, b, course_b, 1_900_011 + (service.backend == "postgres"), 2, today)
    _append(
        service,
        f"claim:{claim}",
        cl.ClaimPaid(claim, "export-2", 300.0, "bureau:1", datetime.now(UTC)),
    )
    after = service.event_count()
    for _ in range(2):
        r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
        assert r.status_code == 200 and r.json() == closed
    assert service.storage.ledger.read_chain(chain) == [event]

    # A correction: version 2 on the ledger as it stands, naming what changed and why.
    r = service.call(
        "POST", "/api/v1/reports/dispatch/correct", a.operator, json={**params, "reason": "late"}
    )
    assert r.status_code == 403
    r = service.call(
        "POST", "/api/v1/reports/dispatch/correct", service.bureau, json={**params, "reason": " "}
    )
    assert r.status_code == 422
    assert service.event_count() == after
    r = service.call(
        "POST",
        "/api/v1/reports/dispatch/correct",
        service.bureau,
        json={**params, "reason": "a certificate and a payment recorded late"},
    )
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["versions"] == [1, 2] and v2["sha256"] != sha
    assert v2["reason"] == "a certificate and a payment recorded late"
    changed = {c["key"]: (c["before"], c["after"]) for c in v2["changes"]}
    assert changed["regions.650000.figures.certificates"] == (1, 2)
    assert changed["regions.650000.figures.subsidy_paid"] == (1200, 1500)
    assert changed["regions.650202.figures.high_skill_certificates"] == (0, 1)
    assert "regions.650000.figures.trainings" not in changed
    events = service.storage.ledger.read_chain(chain)
    assert len(events) == 2
    second = codec.decode_payload(events[1].kind, events[1].payload)
    assert second.version == 2 and second.corrects == sha and second.changed == len(v2["changes"])  # type: ignore[attr-defined]
    # Both versions stay readable; the latest is served by default.
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params={**params, "version": 1})
    assert (
        r.status_code == 200
        and r.json()["sha256"] == sha
        and r.json()["report"] == closed["report"]
    )
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.json()["version"] == 2
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params={**params, "version": 3})
    assert r.status_code == 404 and r.json()["reason"] == "unknown_version"
    count = service.event_count()
    r = service.call(
        "POST",
        "/api/v1/reports/dispatch/correct",
        service.bureau,
        json={**params, "reason": "again"},
    )
    assert r.status_code == 409 and r.json()["reason"] == "nothing_changed"
    assert service.event_count() == count

    # The spreadsheet (text cells neutralised) and the page (charts, no script).
    r = service.call(
        "GET", "/api/v1/reports/dispatch", service.bureau, params={**params, "format": "xlsx"}
    )
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["地区", "分类", "变更", "说明"]
    ws = wb["地区"]
    assert ws.cell(2, 1).value == "650000" and ws.cell(1, 4).value == "培训人数"
    assert all(not str(c.value).startswith("=") for row in ws.iter_rows() for c in row if c.value)
    r = service.call(
        "GET", "/api/v1/reports/dispatch", inspector, params={**params, "format": "html"}
    )
    assert r.status_code == 200 and "<svg" in r.text and "<script" not in r.text
    assert "已关闭" in r.text or "封存" in r.text
    assert "script-src 'none'" in r.headers["content-security-policy"]


def test_a_period_past_its_grace_is_closed_at_first_request(service: Service) -> None:
    inspector = service.token(Role.inspector)
    params = {"period": "2026-Q1", "region": "650000"}
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "closed" and first["version"] == 1
    assert first["report"]["as_of"] == "2026-03-31T16:00:00.000000Z"
    assert first["closed_by"] == "system:grace"  # the rule closed it, not the reader
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.json() == first
    assert len(service.storage.ledger.read_chain("dispatch:650000:2026-Q1")) == 1
    # The kept copy edited in the database (the adversary with database access): it no
    # longer hashes to the SHA-256 in the ledger, and is not served.
    edited = canonical_json({**first["report"], "as_of": "2026-03-01T00:00:00.000000Z"})
    with service.storage.db.write() as conn:
        conn.execute(
            text("UPDATE dispatch_reports SET body = :body WHERE period = '2026-Q1'"),
            {"body": edited},
        )
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.status_code == 409 and r.json()["reason"] == "stored_copy_altered", r.text


def test_a_close_cut_between_its_ledger_event_and_its_copy_is_kept_at_the_next_request(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close appends the report's SHA-256 to the ledger, then keeps the copy. If the
    second step fails, the version is on the ledger without a copy: the next request
    recomputes it as of the cut the event names and keeps it (the digests agree),
    instead of refusing every later close as `already_closed`."""
    inspector = service.token(Role.inspector)
    params = {"period": "2025-Q4", "region": "650000"}
    chain = "dispatch:650000:2025-Q4"
    app_storage = service.app.state.ctx.storage

    def refused(*_: object, **__: object) -> None:
        raise StorageUnavailable("the database went away between the two steps")

    monkeypatch.setattr(app_storage.dispatch, "add", refused)
    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.status_code == 503, r.text
    (closed,) = service.storage.ledger.read_chain(chain)  # the first step stood
    assert service.storage.dispatch.versions("650000", "2025-Q4") == []
    monkeypatch.undo()

    r = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert r.status_code == 200, r.text
    served = r.json()
    assert served["status"] == "closed" and served["version"] == 1
    assert served["closed_by"] == "system:grace"
    event = codec.decode(closed)
    assert isinstance(event, DispatchReportClosed)
    assert served["sha256"] == event.sha256
    assert hashlib.sha256(canonical_json(served["report"]).encode()).hexdigest() == event.sha256
    assert len(service.storage.ledger.read_chain(chain)) == 1  # nothing appended again
    (kept,) = service.storage.dispatch.versions("650000", "2025-Q4")
    assert (kept.chain_id, kept.seq, kept.hash) == (closed.chain_id, closed.seq, closed.hash)
    assert kept.closed_at == event.at and kept.as_of == event.as_of
    # and it is served from then on like any closed period
    again = service.call("GET", "/api/v1/reports/dispatch", inspector, params=params)
    assert again.json() == served


def test_generated_world_report_from_summaries_equals_its_recomputation(
    generated: tuple[Storage, Settings],
) -> None:
    """The report's facts survive the chain summaries: the report read from them equals
    the one folded from every event, before and after the ledger grows."""
    storage, settings = generated
    world = lg.build_registry(storage, lg.Plan(learners=300, institutions=36))
    lg.load(storage, world)
    period = parse_period("2026-10", settings.subsidy.timezone)
    truth = compute(storage, settings, period, None, period.end, use_summaries=False)
    assert compute(storage, settings, period, None, period.end) == truth  # stores summaries
    assert compute(storage, settings, period, None, period.end) == truth  # reads them
    assert_rolls_up(truth)
    levels = [r["level"] for r in truth["regions"]]
    assert levels.count("province") == 4 and levels.count("county") == 36
    top = truth["regions"][0]
    assert top["figures"]["trainings"] == 300 and top["figures"]["certificates"] > 0
    assert 0 < top["headline"]["key_group_learner_share"] < 1
    assert set(top["by_skill_level"]) <= {"1", "2", "3", "4", "5"}
    province = compute(storage, settings, period, "330000", period.end)
    (row,) = [r for r in truth["regions"] if r["code"] == "330000"]
    assert province["regions"][0]["figures"] == row["figures"]
    # A learner joins a group: refolded from where the summary stopped, still equal.
    learner = world.learner_ids[0]
    at = period.start + timedelta(days=1)
    event = rec.LearnerGroupAdded(learner, "veteran", "2026-10-01", "register", "bureau:1", at)
    storage.ledger.append(f"learner:{learner}", [codec.encode(event)])
    late = datetime.now(UTC)
    assert compute(storage, settings, period, None, late) == compute(
        storage, settings, period, None, late, use_summaries=False
    )


def test_a_hostile_occupation_code_in_the_ledger_is_text_in_the_spreadsheet() -> None:
    """The records API validates occupation codes, but the report reads the ledger: a
    code written there as a formula stays text in the bureau's spreadsheet."""
    from supervisor.i18n import Language, LocalTime, translator
    from supervisor.subsidy.dispatch_view import dispatch_tables
    from supervisor.subsidy.exports import Writer

    tz = "Asia/Shanghai"
    period = parse_period("2026-11", tz)
    t0 = period.start + timedelta(days=1)
    hostile = '=HYPERLINK("http://x.example/","open")'
    courses = {1: CourseFacts(1, 7, "online", hostile, 3)}
    session = SessionSummary(
        "session:x", "online", 5, 1, 7, t0, t0, 60.0, (("2026-11", 60.0),), True, 1, 1,
        None, (), (),
    )  # fmt: skip
    report = dispatch_report(
        period, None, tz, period.end, courses, {7: Standing(7, (), "330106")}, {}, [session],
        [], [],
    )  # fmt: skip
    served = {"report": report, "status": "open", "version": None, "reason": None,
              "sha256": "0" * 64, "changes": []}  # fmt: skip
    writer = Writer(translator(Language.zh_CN), LocalTime(tz))
    wb = openpyxl.load_workbook(
        io.BytesIO(writer.xlsx(dispatch_tables(served, writer.t, writer.clock)))
    )
    cells = [c.value for row in wb["分类"].iter_rows() for c in row if isinstance(c.value, str)]
    assert "'" + hostile in cells
    assert not any(v.startswith("=") for ws in wb for row in ws.iter_rows() for c in row
                   if isinstance(v := c.value, str))  # fmt: skip

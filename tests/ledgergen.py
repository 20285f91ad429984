"""Generated ledgers for volume: institutions, courses, learners and their chains,
written in bulk with valid hash chains (the same rows the store's append would
write: same canonical payloads, same hashing, `recorded_at` = the event's time).

Used by `bench/eligibility_bench.py` and by tests that need many chains. Going
through `LedgerStore.append` costs about 0.1-0.5 ms per event; this loader
builds the chain hashes in Python and inserts with executemany (SQLite) or COPY
(PostgreSQL), so ten million events load in minutes instead of hours.

The world is deterministic for a seed. Per learner: a learner chain (consent, a
face template, enrolment, an assessment result), online sessions of presence
and identity checks about a minute apart, for some learners a class chain of
roll calls, and a few planted frauds: overlapping sessions, replayed images
(identical distances), an institution with a low pass rate, a burst of sessions
at night.

The records of the dispatch report (`Plan.records`, on by default): each
institution a division code (`DIVISIONS`: four provinces, every institution in its
own county up to 60), each course an occupation code and a skill level, about a third
of the learners one or two key groups, and half of those who passed a certificate.
They are drawn from their own random stream, so the rest of the world (and every
figure drawn from it) is the same with or without them.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import insert

from storage import Storage
from storage.canonical import GENESIS_HASH, format_timestamp, hash_event_fields
from storage.models import courses, institutions, learners, study_sessions, training_classes
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import records as rec
from supervisor.ledger import subsidy as se
from supervisor.ledger.classroom import ClassPresence, learner_class_chain
from supervisor.registry.identity import id_check_character

_FIELDS: dict[type, tuple[str, ...]] = {}


def fast_payload(event: ev.Event) -> str:
    """`codec.encode(event).payload` without the per-value validation (the values here
    are generated, so they are JSON types by construction)."""
    body = codec.body_of(event)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Plan:
    learners: int = 1000
    sessions_per_learner: int = 3
    checks_per_session: int = 28  # ~ every 60 s: a session of about 27 minutes
    institutions: int = 20
    month_start: datetime = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)  # 2026-10 in UTC+8
    classroom_share: float = 0.1
    seed: int = 6
    records: bool = True  # division codes, classifications, key groups, certificates


@dataclass
class World:
    plan: Plan
    institution_ids: list[int] = field(default_factory=list)
    course_ids: list[int] = field(default_factory=list)  # per institution: online, blended
    learner_ids: list[int] = field(default_factory=list)
    class_ids: dict[int, int] = field(default_factory=dict)  # blended course -> class
    chains: int = 0
    events: int = 0
    planted: dict[str, int] = field(default_factory=dict)


def _id_number(n: int) -> str:
    body = f"110101{19800101 + (n % 20) * 10000:08d}{n % 1000:03d}"
    # Unique per learner: vary the area code with n // 1000.
    body = f"{110000 + (n // 1000) % 900000:06d}" + body[6:]
    return body + id_check_character(body)


def build_registry(storage: Storage, plan: Plan) -> World:
    """Institutions, two courses each (online, blended), learners, one class per
    blended course: inserted directly (bulk)."""
    world = World(plan)
    now = plan.month_start
    with storage.db.write() as conn:
        for i in range(plan.institutions):
            iid = conn.execute(
                insert(institutions)
                .values(name=f"School {i}", status="active", created_at=now)
                .returning(institutions.c.id)
            ).scalar_one()
            world.institution_ids.append(iid)
            for mode in ("online", "blended"):
                cid = conn.execute(
                    insert(courses)
                    .values(
                        institution_id=iid,
                        name=f"Course {mode} {i}",
                        required_hours=1.0,
                        delivery_mode=mode,
                        created_at=now,
                    )
                    .returning(courses.c.id)
                ).scalar_one()
                world.course_ids.append(cid)
                if mode == "blended":
                    world.class_ids[cid] = conn.execute(
                        insert(training_classes)
                        .values(
                            course_id=cid,
                            institution_id=iid,
                            name=f"Class {i}",
                            mode="training",
                            starts_at=now,
                            ends_at=now + timedelta(days=31),
                            created_at=now,
                        )
                        .returning(training_classes.c.id)
                    ).scalar_one()
    rows = []
    for n in range(plan.learners):
        iid = world.institution_ids[n % plan.institutions]
        rows.append(
            {
                "institution_id": iid,
                "full_name": f"Learner {n}",
                "id_number": _id_number(n),
                "created_at": now,
            }
        )
    for start in range(0, len(rows), 20_000):
        with storage.db.write() as conn:
            conn.execute(insert(learners), rows[start : start + 20_000])
    with storage.db.read() as conn:
        world.learner_ids = [
            r[0] for r in conn.exec_driver_sql("SELECT id FROM learners ORDER BY id").all()
        ]
    return world


PROVINCES = ("33", "44", "51", "65")  # Zhejiang, Guangdong, Sichuan, Xinjiang
OCCUPATIONS = ("6-18-02-04", "4-01-02-01", "6-29-01-01", "4-10-01-01", "2-02-07-07")
LEVELS = (4, 3, 5, 2, 4, 3, 1)


def division(k: int) -> str:
    """The county of the k-th institution (0-based): every institution its own county
    for the first 60, over four provinces, three cities each."""
    return f"{PROVINCES[k % 4]}{1 + (k // 4) % 3:02d}{2 + (k // 12) % 5:02d}"


def records(world: World, rrng: random.Random) -> Iterator[tuple[str, list[ev.Event]]]:
    """The institutions' profiles (their chains hold nothing else in a generated world)."""
    at = world.plan.month_start - timedelta(days=30)
    for k, iid in enumerate(world.institution_ids):
        yield (
            se.institution_chain(iid),
            [
                rec.InstitutionProfileRecorded(
                    iid,
                    division(k),
                    f"LIC-{iid}",
                    f"Rep {iid}",
                    f"{iid} Road",
                    "registered",
                    "bureau:1",
                    at,
                )  # fmt: skip
            ],
        )


def learner_records(
    lid: int, course: int, passed: bool, at: datetime, rrng: random.Random
) -> list[ev.Event]:
    """Key groups and a certificate for one learner, from the records' own stream."""
    out: list[ev.Event] = []
    draw = rrng.random()
    if draw < 0.35:
        groups = rrng.sample(rec.KEY_GROUPS, 2 if draw < 0.05 else 1)
        for g in groups:
            out.append(rec.LearnerGroupAdded(lid, g, "2026-01-01", "register", "bureau:1", at))
    if passed and rrng.random() < 0.5:
        level = LEVELS[course % len(LEVELS)]
        out.append(
            rec.CertificateIssued(
                lid,
                lid,
                course,
                lid,
                f"C{lid:09d}",
                level,
                OCCUPATIONS[course % len(OCCUPATIONS)],
                (at + timedelta(hours=8)).date().isoformat(),
                "Skills Centre",
                "bureau:1",
                at,
            )  # fmt: skip
        )
    return out


def generate(world: World) -> Iterator[tuple[str, list[ev.Event]]]:
    """(chain id, events in order) for every chain of the world."""
    plan = world.plan
    rng = random.Random(plan.seed)
    rrng = random.Random(plan.seed + 19)  # the records' own stream
    if plan.records:
        yield from records(world, rrng)
    bad_institution = world.institution_ids[-1]  # low pass rate
    night_institution = world.institution_ids[0]  # a burst of sessions at 02:00 local
    night_left = 25
    for cid in world.course_ids:
        iid = world.institution_ids[world.course_ids.index(cid) // 2]
        mode = "online" if world.course_ids.index(cid) % 2 == 0 else "blended"
        yield (
            se.course_chain(cid),
            [
                se.CourseRulesPublished(
                    cid,
                    iid,
                    f"Course {mode}",
                    mode,
                    1.0,
                    "Electrician",
                    4,
                    "per_learner",
                    1200.0,
                    None,
                    None,
                    None,
                    "admin:1",
                    plan.month_start,
                ),
                *(
                    [
                        rec.CourseClassified(
                            cid,
                            iid,
                            OCCUPATIONS[cid % len(OCCUPATIONS)],
                            LEVELS[cid % len(LEVELS)],
                            "bureau:1",
                            plan.month_start,
                        )  # fmt: skip
                    ]
                    if plan.records
                    else []
                ),
            ],
        )
    for n, lid in enumerate(world.learner_ids):
        iid = world.institution_ids[n % plan.institutions]
        k = world.institution_ids.index(iid)
        blended = (n // plan.institutions) % 2 == 1
        course = world.course_ids[2 * k + (1 if blended else 0)]
        t0 = plan.month_start + timedelta(seconds=rng.randrange(0, 20 * 86400))
        learner_events: list[ev.Event] = [
            ev.ConsentGiven(lid, lid, "2026-11-v1", "learner:1", t0),
            ev.TemplateEnrolled(lid, lid, "ab" * 32, 180, "learner:1", t0),
            se.LearnerEnrolled(lid, course, iid, "operator:1", t0),
        ]
        pass_p = 0.6 if iid == bad_institution else 0.985
        replay = rng.random() < 0.002
        overlap = rng.random() < 0.002
        start = t0 + timedelta(hours=1)
        last_end = start
        for s in range(plan.sessions_per_learner):
            if iid == night_institution and night_left > 0 and s == 0:
                night_left -= 1
                # 02:00-02:50 in UTC+8 on the 11th day of the month, all in one hour.
                night = plan.month_start + timedelta(days=10, hours=2)
                start = night + timedelta(minutes=rng.randrange(0, 50))
                world.planted["night_sessions"] = world.planted.get("night_sessions", 0) + 1
            if overlap and s == 1:
                start = last_end - timedelta(minutes=10)  # starts before the last one ended
                world.planted["overlaps"] = world.planted.get("overlaps", 0) + 1
            sid = str(uuid.UUID(int=rng.getrandbits(128)))
            events: list[ev.Event] = [ev.SessionStarted(sid, lid, course, iid, "webrtc", start)]
            at = start
            for c in range(plan.checks_per_session):
                identity = c == 0 or c % 12 == 0
                passed = c == 0 or rng.random() < pass_p
                if replay and identity:
                    distance: float | None = 0.3125
                elif identity:
                    distance = round(rng.uniform(0.25, 0.5 if passed else 0.7), 6)
                else:
                    distance = None
                events.append(
                    ev.CheckRecorded(
                        check_id=f"{sid[:8]}{c:04d}",
                        check_kind="identity" if identity else "presence",
                        purpose="start" if c == 0 else "scheduled",
                        verdict=("match" if identity else "present") if passed else "no_face",
                        passed=passed,
                        at=at,
                        distance=distance,
                        threshold=0.53 if identity else None,
                        issues=(),
                        faces=1 if passed else 0,
                        frames=2,
                        evidence_sha256=f"{rng.getrandbits(256):064x}",
                    )
                )
                at += timedelta(seconds=rng.randrange(50, 70))
            events.append(ev.SessionEnded("learner", at))
            last_end = at
            if replay:
                world.planted["replays"] = world.planted.get("replays", 0) + 1  # sessions
            yield ev.session_chain(sid), events
            start = at + timedelta(hours=rng.randrange(2, 30))
        if blended and rng.random() < plan.classroom_share * 2:
            class_id = world.class_ids[course]
            at = start + timedelta(days=1)
            presence: list[ev.Event] = []
            for r in range(6):
                presence.append(
                    ClassPresence(
                        check_id=f"rc{lid}-{r}",
                        check_kind="roll_call",
                        purpose="random",
                        verdict="present",
                        passed=True,
                        at=at,
                        distance=0.4,
                        threshold=0.53,
                        issues=(),
                        faces=20,
                        frames=3,
                        evidence_sha256=None,
                        class_id=class_id,
                        learner_id=lid,
                        run_id=1,
                    )
                )
                at += timedelta(minutes=10)
            yield learner_class_chain(class_id, lid), presence
        passed = rng.random() < 0.9
        learner_events.append(
            se.AssessmentRecorded(lid, course, lid, passed, 80.0, start, "op:1", start)
        )
        if plan.records:
            learner_events += learner_records(lid, course, passed, start, rrng)
        yield ev.learner_chain(lid), learner_events


def chain_rows(chain_id: str, events: list[ev.Event], sqlite: bool) -> list[tuple[Any, ...]]:
    """Rows of one chain as `ledger_sql._build` makes them (recorded_at = each event's time)."""
    chain_json = encode_basestring(chain_id)
    prev = GENESIS_HASH
    rows = []
    last: datetime | None = None
    for seq, e in enumerate(events, start=1):
        at: datetime = getattr(e, "at")  # noqa: B009 - every generated event has one
        if last is not None and at < last:
            at = last  # recorded_at never goes backwards within a chain
        last = at
        ts = format_timestamp(at)
        payload = fast_payload(e)
        digest = hash_event_fields(bytes.fromhex(prev), chain_json, seq, ts, e.KIND, payload)
        rows.append((chain_id, seq, ts if sqlite else at, e.KIND, payload, prev, digest))
        prev = digest
    return rows


def load(storage: Storage, world: World, batch_rows: int = 50_000) -> None:
    """Write every generated chain into the ledger in bulk."""
    sqlite = storage.db.is_sqlite
    pending: list[tuple[Any, ...]] = []
    projections: list[dict[str, Any]] = []  # study_sessions rows, as the service keeps them
    for chain_id, events in generate(world):
        pending.extend(chain_rows(chain_id, events, sqlite))
        world.chains += 1
        world.events += len(events)
        first = events[0]
        if isinstance(first, ev.SessionStarted):
            projections.append(
                {
                    "id": first.session_id,
                    "chain_id": chain_id,
                    "learner_id": first.learner_id,
                    "course_id": first.course_id,
                    "institution_id": first.institution_id,
                    "started_at": first.at,
                    "ended_at": getattr(events[-1], "at"),  # noqa: B009
                }
            )
        if len(pending) >= batch_rows:
            _write(storage, pending, sqlite, projections)
            pending, projections = [], []
    if pending:
        _write(storage, pending, sqlite, projections)


_COLUMNS = "chain_id, seq, recorded_at, kind, payload, prev_hash, hash"


def _write(
    storage: Storage, rows: list[tuple[Any, ...]], sqlite: bool, sessions: list[dict[str, Any]]
) -> None:
    rows.sort(key=lambda r: (r[0], r[1]))
    with storage.db.write() as conn:
        if sessions:
            conn.execute(insert(study_sessions), sessions)
        if sqlite:
            conn.exec_driver_sql(
                f"INSERT INTO ledger_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
        else:
            raw: Any = conn.connection.driver_connection
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY ledger_events ({_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)

"""Retention per kind of personal data, enforced by `supervisor purge`, on SQLite and
PostgreSQL: evidence frames past their date, templates after the end of the learner's
last course, access-log entries past their days."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import Settings
from config.settings import DatabaseSettings, EvidenceSettings
from storage import Storage, open_storage
from storage.migrate import upgrade
from storage.types import DeliveryMode, SubsidyKind
from supervisor.cli.main import main
from supervisor.ledger import events as ev
from supervisor.privacy.retention import purge, templates_due
from tests.storage.helpers import TEMPLATE_KEY, id_number, vector

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'supervisor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _store(url: str, evidence: Path) -> Storage:
    upgrade(url)
    return open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=evidence), TEMPLATE_KEY
    )


def _learner_on_course(store: Storage, seed: int, inst: int, ends: datetime | None) -> int:
    course = store.registry.create_course(inst, f"Course {seed}", 10, DeliveryMode.online)
    store.subsidy.set_course_rules(
        course.id, "Welder", 4, SubsidyKind.per_learner, 1000, None, NOW - 400 * DAY, ends
    )
    learner = store.registry.create_learner(inst, f"Learner {seed}", id_number(seed))
    store.registry.record_consent(learner.id, "v1", NOW - 300 * DAY)
    store.templates.add(learner.id, vector(seed), None)
    store.subsidy.enrol(course.id, learner.id, "operator:1", NOW - 300 * DAY)
    return learner.id


def test_purge_applies_each_kinds_retention(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(privacy={"templates_days_after_course_end": 30, "access_log_days": 90})
    with _store(db_url, tmp_path / "ev") as store:
        inst = store.registry.create_institution("School").id
        ended_long_ago = _learner_on_course(store, 1, inst, NOW - 40 * DAY)
        ended_lately = _learner_on_course(store, 2, inst, NOW - 10 * DAY)
        no_end = _learner_on_course(store, 3, inst, None)
        # A learner whose one course ended long ago but who is studying another one now.
        studying = _learner_on_course(store, 4, inst, NOW - 40 * DAY)
        other = store.registry.create_course(inst, "Open course", 10, DeliveryMode.online)
        store.registry.create_session("s4", "session:s4", studying, other.id, inst, NOW - DAY)

        # The photo the expiring template was computed from goes with it.
        photo = store.evidence.put(b"enrolment photo", "image/jpeg", NOW + 100 * DAY)
        store.templates.add(ended_long_ago, vector(11), photo.sha256)
        old = store.evidence.put(b"old frame", "image/jpeg", NOW - DAY)
        kept = store.evidence.put(b"kept frame", "image/jpeg", NOW + DAY)
        store.access_log.record(NOW - 100 * DAY, "inspector:1", "inspector", "replay")
        store.access_log.record(NOW - 10 * DAY, "inspector:1", "inspector", "replay")

        assert set(templates_due(store, settings, NOW)) == {ended_long_ago}
        report = purge(store, settings, NOW)
        assert report.templates == {ended_long_ago: 2}
        assert report.evidence_frames == 1 and report.access_log_entries == 1
        assert store.templates.for_learner(ended_long_ago) == []
        for lid in (ended_lately, no_end, studying):
            assert len(store.templates.for_learner(lid)) == 1
        assert store.evidence.record(old.sha256).purged_at is not None
        assert store.evidence.get(kept.sha256) == b"kept frame"
        assert [e.at for e in store.access_log.entries()] == [NOW - 10 * DAY]
        # The deletion is on the learner's record, with the reason.
        chain = store.ledger.read_chain(ev.learner_chain(ended_long_ago))
        assert [e.kind for e in chain] == ["templates_purged"]
        assert json.loads(chain[0].payload)["reason"] == "retention"
        assert json.loads(chain[0].payload)["photos_deleted"] == 1
        assert store.evidence.record(photo.sha256).purged_at == NOW
        assert not store.evidence.path_for(photo.sha256).exists()  # type: ignore[attr-defined]
        # Nothing more to do the second time.
        again = purge(store, settings, NOW)
        assert (again.templates, again.evidence_frames, again.access_log_entries) == ({}, 0, 0)

    # The command does the same with the settings in force.
    monkeypatch.setenv("SUPERVISOR_DATABASE__URL", db_url)
    monkeypatch.setenv("SUPERVISOR_EVIDENCE__DIRECTORY", str(tmp_path / "ev"))
    monkeypatch.setenv("SUPERVISOR_SECURITY__TEMPLATE_KEY", TEMPLATE_KEY)
    monkeypatch.setenv("SUPERVISOR_PRIVACY__TEMPLATES_DAYS_AFTER_COURSE_END", "5")
    assert main(["purge"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["templates"] == {str(ended_lately): 1}

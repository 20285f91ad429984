"""`supervisor report monthly`, `claims`, `eligibility`, `fraud scan` and `summaries` on
a generated ledger (SQLite), through `supervisor.cli.main.main`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from config.settings import DEV_TEMPLATE_KEY, DatabaseSettings, EvidenceSettings
from storage import open_storage
from storage.migrate import upgrade
from supervisor.cli.main import main
from tests import ledgergen as lg


def test_report_claims_eligibility_and_fraud_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    storage = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=tmp_path / "ev"), DEV_TEMPLATE_KEY
    )
    try:
        world = lg.build_registry(storage, lg.Plan(learners=120, institutions=6))
        lg.load(storage, world)
    finally:
        storage.close()
    config = tmp_path / "settings.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "{url}"\n'
        f'[evidence]\ndirectory = "{tmp_path / "ev"}"\n'
    )
    base = ["--config", str(config)]

    assert main([*base, "report", "monthly", "--month", "2026-10", "--format", "csv"]) == 0
    report_csv = capsys.readouterr().out
    # Chinese headers (web.default_language), a totals row last.
    rows = list(csv.DictReader(io.StringIO(report_csv.removeprefix("\ufeff"))))
    rows, total = rows[:-1], rows[-1]
    assert len(rows) == 12  # 6 institutions x 2 courses
    assert sum(int(r["线上学习次数"]) for r in rows) == 360 == int(total["线上学习次数"])
    # The report read the chain summaries the first one stored; recomputing every chain
    # from its events gives the same report.
    assert main([*base, "summaries", "refresh"]) == 0
    assert json.loads(capsys.readouterr().out)["refolded"] == 0
    argv = [*base, "report", "monthly", "--month", "2026-10", "--format", "csv", "--recompute"]
    assert main(argv) == 0
    assert capsys.readouterr().out == report_csv
    assert main([*base, "summaries", "clear"]) == 0
    assert json.loads(capsys.readouterr().out)["cleared"] == world.chains
    assert main([*base, "summaries", "refresh"]) == 0
    refreshed = json.loads(capsys.readouterr().out)
    assert refreshed["refolded"] == refreshed["chains"] == world.chains
    html = tmp_path / "report.html"
    assert (
        main(
            [
                *base,
                "report",
                "monthly",
                "--month",
                "2026-10",
                "--format",
                "html",
                "--output",
                str(html),
            ]
        )
        == 0
    )
    assert "<svg" in html.read_text() and "<script" not in html.read_text()
    assert main([*base, "report", "monthly", "--month", "2026-1"]) == 2
    capsys.readouterr()

    period = ["--from", "2026-10-01T00:00+08:00", "--until", "2026-11-01T00:00+08:00"]
    assert main([*base, "claims", *period]) == 0
    claims = json.loads(capsys.readouterr().out)
    assert claims and all(c["sessions"] for c in claims)
    eligible = next(c for c in claims if c["eligible"])
    refused = next(c for c in claims if not c["eligible"])
    assert (
        main([*base, "eligibility", str(eligible["learner_id"]), str(eligible["course_id"])]) == 0
    )
    one = json.loads(capsys.readouterr().out)
    assert one["amount"] == eligible["amount"] and one["sessions"] == eligible["sessions"]
    assert main([*base, "eligibility", str(refused["learner_id"]), str(refused["course_id"])]) == 1
    assert json.loads(capsys.readouterr().out)["reasons"] == refused["reasons"]

    assert main([*base, "fraud", "scan", "--month", "2026-10"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1])["raised"] == len(lines) - 1 >= 1
    assert main([*base, "fraud", "scan", "--month", "2026-10"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"raised": 0}

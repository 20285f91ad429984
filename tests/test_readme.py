"""The README's settings table is generated from the settings; it must not drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_settings_table_matches_the_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- settings-table:begin -->\n", "<!-- settings-table:end -->"
    documented = readme[readme.index(begin) + len(begin) : readme.index(end)]
    generated = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "settings", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert documented == generated, "regenerate with: supervisor settings --markdown"


def test_readme_gives_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme


def test_readme_processing_record_matches_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- processing-record:begin -->\n", "<!-- processing-record:end -->"
    documented = readme[readme.index(begin) + len(begin) : readme.index(end)]
    generated = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "privacy", "record"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert documented == generated, "regenerate with: supervisor privacy record"

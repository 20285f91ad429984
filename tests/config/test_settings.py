"""Typed settings: sources, validation messages, secrets."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Settings, SettingsError, load_settings, settings_table

KEY = base64.b64encode(os.urandom(32)).decode()


def test_defaults_build_and_every_field_is_documented() -> None:
    s = Settings()
    assert s.face.match_threshold == 0.53
    rows = settings_table()
    assert len(rows) > 30
    assert all(desc for _, _, desc in rows), [name for name, _, desc in rows if not desc]


def test_environment_overrides_with_nested_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISOR_FACE__MATCH_THRESHOLD", "0.5")
    monkeypatch.setenv("SUPERVISOR_SERVER__PORT", "9001")
    s = load_settings()
    assert s.face.match_threshold == 0.5 and s.server.port == 9001


def test_toml_file_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[face]\nmatch_threshold = 0.45\nmin_face_px = 120\n[server]\nport = 9100\n")
    s = load_settings(f)
    assert (s.face.match_threshold, s.face.min_face_px, s.server.port) == (0.45, 120, 9100)
    monkeypatch.setenv("SUPERVISOR_SERVER__PORT", "9200")
    assert load_settings(f).server.port == 9200  # the environment wins over the file
    monkeypatch.setenv("SUPERVISOR_CONFIG_FILE", str(f))
    assert load_settings().face.min_face_px == 120


def test_invalid_values_are_refused_with_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISOR_FACE__MATCH_THRESHOLD", "abc")
    monkeypatch.setenv("SUPERVISOR_SERVER__PORT", "70000")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    text = str(exc.value)
    assert "face.match_threshold" in text and "server.port" in text and "'abc'" in text


def test_unknown_keys_and_missing_files_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[face]\nthreshold = 0.5\n")
    with pytest.raises(SettingsError, match="face.threshold"):
        load_settings(f)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_interval_order_is_checked() -> None:
    with pytest.raises(ValidationError, match="min <= mean <= max"):
        Settings(policy={"presence_interval_min_s": 100, "presence_interval_mean_s": 60})  # type: ignore[arg-type]


def test_default_secrets_are_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="security.template_key"):
        Settings(environment="production")  # type: ignore[arg-type]
    s = Settings(
        environment="production",  # type: ignore[arg-type]
        security={"template_key": KEY, "seal_key": KEY, "device_salt": "a secret salt"},  # type: ignore[arg-type]
    )
    assert s.security.template_key.get_secret_value() == KEY
    assert KEY not in repr(s)


def test_local_state_follows_data_dir_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = Settings()
    assert default.database.url == "sqlite:///var/supervisor.db"
    assert default.evidence.directory == Path("var/evidence")
    assert default.redis.embedded_path == Path("var/redis.db")
    monkeypatch.setenv("SUPERVISOR_DATA_DIR", str(tmp_path / "state"))
    s = load_settings()
    assert s.database.url == f"sqlite:///{(tmp_path / 'state' / 'supervisor.db').as_posix()}"
    assert s.evidence.directory == tmp_path / "state" / "evidence"
    assert s.redis.embedded_path == tmp_path / "state" / "redis.db"
    # A place set explicitly wins, from the environment, a file or an argument.
    monkeypatch.setenv("SUPERVISOR_DATABASE__URL", "sqlite:///elsewhere.db")
    f = tmp_path / "s.toml"
    f.write_text(f'[evidence]\ndirectory = "{(tmp_path / "frames").as_posix()}"\n')
    s = load_settings(f, redis={"embedded_path": tmp_path / "r.db"})
    assert s.database.url == "sqlite:///elsewhere.db"
    assert s.evidence.directory == tmp_path / "frames"
    assert s.redis.embedded_path == tmp_path / "r.db"


def test_the_service_writes_its_state_under_data_dir(tmp_path: Path) -> None:
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env["SUPERVISOR_DATA_DIR"] = str(state)
    # Run from an empty folder: nothing may land in its ./var.
    work = tmp_path / "cwd"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "migrate"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (state / "supervisor.db").is_file()
    assert not (work / "var").exists()

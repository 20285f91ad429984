"""Typed settings of the service.

One `Settings` object is built from nested per-concern models. It is loaded once
by the app factory or the CLI (`load_settings`) and passed down; no package
reads the environment itself. Every field has a description, which is also the
source of the defaults table in the README (`supervisor settings --markdown`).

Sources, highest priority first: keyword arguments, environment variables with
the prefix ``SUPERVISOR_`` (nested with ``__``, e.g. ``SUPERVISOR_FACE__MATCH_THRESHOLD``),
a TOML file named by ``SUPERVISOR_CONFIG_FILE`` or ``--config``, then the defaults.

Each section is a model in its own module (`config/face.py`, `config/database.py`,
...); this module holds the root, its loading, and the refusal of development
secrets outside development. Every section stays importable from here.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.classroom import ClassroomSettings
from config.database import DatabaseSettings, RedisSettings
from config.evidence import EvidenceSettings
from config.exceptions import SettingsError
from config.face import EngineThresholds as EngineThresholds
from config.face import FaceEngineName as FaceEngineName
from config.face import FaceSettings
from config.face import SFaceSettings as SFaceSettings
from config.images import ImageSettings
from config.inspection import InspectionSettings
from config.liveness import LivenessSettings
from config.policy import PolicySettings
from config.privacy import PrivacySettings
from config.roster import RosterSettings
from config.security import DEV_DEVICE_SALT, DEV_SEAL_KEY, DEV_TEMPLATE_KEY, SecuritySettings
from config.server import ServerSettings
from config.subsidy import SubsidySettings
from config.web import WebSettings
from config.webrtc import WebRTCSettings
from config.workers import WorkerSettings

# Names of the local state inside `data_dir` when not set explicitly.
DATABASE_FILE = "supervisor.db"
EVIDENCE_FOLDER = "evidence"
REDIS_FILE = "redis.db"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    """All settings of the service. Build directly in tests; use `load_settings` elsewhere."""

    model_config = SettingsConfigDict(
        env_prefix="SUPERVISOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    environment: Environment = Field(
        Environment.development,
        description="development, test or production. Default secrets are refused in "
        "production and test.",
    )
    data_dir: Path = Field(
        Path("var"),
        description="Folder for local state: the SQLite database (`supervisor.db`), the "
        "evidence folder (`evidence`) and the embedded Redis file (`redis.db`) live in it "
        "unless `database.url`, `evidence.directory` or `redis.embedded_path` is set.",
    )
    face: FaceSettings = Field(default_factory=FaceSettings, description="Face verification.")
    images: ImageSettings = Field(default_factory=ImageSettings, description="Image limits.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Storage.")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis.")
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings, description="Evidence.")
    security: SecuritySettings = Field(default_factory=SecuritySettings, description="Keys.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    policy: PolicySettings = Field(default_factory=PolicySettings, description="Policy.")
    webrtc: WebRTCSettings = Field(default_factory=WebRTCSettings, description="WebRTC.")
    workers: WorkerSettings = Field(
        default_factory=WorkerSettings, description="Verification workers."
    )
    liveness: LivenessSettings = Field(default_factory=LivenessSettings, description="Liveness.")
    classroom: ClassroomSettings = Field(
        default_factory=ClassroomSettings, description="Classroom supervision."
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings, description="Personal data.")
    inspection: InspectionSettings = Field(
        default_factory=InspectionSettings, description="Inspector's workspace and seals."
    )
    web: WebSettings = Field(
        default_factory=WebSettings, description="Web protections and rate limits."
    )
    subsidy: SubsidySettings = Field(
        default_factory=SubsidySettings, description="Subsidy and fraud signals."
    )
    roster: RosterSettings = Field(
        default_factory=RosterSettings, description="Roster imports (learners' files)."
    )

    @model_validator(mode="after")
    def _local_state_under_data_dir(self) -> Self:
        # A place not set explicitly (by argument, environment or file) follows
        # `data_dir`; with the default `data_dir` these are the documented defaults.
        derived: list[tuple[str, BaseModel]] = []
        if "url" not in self.database.model_fields_set:
            url = f"sqlite:///{(self.data_dir / DATABASE_FILE).as_posix()}"
            derived.append(("database", self.database.model_copy(update={"url": url})))
        if "directory" not in self.evidence.model_fields_set:
            folder = self.data_dir / EVIDENCE_FOLDER
            derived.append(("evidence", self.evidence.model_copy(update={"directory": folder})))
        if "embedded_path" not in self.redis.model_fields_set:
            path = self.data_dir / REDIS_FILE
            derived.append(("redis", self.redis.model_copy(update={"embedded_path": path})))
        for name, section in derived:
            # Frozen model: the validator is the one place that finishes building it.
            object.__setattr__(self, name, section)
        return self

    @model_validator(mode="after")
    def _no_default_secrets_outside_development(self) -> Self:
        if self.environment is Environment.development:
            return self
        refused = []
        if self.security.template_key.get_secret_value() == DEV_TEMPLATE_KEY:
            refused.append("security.template_key")
        if self.security.seal_key.get_secret_value() == DEV_SEAL_KEY:
            refused.append("security.seal_key")
        if self.security.device_salt.get_secret_value() == DEV_DEVICE_SALT:
            refused.append("security.device_salt")
        if refused:
            raise ValueError(
                f"the development default of {', '.join(refused)} is refused in the "
                f"{self.environment.value} environment; set SUPERVISOR_SECURITY__TEMPLATE_KEY "
                "and SUPERVISOR_SECURITY__SEAL_KEY (base64 of 32 random bytes)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML source reads `model_config["toml_file"]`, which is None on
        # `Settings` itself (tests never read a file) and set by `load_settings`.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from overrides, the environment and a TOML file.

    The file is ``config_file``, else ``$SUPERVISOR_CONFIG_FILE``, else none.
    Invalid values raise `SettingsError` with one line per problem.
    """
    path = config_file or os.environ.get("SUPERVISOR_CONFIG_FILE") or None
    cls: type[Settings] = Settings
    if path is not None:
        toml_path = Path(path)
        if not toml_path.is_file():
            raise SettingsError(f"config file not found: {toml_path}")

        class _FromFile(Settings):
            model_config = SettingsConfigDict(toml_file=toml_path)

        cls = _FromFile
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One readable line per invalid setting, named by its dotted path."""
    lines = ["invalid settings:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(settings)"
        lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def settings_table(
    model: type[BaseModel] = Settings, prefix: str = ""
) -> list[tuple[str, str, str]]:
    """(dotted name, default, description) for every leaf setting, for the README."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        dotted = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(settings_table(ann, dotted + "."))
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            shown = "(development key)"
        elif isinstance(default, StrEnum):
            shown = default.value
        else:
            shown = "" if default is None else str(default)
        rows.append((dotted, shown, field.description or ""))
    return rows

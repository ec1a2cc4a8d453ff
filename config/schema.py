"""The pydantic models of `pmsync.toml` (DESIGN §9)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import PublishTarget, SourceSettings

Health = Literal["on_track", "at_risk", "off_track", "complete"]
Language = Literal["en", "zh-CN"]


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Path("pmsync.db")


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Minutes subtracted from the watermark so clock skew and slow indexing lose nothing.
    overlap_minutes: float = Field(default=5, ge=0)
    # Hours between two id censuses (tombstones for deleted items).
    census_every_hours: float = Field(default=24, ge=0)


class ProjectSettings(BaseModel):
    """One client project: which sources feed it, its dates, labels, plan and targets."""

    model_config = ConfigDict(extra="forbid")

    name: str
    client: str = ""
    sources: list[str] = Field(min_length=1)
    start_date: date | None = None
    target_date: date | None = None
    # Scope baseline for "scope change"; defaults to start_date.
    baseline_date: date | None = None
    schedule: str | None = None
    timezone: str = "UTC"
    language: Language = "en"
    internal_labels: list[str] = Field(default_factory=lambda: ["internal"])
    change_request_labels: list[str] = Field(default_factory=lambda: ["change-request"])
    change_request_types: list[str] = Field(default_factory=lambda: ["change request"])
    client_input_labels: list[str] = Field(default_factory=lambda: ["needs-client"])
    blocked_labels: list[str] = Field(default_factory=lambda: ["blocked"])
    # Monte Carlo throughput window.
    forecast_window_weeks: int = Field(default=6, ge=1, le=52)
    # Manual health override with its note.
    health: Health | None = None
    health_note: str | None = None
    lessons_learned: Path | None = None
    publish: list[PublishTarget] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r} (e.g. '0 9 * * MON')")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Config(BaseModel):
    """The whole file, with each source validated by its connector's own Settings model."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    store: StoreSettings = Field(default_factory=StoreSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    projects: dict[str, ProjectSettings] = Field(default_factory=dict)
    # The folder relative paths are resolved against (the config file's folder).
    base_dir: Path = Path(".")
    # Every value interpolated into a secret field: redacted from logs and errors.
    secrets: list[str] = Field(default_factory=list, exclude=True, repr=False)

    @model_validator(mode="after")
    def _projects_name_known_sources(self) -> Config:
        for pid, project in self.projects.items():
            for src in project.sources:
                if src not in self.sources:
                    raise ValueError(
                        f"projects.{pid}.sources: unknown source {src!r}"
                        f" (defined: {', '.join(self.sources) or 'none'})"
                    )
        return self

    def resolve(self, path: Path | str) -> Path:
        """Return `path` relative to the config file's folder unless it is absolute."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def projects_using(self, source: str) -> list[str]:
        return [pid for pid, p in self.projects.items() if source in p.sources]

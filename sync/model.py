"""The normalised records every connector yields and the store keeps (DESIGN §3)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


class StatusCategory(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in (StatusCategory.TODO, StatusCategory.IN_PROGRESS)


def utc(value: datetime) -> datetime:
    """Return an aware datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# An aware datetime, normalised to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(utc)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Transition(_Record):
    """One status change of one item, from the tool's history or observed between syncs."""

    source: str
    item_id: str
    at: UtcDatetime
    from_status: str | None = None
    to_status: str
    from_category: StatusCategory | None = None
    to_category: StatusCategory


class WorkItem(_Record):
    """A task, story, bug, epic or milestone-like item of a source tool."""

    source: str
    id: str
    key: str
    title: str
    url: str | None = None
    kind: str = "task"
    status: str = ""
    category: StatusCategory = StatusCategory.TODO
    assignee: str | None = None
    priority: str | None = None
    labels: list[str] = Field(default_factory=list)
    parent_id: str | None = None
    milestone_id: str | None = None
    start_date: date | None = None
    due_date: date | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    estimate: float | None = None
    progress: float | None = Field(default=None, ge=0, le=1)
    blocked: bool = False
    raw: dict[str, Any] = Field(default_factory=dict)
    # The tool's own status history for this item, oldest first; None when the tool has none
    # (the engine then records transitions it observes between syncs).
    transitions: list[Transition] | None = None

    @property
    def is_container(self) -> bool:
        return self.kind.lower() == "epic"


class Milestone(_Record):
    """A version, release, sprint or milestone that items point at through `milestone_id`."""

    source: str
    id: str
    name: str
    start_date: date | None = None
    due_date: date | None = None
    state: str = "open"
    url: str | None = None


class RemoteRef(BaseModel):
    """Where a published report lives in the target tool."""

    id: str
    url: str | None = None
    # False when the target already held exactly this content and nothing was sent.
    changed: bool = True

"""The connector contract (DESIGN §5): one class per tool, registered by entry point.

A connector reads its tool through `connectors.http.HttpClient` (or a file), yields
normalised `WorkItem`s and `Milestone`s, and can push a rendered report back. It never
touches the store: the sync engine does that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from sync.errors import PublishError
from sync.model import Milestone, RemoteRef, StatusCategory, WorkItem

if TYPE_CHECKING:
    from connectors.http import HttpClient
    from sync.report import Report


class SourceSettings(BaseModel):
    """Settings every source section has; a connector's `Settings` subclasses this."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    # Raw status name (or id) -> category; overrides the connector's own mapping.
    status_map: dict[str, StatusCategory] = Field(default_factory=dict)
    # Status names that mean "blocked" (the item keeps its category and gets blocked=True).
    blocked_statuses: list[str] = Field(default_factory=list)


class PublishTarget(BaseModel):
    """One `[[projects.X.publish]]` entry: `to` names a source (or a delivery kind)."""

    model_config = ConfigDict(extra="allow")

    to: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Publication(BaseModel):
    """What was last published for one project, target and period (the `publications` row)."""

    project: str
    target: str
    period: str
    remote_id: str
    content_hash: str
    url: str | None = None
    published_at: datetime


class Connector(ABC):
    """Base class of every connector. Subclasses set `kind`, `Settings` and `fetch_items`."""

    kind: ClassVar[str]
    Settings: ClassVar[type[SourceSettings]] = SourceSettings
    # The options a publish target naming this source accepts; None: this tool cannot publish.
    Target: ClassVar[type[BaseModel] | None] = None
    # True when fetch_items yields items in ascending updated_at order, so the engine may
    # move the watermark after every committed page rather than only at the end of a run.
    ordered: ClassVar[bool] = False
    # True when fetch_ids costs no requests (it reuses what fetch_items read): the engine then
    # runs the census on every sync instead of once per `census_every`.
    free_census: ClassVar[bool] = False

    def __init__(self, name: str, settings: SourceSettings) -> None:
        self.name = name
        self.settings = settings
        # Opaque per-source state the engine persists between runs (ETags, detected flavour…).
        self.state: dict[str, Any] = {}
        # Lines for the run summary (skipped items, how incremental sync was done…).
        self.notes: list[str] = []
        self.http: HttpClient | None = None

    def check(self) -> str:
        """Verify credentials and return who we are connected as."""
        return self.name

    @abstractmethod
    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        """Yield items changed since `since` (UTC; None = every item)."""

    def fetch_milestones(self) -> Iterable[Milestone]:
        """Return every milestone (version, sprint, release) of the source."""
        return []

    def fetch_ids(self) -> Iterator[str] | None:
        """Yield the id of every live item (a cheap census); None if the tool cannot."""
        return None

    def render(self, target: PublishTarget, report: Report) -> str:
        """Return exactly the text `publish` would send (for --dry-run and content hashes)."""
        raise PublishError(f"{self.kind} source {self.name!r} cannot publish reports")

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        """Create the report in the tool, or update `previous` in place; return where it is."""
        raise PublishError(f"{self.kind} source {self.name!r} cannot publish reports")

    def close(self) -> None:
        """Release network resources."""
        if self.http is not None:
            self.http.close()

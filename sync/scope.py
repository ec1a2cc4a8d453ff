"""The counting rule shared by reports and burn-up snapshots (DESIGN §7, README "Counting").

In scope = live items of the project's sources, minus items with an internal label for the
client audience, minus containers (epics: they appear in the Gantt, not in the counts).

Every function takes a `WorkItem` or anything with the same attributes (the report builder
reads a lean row type for speed; see `sync.report`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

from config.schema import ProjectSettings
from sync.model import StatusCategory

Audience = Literal["client", "internal"]


class ItemLike(Protocol):
    """The attributes of `WorkItem` the counting rule reads."""

    kind: str
    labels: list[str]
    category: StatusCategory
    blocked: bool
    estimate: float | None

    @property
    def is_container(self) -> bool: ...


def _folded(labels: Iterable[str]) -> set[str]:
    return {label.casefold() for label in labels}


def has_label(item: ItemLike, labels: Iterable[str]) -> bool:
    """Return True if the item carries any of `labels` (case-insensitive)."""
    wanted = _folded(labels)
    return any(label.casefold() in wanted for label in item.labels)


def in_scope(item: ItemLike, project: ProjectSettings, audience: Audience) -> bool:
    """Apply the counting rule to one live item."""
    if item.is_container:
        return False
    return not (audience == "client" and has_label(item, project.internal_labels))


def is_blocked(item: ItemLike, project: ProjectSettings) -> bool:
    """Open and flagged, in a blocked status (connector-mapped) or carrying a blocked label."""
    return item.category.is_open and (item.blocked or has_label(item, project.blocked_labels))


def needs_client_input(item: ItemLike, project: ProjectSettings) -> bool:
    """Open and carrying one of the project's client-input labels."""
    return item.category.is_open and has_label(item, project.client_input_labels)


def is_change_request(item: ItemLike, project: ProjectSettings) -> bool:
    """Carries a change-request label or is of a change-request type (any category)."""
    if item.kind.casefold() in _folded(project.change_request_types):
        return True
    return has_label(item, project.change_request_labels)


def counts(items: Iterable[ItemLike]) -> dict[str, float]:
    """Count items and sum estimates by category (the snapshot row's numbers)."""
    out: dict[str, float] = {c.value: 0 for c in StatusCategory}
    out["total"] = 0
    out["estimate_total"] = 0.0
    out["estimate_done"] = 0.0
    for item in items:
        out[item.category.value] += 1
        out["total"] += 1
        est = item.estimate or 0.0
        if item.category is not StatusCategory.CANCELLED:
            out["estimate_total"] += est
        if item.category is StatusCategory.DONE:
            out["estimate_done"] += est
    return out

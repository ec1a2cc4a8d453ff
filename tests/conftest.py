"""Shared fixtures: stores, item factories and an in-memory connector for engine tests."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connector, SourceSettings
from sync.model import Milestone, StatusCategory, WorkItem
from sync.store import Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def make_item(n: int, *, source: str = "src", **kw: Any) -> WorkItem:
    """A plain task `n`, updated n minutes after T0 unless told otherwise."""
    values: dict[str, Any] = {
        "source": source,
        "id": str(n),
        "key": f"T-{n}",
        "title": f"Task {n}",
        "status": "To Do",
        "category": StatusCategory.TODO,
        "created_at": T0 - timedelta(days=10),
        "updated_at": T0 + timedelta(minutes=n),
        "raw": {"n": n},
    }
    values.update(kw)
    return WorkItem(**values)


class ListConnector(Connector):
    """A connector over an in-memory list, with a failure switch for kill-mid-sync tests."""

    kind = "memory"
    Settings = SourceSettings

    def __init__(self, name: str = "src", items: Iterable[WorkItem] = (), **kw: Any) -> None:
        super().__init__(name, SourceSettings(kind="memory"))
        self.items: dict[str, WorkItem] = {i.id: i for i in items}
        self.fail_after: int | None = None  # raise after yielding this many items
        self.calls: list[datetime | None] = []
        self.census_calls = 0
        self.milestone_list: list[Milestone] = []
        for k, v in kw.items():
            setattr(self, k, v)

    def put(self, item: WorkItem) -> None:
        self.items[item.id] = item

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        self.calls.append(since)
        ordered = sorted(self.items.values(), key=lambda i: (i.updated_at or T0, i.id))
        for n, item in enumerate(ordered):
            if self.fail_after is not None and n >= self.fail_after:
                raise RuntimeError(f"killed after {n} items")
            if since is None or (item.updated_at and item.updated_at >= since):
                yield item

    def fetch_milestones(self) -> list[Milestone]:
        return self.milestone_list

    def fetch_ids(self) -> Iterator[str]:
        self.census_calls += 1
        return iter(list(self.items))

    def close(self) -> None:
        pass


class OrderedListConnector(ListConnector):
    ordered = True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave the root logger as found: a CLI command run in-process installs its handler."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "pmsync.db")
    yield s
    s.close()


def store_rows(store: Store, source: str = "src") -> list[dict[str, Any]]:
    """Every item row minus bookkeeping times: what must match between two sync histories."""
    skip = {"first_seen_at", "last_seen_at"}
    return [{k: v for k, v in r.items() if k not in skip} for r in store.item_rows([source])]

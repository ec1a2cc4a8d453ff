"""The sync engine (DESIGN §6): pull each source into the store, incrementally, losing nothing.

- The watermark is the newest committed `updated_at`; a run asks for items changed since
  watermark − overlap. Upserts are idempotent, so the overlap costs only bandwidth.
- Items are committed a page at a time. For connectors that yield in `updated_at` order the
  watermark moves after each page; for the others only when the whole pass is committed.
  A run killed anywhere therefore loses nothing and duplicates nothing.
- A census of live ids tombstones what vanished (`--full`, or when the last is too old); a
  full pass is itself a census, so it costs no extra requests.
- One run at a time per store (a lock file); one failing source does not stop the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from config.schema import Config
from connectors import connector_class
from connectors.base import Connector, SourceSettings
from sync import scope
from sync.errors import LockedError, PmsyncError, StoreError
from sync.model import WorkItem
from sync.store import Store

log = logging.getLogger("pmsync.sync")

Progress = Callable[[str, int], None]


@dataclass
class SourceResult:
    """What one source's run did: the row of the summary table and of `sync_runs`."""

    source: str
    kind: str
    mode: str
    status: str = "ok"
    new: int = 0
    changed: int = 0
    tombstoned: int = 0
    restored: int = 0
    seen: int = 0
    milestones: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def run_lock(db_path: Path | None) -> Iterator[None]:
    """Hold the store's lock file for the block; raise LockedError at once if it is taken."""
    if db_path is None:
        yield
        return
    lock = FileLock(f"{db_path}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(
            f"another pmsync run is using {db_path} (lock file {db_path}.lock); try again when it ends"
        ) from None
    except OSError as exc:  # a read-only folder, a missing one, a full disk
        raise StoreError(
            f"cannot create the lock file {db_path}.lock ({exc.strerror}); check that the"
            " store's folder exists and is writable by this user"
        ) from None
    try:
        yield
    finally:
        lock.release()


def make_connector(name: str, settings: SourceSettings) -> Connector:
    """Instantiate the connector registered for the source's kind."""
    return connector_class(settings.kind)(name, settings)


def sync_source(
    store: Store,
    connector: Connector,
    *,
    full: bool = False,
    overlap: timedelta = timedelta(minutes=5),
    census_every: timedelta = timedelta(hours=24),
    now: datetime | None = None,
    page_size: int = 100,
    progress: Progress | None = None,
    redact: Callable[[str], str] = lambda s: s,
) -> SourceResult:
    """Pull one source into the store and record the run; never raises for source failures."""
    name = connector.name
    started = time.monotonic()
    now = now or datetime.now(UTC)
    cursor = store.cursor(name)
    connector.state = dict(cursor["state"])
    watermark: datetime | None = cursor["watermark"]
    mode = "full" if full or watermark is None else "incremental"
    since = None if mode == "full" else watermark - overlap  # type: ignore[operator]
    result = SourceResult(source=name, kind=connector.kind, mode=mode)
    run_id = store.start_run(name, mode)
    newest: datetime | None = None
    seen_ids: set[str] = set()
    page: list[WorkItem] = []

    def commit() -> None:
        nonlocal newest
        if not page:
            return
        page_newest = max((i.updated_at for i in page if i.updated_at), default=None)
        if page_newest is not None and (newest is None or page_newest > newest):
            newest = page_newest
        # In-order sources move the watermark with the page, in the same transaction.
        counts = store.upsert_items(page, now=now, watermark=newest if connector.ordered else None)
        result.new += counts.new
        result.changed += counts.changed
        result.restored += counts.restored
        result.seen += len(page)
        page.clear()
        if progress:
            progress(name, result.seen)

    try:
        for item in connector.fetch_items(since):
            if item.source != name:
                item = item.model_copy(update={"source": name})
            page.append(item)
            seen_ids.add(item.id)
            if len(page) >= page_size:
                commit()
        commit()
        milestones = list(connector.fetch_milestones())
        result.milestones = store.upsert_milestones(name, milestones)
        census_at: datetime | None = None
        if mode == "full":
            gone, back = store.reconcile(name, seen_ids, now=now)
            result.tombstoned, result.restored = gone, result.restored + back
            census_at = now
        elif (
            connector.free_census
            or cursor["last_census_at"] is None
            or now - cursor["last_census_at"] >= census_every
        ):
            ids = connector.fetch_ids()
            if ids is not None:
                gone, back = store.reconcile(name, ids, now=now)
                result.tombstoned, result.restored = gone, result.restored + back
                census_at = now
        store.set_cursor(name, watermark=newest, last_census_at=census_at, state=connector.state)
    except PmsyncError as exc:
        result.status, result.error = "failed", redact(str(exc))
    except Exception as exc:  # a bug or an unforeseen API answer: fail this source only
        log.debug("unexpected error syncing %s", name, exc_info=True)
        result.status = "failed"
        result.error = redact(f"{name}: unexpected {type(exc).__name__}: {exc}")
    finally:
        if connector.http is not None:
            result.requests, result.retries = connector.http.requests, connector.http.retries
            if result.error:
                result.error = connector.http.redact(result.error)
        result.notes = list(connector.notes)
        result.seconds = round(time.monotonic() - started, 3)
        store.finish_run(
            run_id,
            status=result.status,
            items_new=result.new,
            items_changed=result.changed,
            items_tombstoned=result.tombstoned,
            items_restored=result.restored,
            items_seen=result.seen,
            requests=result.requests,
            retries=result.retries,
            notes=result.notes,
            error=result.error,
        )
        connector.close()
    # INFO even on failure: the caller reports the error itself, once.
    log.info(
        "%s: %s sync %s: %d new, %d changed, %d tombstoned, %d requests, %.1fs%s",
        name,
        mode,
        result.status,
        result.new,
        result.changed,
        result.tombstoned,
        result.requests,
        result.seconds,
        f": {result.error}" if result.error else "",
        extra={"event": "source", **{f"sync_{k}": v for k, v in result.as_dict().items()}},
    )
    return result


def write_snapshots(
    store: Store, config: Config, project_ids: Sequence[str], now: datetime
) -> None:
    """Record today's burn-up counts (per audience) for each project, in its own timezone."""
    for pid in project_ids:
        project = config.projects[pid]
        groups = store.item_groups(project.sources)
        day = now.astimezone(project.zone).date()
        for audience in ("client", "internal"):
            # Each group stands for `count` alike items: count it that many times.
            in_scope = chain.from_iterable(
                repeat(g, g.count) for g in groups if scope.in_scope(g, project, audience)
            )
            store.write_snapshot(pid, day, audience, scope.counts(in_scope))


def run_sync(
    config: Config,
    store: Store,
    names: Sequence[str] | None = None,
    *,
    full: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> list[SourceResult]:
    """Sync the named sources (default: all) one after another; write project snapshots."""
    selected = list(names) if names else list(config.sources)
    now = now or datetime.now(UTC)
    results: list[SourceResult] = []

    def redact(text: str) -> str:
        for secret in config.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    for name in selected:
        settings = config.sources[name]
        try:
            connector = make_connector(name, settings)
        except PmsyncError as exc:
            results.append(
                SourceResult(
                    name,
                    settings.kind,
                    "full" if full else "incremental",
                    status="failed",
                    error=redact(str(exc)),
                )
            )
            continue
        results.append(
            sync_source(
                store,
                connector,
                full=full,
                now=now,
                progress=progress,
                redact=redact,
                overlap=timedelta(minutes=config.sync.overlap_minutes),
                census_every=timedelta(hours=config.sync.census_every_hours),
            )
        )
    synced = {r.source for r in results if r.ok}
    projects = [pid for pid, p in config.projects.items() if synced & set(p.sources)]
    write_snapshots(store, config, projects, now)
    return results

"""Publishing (DESIGN §8): build a project's report, hand it to each target, never twice.

A project's `[[projects.X.publish]]` entries are its targets. `to` names a source (its
connector posts the report: a Jira comment, a Redmine note…) or a delivery kind of
`sync.delivery` (`email`, `file`). Every target also takes `audience` (client|internal)
and `language`; the report is built once per audience and language.

Identity: a target is known in the `publications` table as its `to`, and the second,
third… entry with the same `to` in a project as `to#2`, `to#3` (in file order). Keep the
order of same-`to` entries stable, or the moved ones publish their period anew.

Idempotency: each publication is recorded with its project, target, period
(`Report.period_id`), remote id, URL, content hash and time. The content hash is sha256 of
what the report says (its JSON contract without `generated_at` and the sources'
`last_synced_at`, which change on every run) and of the target's options (secrets left
out). A target whose stored hash for the period matches is not sent anything; a changed
report for a recorded period goes to the target with `previous` set, and the target updates
it in place where the tool can (email sends a follow-up).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from config.schema import Config, ProjectSettings
from connectors.base import Publication, PublishTarget
from sync.delivery import COMMON_OPTIONS, DELIVERIES
from sync.errors import ConfigError, PmsyncError
from sync.schedule import Slot, is_due, project_last_slot
from sync.store import Store

log = logging.getLogger("pmsync.publish")

Status = Literal["published", "updated", "unchanged", "failed", "held", "dry-run"]
_PERIOD_ID = re.compile(r"\s*(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})\s*")


@dataclass(frozen=True)
class TargetSpec:
    """One publish target of a project, with its stable identity."""

    id: str
    target: PublishTarget
    audience: str
    language: str | None

    @property
    def to(self) -> str:
        return self.target.to

    def for_publisher(self, sources: Container[str]) -> PublishTarget:
        """The target as its publisher sees it: a connector never gets pmsync's own options."""
        if self.to not in sources:
            return self.target  # a delivery: its model has them
        opts = {k: v for k, v in self.target.options.items() if k not in COMMON_OPTIONS}
        return PublishTarget(to=self.to, **opts)


def target_specs(project: ProjectSettings) -> list[TargetSpec]:
    """The project's targets in file order, named `to`, `to#2`, `to#3`…"""
    seen: dict[str, int] = {}
    out = []
    for target in project.publish:
        n = seen[target.to] = seen.get(target.to, 0) + 1
        options = target.options
        out.append(
            TargetSpec(
                id=target.to if n == 1 else f"{target.to}#{n}",
                target=target,
                audience=str(options.get("audience") or "client"),
                language=options.get("language"),
            )
        )
    return out


def select_targets(
    project_id: str, specs: list[TargetSpec], names: Sequence[str]
) -> list[TargetSpec]:
    """Keep the targets named by id (`email#2`) or by `to` (every entry with that `to`)."""
    if not names:
        return specs
    chosen = [s for s in specs if s.id in names or s.to in names]
    unknown = [n for n in names if not any(n in (s.id, s.to) for s in specs)]
    if unknown:
        known = ", ".join(s.id for s in specs) or "none"
        raise ConfigError(
            f"project {project_id!r} has no publish target {unknown[0]!r} (targets: {known})"
        )
    return chosen


@dataclass
class PublishResult:
    """What happened to one target: the row of the run summary."""

    project: str
    target: str
    period: str
    status: Status
    remote_id: str | None = None
    url: str | None = None
    content_hash: str | None = None
    seconds: float = 0.0
    error: str | None = None
    # --dry-run only: exactly what would be sent (None when nothing would be).
    payload: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_dict(self, *, payload: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not payload:
            data.pop("payload")
        return data


def content_hash(report: Any, spec: TargetSpec, secrets: Sequence[str] = ()) -> str:
    """sha256 of what the report says and where it goes (see the module docstring)."""
    data = report.model_dump(mode="json")
    data.pop("generated_at", None)
    for source in data.get("sources") or []:
        source.pop("last_synced_at", None)
    hidden = {s for s in secrets if s}
    options = {
        k: v
        for k, v in spec.target.options.items()
        if k != "password" and not (isinstance(v, str) and v in hidden)
    }
    blob = json.dumps(
        {"v": 1, "to": spec.to, "options": options, "report": data},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def resolve_period(project: ProjectSettings, spec: str | None, now: datetime) -> tuple[date, date]:
    """The period of an on-demand publish.

    None: the period of the latest scheduled slot (what `run` publishes), or the 7 days
    ending today without a schedule. `START..END` (a period id): exactly those days.
    `7d`, `2w`, `1m`: that many days ending today in the project's zone.
    """
    from sync.report import parse_period, period_of

    if spec is None:
        slot = project_last_slot(project, now)
        if slot is not None:
            return slot.start, slot.end
        return period_of(project.zone, now, start=None, end=None)
    m = _PERIOD_ID.fullmatch(spec)
    if m:
        try:
            start, end = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
        except ValueError:
            raise ConfigError(f"cannot read period {spec!r}: not a real date") from None
        if start > end:
            raise ConfigError(f"period {spec!r} starts after it ends; swap the dates")
        return start, end
    return parse_period(spec, now.astimezone(project.zone).date())


class _Publishers:
    """Open each target's publisher once (a connector per source, a delivery per kind)."""

    def __init__(self, config: Config, store: Store, now: datetime) -> None:
        self.config, self.store, self.now = config, store, now
        self.open: dict[str, Any] = {}

    def get(self, to: str) -> Any:
        # A source of that name wins over a delivery kind, as in config/loader.py.
        if to not in self.open:
            if to in self.config.sources:
                from sync.engine import make_connector

                connector = make_connector(to, self.config.sources[to])
                connector.state = dict(self.store.cursor(to)["state"])
                self.open[to] = connector
            elif to in DELIVERIES:
                self.open[to] = DELIVERIES[to](self.config.base_dir, now=self.now)
            else:
                raise ConfigError(f"unknown publish target {to!r}")
        return self.open[to]

    def close(self) -> None:
        for publisher in self.open.values():
            try:
                publisher.close()
            except Exception:  # closing must not hide the results
                log.debug("closing %s failed", publisher, exc_info=True)


def _redactor(config: Config) -> Callable[[str], str]:
    secrets = sorted({s for s in config.secrets if s}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact


def publish_project(
    store: Store,
    config: Config,
    project_id: str,
    *,
    start: date,
    end: date,
    targets: Sequence[TargetSpec] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[PublishResult]:
    """Publish the project's report for `start`..`end` to its targets (default: all).

    Never raises for a target's failure: each failure is its result, the others go on.
    """
    project = config.projects.get(project_id)
    if project is None:
        known = ", ".join(sorted(config.projects)) or "none"
        raise ConfigError(f"unknown project {project_id!r} (configured: {known})")
    specs = list(targets) if targets is not None else target_specs(project)
    if not any(store.last_synced_at(s) for s in project.sources):
        # An empty report would tell the client nothing was ever done.
        why = (
            f"project {project_id!r} has no synced data yet ({', '.join(project.sources)});"
            " run `pmsync sync` first"
        )
        period = f"{start.isoformat()}..{end.isoformat()}"
        results = [PublishResult(project_id, s.id, period, "failed", error=why) for s in specs]
        for r in results:
            _log_result(r)
        return results
    job = _Job(store, config, project_id, start, end, now or datetime.now(UTC), dry_run)
    try:
        return [job.publish(spec) for spec in specs]
    finally:
        job.publishers.close()


class _Job:
    """One project's period being published: its reports (per audience and language) and
    publishers are built once and shared by its targets."""

    def __init__(
        self,
        store: Store,
        config: Config,
        project_id: str,
        start: date,
        end: date,
        now: datetime,
        dry_run: bool,
    ) -> None:
        self.store, self.config, self.project_id = store, config, project_id
        self.start, self.end, self.now, self.dry_run = start, end, now, dry_run
        self.reports: dict[tuple[str, str | None], Any] = {}
        self.publishers = _Publishers(config, store, now)
        self.redact = _redactor(config)

    def report(self, spec: TargetSpec) -> Any:
        from sync.report import build_report

        key = (spec.audience, spec.language)
        if key not in self.reports:
            try:
                self.reports[key] = build_report(
                    self.store,
                    self.config,
                    self.project_id,
                    start=self.start,
                    end=self.end,
                    now=self.now,
                    audience=spec.audience,  # type: ignore[arg-type]
                    language=spec.language,
                )
            except Exception as exc:  # a failed build fails its targets, not the run
                self.reports[key] = exc
        built = self.reports[key]
        if isinstance(built, Exception):
            raise built
        return built

    def publish(self, spec: TargetSpec) -> PublishResult:
        pid, store, now = self.project_id, self.store, self.now
        period = f"{self.start.isoformat()}..{self.end.isoformat()}"
        result = PublishResult(pid, spec.id, period, "failed")
        started = time.monotonic()
        try:
            report = self.report(spec)
            period = result.period = report.period_id
            digest = result.content_hash = content_hash(report, spec, self.config.secrets)
            row = store.publication(pid, spec.id, period)
            previous = Publication(**row) if row else None
            publisher = self.publishers.get(spec.to)
            target = spec.for_publisher(self.config.sources)
            if previous is not None:
                result.remote_id, result.url = previous.remote_id, previous.url
            if self.dry_run:
                if previous is not None and previous.content_hash == digest:
                    result.status = "unchanged"
                else:
                    result.status = "dry-run"
                    result.payload = publisher.render(target, report)
            elif previous is not None and previous.content_hash == digest:
                # Nothing to send; record that the target was confirmed at this time.
                result.status = "unchanged"
                store.record_publication(
                    pid, spec.id, period, previous.remote_id, digest, previous.url, at=now
                )
            else:
                ref = publisher.publish(target, report, previous)
                result.remote_id, result.url = ref.id, ref.url
                if not ref.changed:
                    result.status = "unchanged"
                else:
                    result.status = "updated" if previous is not None else "published"
                store.record_publication(pid, spec.id, period, ref.id, digest, ref.url, at=now)
        except PmsyncError as exc:
            result.status, result.error = "failed", self.redact(" ".join(str(exc).split()))
        except Exception as exc:  # a bug or an unforeseen answer: fail this target only
            log.debug("unexpected error publishing %s to %s", pid, spec.id, exc_info=True)
            result.status = "failed"
            result.error = self.redact(f"{spec.id}: unexpected {type(exc).__name__}: {exc}")
        result.seconds = round(time.monotonic() - started, 3)
        _log_result(result)
        return result


def _log_result(r: PublishResult) -> None:
    level = logging.ERROR if r.status == "failed" else logging.INFO
    log.log(
        level,
        "%s → %s (%s): %s in %.1fs%s",
        r.project,
        r.target,
        r.period,
        r.status,
        r.seconds,
        f": {r.error}" if r.error else "",
        extra={
            "event": "publication",
            "project": r.project,
            "target": r.target,
            "period": r.period,
            "status": r.status,
            "seconds": r.seconds,
            "remote_id": r.remote_id,
        },
    )


# -- the schedule -----------------------------------------------------------------------------


def due_targets(
    store: Store, project_id: str, project: ProjectSettings, slot: Slot
) -> list[TargetSpec]:
    """The targets whose latest slot has not been served for its period."""
    return [
        spec
        for spec in target_specs(project)
        if is_due(slot, store.publication(project_id, spec.id, slot.period_id))
    ]


def publish_due(
    store: Store,
    config: Config,
    *,
    now: datetime | None = None,
    failed_sources: Sequence[str] = (),
) -> list[PublishResult]:
    """Publish every scheduled report that has come due (DESIGN §8), each period once.

    A due project with a source that failed to sync in this run is held back (its report
    would be stale); the next run retries both.
    """
    now = now or datetime.now(UTC)
    results: list[PublishResult] = []
    for pid, project in config.projects.items():
        try:
            slot = project_last_slot(project, now)
        except ConfigError as exc:
            for spec in target_specs(project):
                bad = PublishResult(pid, spec.id, "", "failed", error=f"{pid}: {exc}")
                _log_result(bad)
                results.append(bad)
            continue
        if slot is None:
            continue
        due = due_targets(store, pid, project, slot)
        if not due:
            continue
        broken = [s for s in project.sources if s in failed_sources]
        if broken:
            for spec in due:
                why = f"source {broken[0]!r} failed to sync; the report waits for the next run"
                held = PublishResult(pid, spec.id, slot.period_id, "held", error=why)
                _log_result(held)
                results.append(held)
            continue
        results.extend(
            publish_project(
                store, config, pid, start=slot.start, end=slot.end, targets=due, now=now
            )
        )
    return results


@dataclass
class RunOutcome:
    """What one `pmsync run` did."""

    sync: list[Any]
    publications: list[PublishResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.sync) and all(p.ok for p in self.publications)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": self.seconds,
            "sync": [r.as_dict() for r in self.sync],
            "publications": [p.as_dict() for p in self.publications],
        }


def run(
    config: Config,
    store: Store,
    *,
    sync: bool = True,
    now: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RunOutcome:
    """The cron entry point: sync every source, then publish what the schedule says is due.

    The caller holds `sync.engine.run_lock` around this.
    """
    from sync.engine import run_sync

    started = time.monotonic()
    now = now or datetime.now(UTC)
    synced = run_sync(config, store, now=now, progress=progress) if sync and config.sources else []
    failed = [r.source for r in synced if not r.ok]
    pubs = publish_due(store, config, now=now, failed_sources=failed)
    outcome = RunOutcome(synced, pubs, round(time.monotonic() - started, 3))
    counts: dict[str, int] = {}
    for p in pubs:
        counts[p.status] = counts.get(p.status, 0) + 1
    # INFO either way: each failure was logged as an error where it happened.
    log.info(
        "run %s: %d sources synced (%d failed), %d publications (%s) in %.1fs",
        "ok" if outcome.ok else "failed",
        len(synced),
        len(failed),
        len(pubs),
        ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing due",
        outcome.seconds,
        extra={
            "event": "run",
            "ok": outcome.ok,
            "sources": len(synced),
            "sources_failed": len(failed),
            "publications": counts,
            "seconds": outcome.seconds,
        },
    )
    return outcome


def summary_lines(outcome: RunOutcome) -> list[str]:
    """Short human lines for `pmsync run` (one per source and per publication)."""
    lines = []
    for r in outcome.sync:
        detail = f"{r.new} new, {r.changed} changed, {r.tombstoned} tombstoned"
        lines.append(f"sync {r.source}: {r.status} ({detail}, {r.seconds:.1f}s)")
    for p in outcome.publications:
        where = f" {p.url}" if p.url and p.status != "failed" else ""
        lines.append(f"publish {p.project} → {p.target} {p.period}: {p.status}{where}")
    if not outcome.publications:
        lines.append("publish: nothing due")
    return lines


def error_lines(outcome: RunOutcome) -> list[str]:
    """One line per failure, for stderr."""
    out = [f"{r.source}: {r.error}" for r in outcome.sync if r.error]
    out += [
        f"{p.project} → {p.target}: {p.error}"
        for p in outcome.publications
        if p.error and p.status in ("failed", "held")
    ]
    return out

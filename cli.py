"""The `pmsync` command line: parse, call, print. The work happens in sync/ and connectors/."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from config.loader import EXAMPLE, default_config_path, load_config
from config.schema import Config
from sync.errors import EXIT_FAILED, ConfigError, PmsyncError
from sync.store import Store, store_failure

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("pmsync")


class App:
    """What every command needs: the config and store, opened lazily from the global options."""

    def __init__(self, config_path: Path, db_path: Path | None, verbose: bool) -> None:
        self.config_path = config_path
        self.db_override = db_path
        self.verbose = verbose
        self._config: Config | None = None
        self._store: Store | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def db_path(self) -> Path:
        return self.db_override or self.config.store.path

    def store(self, *, readonly: bool = False) -> Store:
        if self._store is None:
            self._store = Store.open(self.db_path, readonly=readonly)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def handle_errors(fn: F) -> F:
    """Turn PmsyncError into one line on stderr and its exit code (a traceback only with -v)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (PmsyncError, sqlite3.DatabaseError) as exc:
            app = click.get_current_context().find_object(App)
            if app is not None and app.verbose:
                log.exception("error")
            if isinstance(exc, sqlite3.DatabaseError):  # reading a damaged store
                store = app._store if app is not None else None
                exc = store_failure(store.path if store is not None else None, exc)
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default: $PMSYNC_CONFIG or ./pmsync.toml).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path),
    envvar="PMSYNC_DB",
    default=None,
    help="SQLite store (default: [store] path in the config; or $PMSYNC_DB).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and tracebacks.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="PMSYNC_LOG_FORMAT",
    help="Log lines for people (text) or one JSON object per line (json) for log shippers.",
)
@click.version_option(package_name="pmsync")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    db_path: Path | None,
    verbose: bool,
    log_format: str,
) -> None:
    """Sync tasks from your PM tools into SQLite and publish client status reports.

    Example: pmsync demo
    """
    from sync.logs import setup_logging, teardown_logging

    app = App(config_path or default_config_path(), db_path, verbose)
    # Secrets are known once the config is loaded; the filter reads them at each record.
    handler = setup_logging(
        log_format,  # type: ignore[arg-type]
        verbose=verbose,
        secrets=lambda: app._config.secrets if app._config is not None else (),
    )
    ctx.obj = app
    ctx.call_on_close(app.close)
    ctx.call_on_close(lambda: teardown_logging(handler))


pass_app = click.make_pass_decorator(App)


# -- init / check ---------------------------------------------------------------------------


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
@handle_errors
def init(app: App, force: bool) -> None:
    """Write an annotated pmsync.toml to start from.

    Example: pmsync init && $EDITOR pmsync.toml
    """
    path = app.config_path
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    shutil.copyfile(EXAMPLE, path)
    click.echo(f"wrote {path}; edit it, export the tokens it names, then run `pmsync check`")


@cli.command()
@click.option("--offline", is_flag=True, help="Only validate the file; do not contact sources.")
@pass_app
@handle_errors
def check(app: App, offline: bool) -> None:
    """Validate the config and test every source's credentials.

    Example: pmsync --config acme.toml check
    """
    from sync.engine import make_connector

    config = app.config
    click.echo(
        f"{app.config_path}: ok ({len(config.sources)} sources, {len(config.projects)} projects)"
    )
    if offline:
        return
    rows, failed = [], False
    for name, settings in config.sources.items():
        connector = make_connector(name, settings)
        try:
            who = connector.check()
            rows.append((name, settings.kind, "ok", who))
        except PmsyncError as exc:
            failed = True
            rows.append((name, settings.kind, "FAILED", str(exc)))
        finally:
            connector.close()
    click.echo(table(("source", "kind", "status", "detail"), rows))
    if failed:
        sys.exit(EXIT_FAILED)


# -- sync / status --------------------------------------------------------------------------


@cli.command()
@click.argument("sources", nargs=-1)
@click.option("--full", is_flag=True, help="Re-read everything and run a census for deletions.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@pass_app
@handle_errors
def sync(app: App, sources: tuple[str, ...], full: bool, as_json: bool) -> None:
    """Pull changed items from every source (or the named ones) into the store.

    Example: pmsync sync acme-jira --full
    """
    from sync.engine import run_lock, run_sync

    config = app.config
    unknown = [s for s in sources if s not in config.sources]
    if unknown:
        raise ConfigError(
            f"unknown source {unknown[0]!r} (defined: {', '.join(config.sources) or 'none'})"
        )
    with run_lock(app.db_path):
        store = app.store()
        results = run_sync(config, store, sources, full=full, progress=_progress(as_json))
    _clear_progress(as_json)
    print_results(results, as_json)
    if not all(r.ok for r in results):
        sys.exit(EXIT_FAILED)


def _progress(quiet: bool) -> Callable[[str, int], None] | None:
    if quiet or not sys.stderr.isatty():
        return None

    def show(source: str, n: int) -> None:
        click.echo(f"\r{source}: {n:,} items…", nl=False, err=True)

    return show


def _clear_progress(quiet: bool) -> None:
    if not quiet and sys.stderr.isatty():
        click.echo("\r\033[K", nl=False, err=True)


def print_results(results: Sequence[Any], as_json: bool) -> None:
    """Print sync results as the summary table (or JSON)."""
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
        return
    rows = [
        (
            r.source,
            r.mode,
            r.status,
            r.new,
            r.changed,
            r.tombstoned,
            r.requests,
            r.retries,
            f"{r.seconds:.1f}",
        )
        for r in results
    ]
    click.echo(
        table(
            (
                "source",
                "mode",
                "status",
                "new",
                "changed",
                "tombstoned",
                "requests",
                "retries",
                "s",
            ),
            rows,
        )
    )
    for r in results:
        for note in r.notes:
            click.echo(f"  {r.source}: {note}")
        if r.error:
            click.echo(f"error: {r.error}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
@handle_errors
def status(app: App, as_json: bool) -> None:
    """Show the last run per source, data freshness and item counts.

    Example: pmsync status --json
    """
    config = app.config
    store = app.store(readonly=True)
    runs = store.last_runs()
    now = datetime.now(UTC)
    out = []
    for name, settings in config.sources.items():
        run = runs.get(name, {})
        last_ok = run.get("last_ok_at")
        out.append(
            {
                "source": name,
                "kind": settings.kind,
                "last_run": run.get("status"),
                "last_run_at": run.get("ended_at"),
                "last_ok_at": last_ok.isoformat() if last_ok else None,
                "age_hours": round((now - last_ok).total_seconds() / 3600, 1) if last_ok else None,
                "items": len(store.item_ids(name)),
                "error": run.get("error"),
            }
        )
    from sync.schedule import plan_status

    plan = plan_status(config, store, now)
    if as_json:
        click.echo(json.dumps({"sources": out, "projects": plan}, indent=2))
        return
    click.echo(
        table(
            ("source", "kind", "last run", "last ok", "age h", "items"),
            [
                (
                    r["source"],
                    r["kind"],
                    r["last_run"] or "never",
                    r["last_ok_at"] or "-",
                    r["age_hours"] if r["age_hours"] is not None else "-",
                    r["items"],
                )
                for r in out
            ],
        )
    )
    for r in out:
        if r["error"]:
            click.echo(f"  {r['source']}: last error: {r['error']}")
    if plan:
        click.echo()
        click.echo(
            table(
                ("project", "schedule", "due now", "next due", "period"),
                [
                    (
                        p["project"],
                        p["schedule"] or "on demand",
                        ", ".join(p["due"]) or "-",  # type: ignore[arg-type]
                        p["next_due_local"] or "-",
                        p["next_period"] or "-",
                    )
                    for p in plan
                ],
            )
        )
        for p in plan:
            if p.get("error"):
                click.echo(f"  {p['project']}: {p['error']}")


# -- report / feedback ----------------------------------------------------------------------

DAY = click.DateTime(formats=["%Y-%m-%d"])


@cli.command()
@click.argument("project")
@click.option("--from", "start", type=DAY, help="First day of the period (YYYY-MM-DD).")
@click.option("--to", "end", type=DAY, help="Last day of the period (default: today).")
@click.option("--period", help="The period ending today: 7d, 2w or 1m (default 7d).")
@click.option(
    "--format", "fmt", type=click.Choice(["md", "html", "json", "adf"]), default="md",
    show_default=True, help="Markdown, self-contained HTML, JSON or Jira ADF.",
)  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to FILE instead of standard output.")  # fmt: skip
@click.option(
    "--audience", type=click.Choice(["client", "internal"]), default="client",
    show_default=True, help="client leaves out internal-labelled items.",
)  # fmt: skip
@click.option("--language", type=click.Choice(["en", "zh-CN"]),
              help="Report language (default: the project's `language`).")  # fmt: skip
@click.option("--closing", is_flag=True,
              help="Closing report: outcomes, planned vs actual, lessons learned, feedback.")  # fmt: skip
@click.option("--health", type=click.Choice(["on_track", "at_risk", "off_track", "complete"]),
              help="Override the computed health (explain it with --note).")  # fmt: skip
@click.option("--note", help="Why the health was overridden; shown as the first reason.")
@pass_app
@handle_errors
def report(
    app: App, project: str, start: datetime | None, end: datetime | None, period: str | None,
    fmt: str, output: Path | None, audience: str, language: str | None, closing: bool,
    health: str | None, note: str | None,
) -> None:  # fmt: skip
    """Build PROJECT's status report from the store (no network needed).

    Example: pmsync report acme --period 2w --format html -o acme-status.html
    """
    from sync.render import render
    from sync.report import build_report, resolve_period

    config = app.config
    configured = config.projects.get(project)
    if note and not health and not (configured and configured.health):
        raise ConfigError("--note explains a health override; pass --health too")
    first, last = resolve_period(
        config, project, period=period, start=start.date() if start else None,
        end=end.date() if end else None,
    )  # fmt: skip
    built = build_report(
        app.store(readonly=True), config, project, start=first, end=last,
        audience=audience,  # type: ignore[arg-type]
        language=language, closing=closing, health=health, note=note,
    )  # fmt: skip
    text = render(built, fmt)  # type: ignore[arg-type]
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise PmsyncError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output} ({built.period_id}, health {built.health.status})")


@cli.group()
def feedback() -> None:
    """Record client satisfaction (shown in closing and internal reports).

    Example: pmsync feedback add acme --score 4 --comment "Clear weekly updates"
    """


@feedback.command("add")
@click.argument("project")
@click.option("--score", type=click.IntRange(1, 5), required=True,
              help="1 (very unhappy) to 5 (delighted).")  # fmt: skip
@click.option("--comment", help="What the client said, in their words.")
@click.option("--date", "day", type=DAY, help="When it was given (default: today).")
@pass_app
@handle_errors
def feedback_add(
    app: App, project: str, score: int, comment: str | None, day: datetime | None
) -> None:
    """Record one client satisfaction score for PROJECT.

    Example: pmsync feedback add acme --score 5 --comment "Great demo" --date 2026-11-27
    """
    config = app.config
    settings = config.projects.get(project)
    if settings is None:
        known = ", ".join(sorted(config.projects)) or "none"
        raise ConfigError(f"unknown project {project!r} (configured: {known})")
    when = day.date() if day else datetime.now(settings.zone).date()
    app.store().add_feedback(project, when, score, comment or None)
    click.echo(f"recorded {score}/5 for {project} on {when.isoformat()}")


# -- publish / run --------------------------------------------------------------------------


@cli.command()
@click.argument("project")
@click.option(
    "--to", "targets", multiple=True, help="Only this target (its `to`, or `to#2`…); repeatable."
)
@click.option(
    "--period",
    default=None,
    help="START..END, or 7d/2w/1m ending today (default: the latest scheduled period).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@pass_app
@handle_errors
def publish(
    app: App,
    project: str,
    targets: tuple[str, ...],
    period: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Publish a project's report to its targets now (unchanged reports are not re-sent).

    Example: pmsync publish acme --to email --dry-run
    """
    from sync.engine import run_lock
    from sync.publish import publish_project, resolve_period, select_targets, target_specs

    config = app.config
    settings = config.projects.get(project)
    if settings is None:
        known = ", ".join(sorted(config.projects)) or "none"
        raise ConfigError(f"unknown project {project!r} (configured: {known})")
    specs = select_targets(project, target_specs(settings), targets)
    if not specs:
        raise ConfigError(f"project {project!r} has no [[projects.{project}.publish]] targets")
    now = datetime.now(UTC)
    start, end = resolve_period(settings, period, now)
    if dry_run:
        store = app.store(readonly=True)
        results = publish_project(
            store, config, project, start=start, end=end, targets=specs, now=now, dry_run=True
        )
    else:
        with run_lock(app.db_path):
            results = publish_project(
                app.store(), config, project, start=start, end=end, targets=specs, now=now
            )
    if as_json:
        click.echo(json.dumps([r.as_dict(payload=dry_run) for r in results], indent=2))
    else:
        for r in results:
            where = f" {r.url}" if r.url else ""
            if r.status == "dry-run":
                click.echo(f"=== {r.target} ({r.period}): would send ===")
                click.echo(r.payload or "")
            elif dry_run and r.status == "unchanged":
                click.echo(f"=== {r.target} ({r.period}): unchanged, nothing would be sent ===")
            else:
                click.echo(f"{r.target} ({r.period}): {r.status}{where}")
    for r in results:
        if r.error:
            click.echo(f"error: {r.target}: {r.error}", err=True)
    if not all(r.ok for r in results):
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--no-sync", is_flag=True, help="Publish what is due without syncing first.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something failed.")
@pass_app
@handle_errors
def run(app: App, no_sync: bool, as_json: bool, quiet: bool) -> None:
    """Cron entry point: sync every source, then publish every report that is due.

    Exit codes: 0 ok, 1 a source or target failed, 75 another run holds the lock.

    Example: */10 * * * * cd /srv/pmsync && pmsync run --quiet   (a crontab line)
    """
    from sync.engine import run_lock
    from sync.errors import EXIT_LOCKED, LockedError
    from sync.publish import error_lines, summary_lines
    from sync.publish import run as run_plan

    config = app.config
    try:
        with run_lock(app.db_path):
            outcome = run_plan(config, app.store(), sync=not no_sync)
    except LockedError:
        if quiet:  # the run holding the lock is doing the work: nothing for cron to mail
            sys.exit(EXIT_LOCKED)
        raise
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), indent=2, default=str))
    elif not (quiet and outcome.ok):
        for line in summary_lines(outcome):
            click.echo(line)
    for line in error_lines(outcome):
        click.echo(f"error: {line}", err=True)
    if not outcome.ok:
        sys.exit(EXIT_FAILED)


# -- demo -----------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the demo config, store and reports (default: ./pmsync-demo).",
)
@handle_errors
def demo(workdir: Path | None) -> None:
    """Run the whole pipeline on bundled sample data (no credentials needed).

    Example: pmsync demo --dir /tmp/demo
    """
    from sync.demo import run_demo

    workdir = workdir or Path("pmsync-demo")
    outcome = run_demo(workdir)
    print_results(outcome.results, as_json=False)
    for line in outcome.lines:
        click.echo(line)


# -- helpers --------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Format rows as a plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    cli()  # standalone: click exits with the command's code (and turns Ctrl-C into "Aborted!")


if __name__ == "__main__":
    main()

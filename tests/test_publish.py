"""Publishing: target identity, content hashes, idempotency, update in place, dry-run.

`MemoConnector` is a tool without network: it reads items from a list and publishes into an
in-memory remote that edits in place and can be told to fail. Other test files reuse it
through `install_memo`.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

import connectors
from config.loader import parse_config
from config.schema import Config
from connectors.base import Connector, Publication, PublishTarget, SourceSettings
from sync.errors import ConfigError, PublishError
from sync.model import RemoteRef, StatusCategory, WorkItem
from sync.publish import (
    TargetSpec,
    content_hash,
    publish_project,
    resolve_period,
    select_targets,
    target_specs,
)
from sync.report import build_report
from sync.store import Store
from tests.conftest import make_item

TOKEN = "memo-s3cret-token-value"
# Monday 2026-11-09 10:00 UTC: the 09:00 Berlin slot has passed; its period is Nov 2..8.
NOW = datetime(2026, 11, 9, 10, 0, tzinfo=UTC)
PERIOD = "2026-11-02..2026-11-08"


# -- the in-memory tool -----------------------------------------------------------------------


@dataclass
class Remote:
    """The tool's side: posts by id, and counters of what it was asked to do."""

    posts: dict[str, str] = field(default_factory=dict)
    created: int = 0
    edited: int = 0
    fail: int = 0  # fail the next N publishes
    crash: bool = False  # raise an unexpected exception
    calls: list[str] = field(default_factory=list)


class MemoSettings(SourceSettings):
    kind: Literal["memo"] = "memo"
    token: SecretStr | None = None


class MemoTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread: str
    editable: bool = True


class MemoConnector(Connector):
    kind = "memo"
    Settings = MemoSettings
    Target = MemoTarget
    free_census = True
    items: ClassVar[list[WorkItem]] = []
    remote: ClassVar[Remote] = Remote()
    settings: MemoSettings

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        for item in self.items:
            yield item.model_copy(update={"source": self.name})

    def fetch_ids(self) -> Iterator[str]:
        return iter([i.id for i in self.items])

    def render(self, target: PublishTarget, report: Any) -> str:
        opts = MemoTarget.model_validate(target.options)
        p = report.progress
        return (
            f"[{opts.thread}] {report.project.name} {report.period_id} ({report.audience},"
            f" {report.language}): {p.done}/{p.total} done;"
            f" generated {report.generated_at.isoformat()}"
        )

    def publish(
        self, target: PublishTarget, report: Any, previous: Publication | None
    ) -> RemoteRef:
        r = self.remote
        opts = MemoTarget.model_validate(target.options)
        r.calls.append(opts.thread)
        if r.crash:
            raise KeyError("surprise")
        if r.fail > 0:
            r.fail -= 1
            token = self.settings.token.get_secret_value() if self.settings.token else ""
            raise PublishError(f"{self.name}: the tool answered 503 for token {token}; try later")
        body = self.render(target, report)
        if opts.editable and previous is not None and previous.remote_id in r.posts:
            r.posts[previous.remote_id] = body
            r.edited += 1
            return RemoteRef(
                id=previous.remote_id, url=f"memo://{opts.thread}/{previous.remote_id}"
            )
        rid = f"c{len(r.posts) + 1}"
        r.posts[rid] = body
        r.created += 1
        return RemoteRef(id=rid, url=f"memo://{opts.thread}/{rid}")


def install_memo(monkeypatch: pytest.MonkeyPatch, items: list[WorkItem] | None = None) -> Remote:
    """Register `memo` as a connector kind for this test; return its fresh remote."""
    eps = dict(connectors._entry_points())
    eps["memo"] = types.SimpleNamespace(load=lambda: MemoConnector)
    monkeypatch.setattr(connectors, "_entry_points", lambda: eps)
    connectors.connector_class.cache_clear()
    remote = Remote()
    monkeypatch.setattr(MemoConnector, "remote", remote)
    monkeypatch.setattr(MemoConnector, "items", list(items if items is not None else ITEMS))
    monkeypatch.setenv("MEMO_TOKEN", TOKEN)
    return remote


def demo_items() -> list[WorkItem]:
    done = StatusCategory.DONE
    at = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
    return [
        make_item(1, category=done, status="Done", completed_at=at, updated_at=at),
        make_item(2, category=done, status="Done", completed_at=at, updated_at=at),
        make_item(3, category=StatusCategory.IN_PROGRESS, status="Doing"),
        make_item(4),
        make_item(5, labels=["internal"]),
    ]


ITEMS = demo_items()


def memo_config(tmp_path: Path, publish: list[dict[str, Any]], **project: Any) -> Config:
    raw = {
        "sources": {"board": {"kind": "memo", "token": "${MEMO_TOKEN}"}},
        "projects": {
            "acme": {
                "name": "ACME Relaunch",
                "client": "ACME Corp",
                "sources": ["board"],
                "schedule": "0 9 * * MON",
                "timezone": "Europe/Berlin",
                "publish": publish,
                **project,
            }
        },
    }
    return parse_config(raw, label="t.toml", base_dir=tmp_path)


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    yield install_memo(monkeypatch)
    connectors.connector_class.cache_clear()


def synced(config: Config, now: datetime = NOW) -> Store:
    from sync.engine import run_sync

    store = Store.memory()
    assert all(r.ok for r in run_sync(config, store, now=now))
    return store


def publish(store: Store, config: Config, **kw: Any) -> list[Any]:
    kw.setdefault("start", date(2026, 11, 2))
    kw.setdefault("end", date(2026, 11, 8))
    kw.setdefault("now", NOW)
    return publish_project(store, config, "acme", **kw)


# -- targets ----------------------------------------------------------------------------------


def test_target_identity_is_to_then_to_hash_n_in_file_order(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(
        tmp_path,
        [
            {"to": "board", "thread": "a"},
            {"to": "file", "directory": "out"},
            {"to": "board", "thread": "b", "audience": "internal"},
            {"to": "file", "directory": "out2", "language": "zh-CN"},
        ],
    )
    specs = target_specs(config.projects["acme"])
    assert [(s.id, s.to, s.audience, s.language) for s in specs] == [
        ("board", "board", "client", None),
        ("file", "file", "client", None),
        ("board#2", "board", "internal", None),
        ("file#2", "file", "client", "zh-CN"),
    ]
    # The connector never sees pmsync's own options; a delivery does (its model has them).
    assert specs[2].for_publisher(config.sources).options == {"thread": "b"}
    assert specs[3].for_publisher(config.sources).options == {
        "directory": "out2",
        "language": "zh-CN",
    }
    assert [s.id for s in select_targets("acme", specs, ["board#2"])] == ["board#2"]
    assert [s.id for s in select_targets("acme", specs, ["file"])] == ["file", "file#2"]
    assert select_targets("acme", specs, []) == specs
    with pytest.raises(ConfigError, match=r"no publish target 'jira' \(targets: board, file"):
        select_targets("acme", specs, ["jira"])


def test_loader_checks_common_options_and_target_models(tmp_path: Path, memo: Remote) -> None:
    with pytest.raises(ConfigError) as err:
        memo_config(
            tmp_path,
            [
                {"to": "board", "thread": "a", "audience": "everyone"},
                {"to": "board", "threads": "a"},
                {"to": "email", "sender": "pm@agency.example", "smtp_host": "mail"},
                {"to": "fax"},
            ],
        )
    lines = str(err.value).splitlines()
    assert lines[0].startswith("t.toml: projects.acme.publish[0].audience: Input should be")
    assert "t.toml: projects.acme.publish[1].thread: field required" in lines
    assert "t.toml: projects.acme.publish[1].threads: unknown setting (check the spelling)" in lines
    assert "t.toml: projects.acme.publish[2].recipients: field required" in lines
    assert lines[-1] == (
        "t.toml: projects.acme.publish[3].to: unknown target 'fax' (known: board, email, file)"
    )


def test_literal_password_in_a_target_is_warned_about(
    tmp_path: Path, memo: Remote, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = {
        "to": "email",
        "recipients": ["client@acme.example"],
        "sender": "pm@agency.example",
        "smtp_host": "mail.agency.example",
        "username": "pm",
    }
    with caplog.at_level(logging.WARNING, logger="pmsync.config"):
        memo_config(tmp_path, [{**email, "password": "hunter2-literal"}])
    assert [r.getMessage() for r in caplog.records] == [
        "t.toml: projects.acme.publish[0].password: a secret is written in the file; use"
        ' password = "${ENV_VAR}" and keep it in the environment'
    ]
    assert "hunter2" not in caplog.text
    caplog.clear()
    monkeypatch.setenv("SMTP_PASSWORD", "from-env-secret")
    with caplog.at_level(logging.WARNING, logger="pmsync.config"):
        config = memo_config(tmp_path, [{**email, "password": "${SMTP_PASSWORD}"}])
    assert caplog.records == []
    assert "from-env-secret" in config.secrets


# -- content hash -----------------------------------------------------------------------------


def test_content_hash_ignores_run_times_but_not_content_or_options(
    tmp_path: Path, memo: Remote
) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "a"}])
    store = synced(config)
    spec = target_specs(config.projects["acme"])[0]
    kw = {"start": date(2026, 11, 2), "end": date(2026, 11, 8)}
    first = build_report(store, config, "acme", now=NOW, **kw)
    # Another sync an hour later changes `generated_at` and `last_synced_at` only.
    later = NOW + timedelta(hours=1)
    from sync.engine import run_sync

    run_sync(config, store, now=later)
    again = build_report(store, config, "acme", now=later, **kw)
    assert again.generated_at != first.generated_at
    assert content_hash(again, spec) == content_hash(first, spec)
    assert content_hash(first, spec).startswith("sha256:") and len(content_hash(first, spec)) == 71
    other = TargetSpec("board", PublishTarget(to="board", thread="b"), "client", None)
    assert content_hash(first, other) != content_hash(first, spec)
    MemoConnector.items = [*ITEMS, make_item(6, title="New work")]
    run_sync(config, store, now=later)
    changed = build_report(store, config, "acme", now=later, **kw)
    assert changed.progress.total == first.progress.total + 1
    assert content_hash(changed, spec) != content_hash(first, spec)


def test_content_hash_leaves_secrets_out(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "a"}])
    report = build_report(synced(config), config, "acme", now=NOW)
    a = TargetSpec("e", PublishTarget(to="email", user="x", password="one"), "client", None)
    b = TargetSpec("e", PublishTarget(to="email", user="x", password="two"), "client", None)
    assert content_hash(report, a) == content_hash(report, b)
    c = TargetSpec("e", PublishTarget(to="email", user="x", key="s1"), "client", None)
    d = TargetSpec("e", PublishTarget(to="email", user="x", key="s2"), "client", None)
    assert content_hash(report, c, ["s1", "s2"]) == content_hash(report, d, ["s1", "s2"])


# -- periods ----------------------------------------------------------------------------------


def test_resolve_period(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [])
    project = config.projects["acme"]
    assert resolve_period(project, None, NOW) == (date(2026, 11, 2), date(2026, 11, 8))
    assert resolve_period(project, "2026-10-01..2026-10-31", NOW) == (
        date(2026, 10, 1),
        date(2026, 10, 31),
    )
    assert resolve_period(project, "2w", NOW) == (date(2026, 10, 27), date(2026, 11, 9))
    unscheduled = project.model_copy(update={"schedule": None})
    assert resolve_period(unscheduled, None, NOW) == (date(2026, 11, 3), date(2026, 11, 9))
    with pytest.raises(ConfigError, match="starts after it ends"):
        resolve_period(project, "2026-10-31..2026-10-01", NOW)
    with pytest.raises(ConfigError, match="not a real date"):
        resolve_period(project, "2026-02-30..2026-03-01", NOW)
    with pytest.raises(ConfigError, match="cannot read period 'soon'"):
        resolve_period(project, "soon", NOW)


# -- publishing -------------------------------------------------------------------------------


def test_publish_records_then_skips_unchanged_then_updates_in_place(
    tmp_path: Path, memo: Remote
) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "status"}])
    store = synced(config)
    [first] = publish(store, config)
    assert (first.status, first.target, first.period, first.remote_id, first.url) == (
        "published",
        "board",
        PERIOD,
        "c1",
        "memo://status/c1",
    )
    body = f"[status] ACME Relaunch {PERIOD} (client, en): 2/4 done; generated {NOW.isoformat()}"
    assert memo.posts == {"c1": body}
    row = store.publication("acme", "board", PERIOD)
    assert row == {
        "project": "acme",
        "target": "board",
        "period": PERIOD,
        "remote_id": "c1",
        "content_hash": first.content_hash,
        "url": "memo://status/c1",
        "published_at": NOW,
    }
    # Unchanged: nothing is sent, even a day later; the row is confirmed.
    [second] = publish(store, config, now=NOW + timedelta(days=1))
    assert (second.status, second.remote_id) == ("unchanged", "c1")
    assert (memo.created, memo.edited, memo.calls) == (1, 0, ["status"])
    # Changed: the same post is edited in place.
    done = StatusCategory.DONE
    at = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
    MemoConnector.items = [
        *ITEMS[:3],
        make_item(4, category=done, status="Done", completed_at=at, updated_at=at),
        ITEMS[4],
    ]
    later = NOW + timedelta(days=1)
    from sync.engine import run_sync

    run_sync(config, store, now=later)
    [third] = publish(store, config, now=later)
    assert (third.status, third.remote_id) == ("updated", "c1")
    assert (memo.created, memo.edited) == (1, 1)
    assert list(memo.posts) == ["c1"] and "3/4 done" in memo.posts["c1"]
    assert store.publication("acme", "board", PERIOD)["content_hash"] == third.content_hash
    # A new period posts anew.
    [fourth] = publish(store, config, start=date(2026, 11, 9), end=date(2026, 11, 15), now=later)
    assert (fourth.status, fourth.remote_id, memo.created) == ("published", "c2", 2)


def test_a_target_that_cannot_edit_posts_anew_for_a_changed_report(
    tmp_path: Path, memo: Remote
) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s", "editable": False}])
    store = synced(config)
    assert publish(store, config)[0].remote_id == "c1"
    MemoConnector.items = [*ITEMS, make_item(9)]
    from sync.engine import run_sync

    run_sync(config, store, now=NOW)
    [again] = publish(store, config)
    assert (again.status, again.remote_id) == ("updated", "c2")
    assert store.publication("acme", "board", PERIOD)["remote_id"] == "c2"


def test_one_failing_target_does_not_stop_the_others_and_its_error_is_redacted(
    tmp_path: Path, memo: Remote
) -> None:
    config = memo_config(
        tmp_path,
        [{"to": "board", "thread": "one"}, {"to": "board", "thread": "two"}],
    )
    store = synced(config)
    memo.fail = 1
    first, second = publish(store, config)
    assert first.status == "failed"
    assert first.error == "board: the tool answered 503 for token ***; try later"
    assert TOKEN not in repr(first)
    assert second.status == "published"
    assert store.publication("acme", "board", PERIOD) is None
    assert store.publication("acme", "board#2", PERIOD)["remote_id"] == "c1"
    # The next attempt sends the failed one once, and nothing to the other.
    first, second = publish(store, config)
    assert (first.status, second.status) == ("published", "unchanged")
    assert memo.calls == ["one", "two", "one"]
    assert memo.created == 2


def test_an_unexpected_exception_fails_only_its_target(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(
        tmp_path, [{"to": "board", "thread": "one"}, {"to": "file", "directory": "o"}]
    )
    store = synced(config)
    memo.crash = True
    first, second = publish(store, config)
    assert (first.status, first.error) == ("failed", "board: unexpected KeyError: 'surprise'")
    assert second.status == "published"
    assert (tmp_path / "o" / "acme-2026-11-02_2026-11-08.html").is_file()


def test_a_report_that_cannot_be_built_fails_its_targets(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "one"}])
    store = synced(config)
    [result] = publish(store, config, start=date(2026, 11, 8), end=date(2026, 11, 2))
    assert result.status == "failed"
    assert "report period starts (2026-11-08) after it ends (2026-11-02)" in (result.error or "")
    assert memo.calls == []


def test_audience_and_language_build_one_report_each(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(
        tmp_path,
        [
            {"to": "board", "thread": "client"},
            {"to": "board", "thread": "team", "audience": "internal"},
            {"to": "board", "thread": "cn", "language": "zh-CN"},
        ],
    )
    store = synced(config)
    results = publish(store, config)
    assert [r.status for r in results] == ["published"] * 3
    # The internal audience sees the item labelled internal.
    assert memo.posts["c1"].startswith(f"[client] ACME Relaunch {PERIOD} (client, en): 2/4 done")
    assert memo.posts["c2"].startswith(f"[team] ACME Relaunch {PERIOD} (internal, en): 2/5 done")
    assert memo.posts["c3"].startswith(f"[cn] ACME Relaunch {PERIOD} (client, zh-CN): 2/4 done")


def test_dry_run_prints_exact_payloads_and_records_nothing(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(
        tmp_path,
        [{"to": "board", "thread": "s"}, {"to": "file", "directory": "out", "formats": ["md"]}],
    )
    store = synced(config)
    board, files = publish(store, config, dry_run=True)
    assert board.status == files.status == "dry-run"
    report = build_report(
        store, config, "acme", start=date(2026, 11, 2), end=date(2026, 11, 8), now=NOW
    )
    target = PublishTarget(to="board", thread="s")
    assert board.payload == MemoConnector("board", config.sources["board"]).render(target, report)
    from sync.render import to_markdown

    path = tmp_path / "out" / "acme-2026-11-02_2026-11-08.md"
    assert files.payload == f"==> {path} <==\n{to_markdown(report)}\n"
    assert memo.calls == [] and not (tmp_path / "out").exists()
    assert store.publications() == []
    # After a real publish, a dry run says nothing would be sent.
    publish(store, config)
    board, files = publish(store, config, dry_run=True)
    assert (board.status, board.payload, files.status, files.payload) == (
        "unchanged",
        None,
        "unchanged",
        None,
    )
    assert board.as_dict(payload=True)["payload"] is None
    assert "payload" not in board.as_dict()


def test_a_project_never_synced_is_not_published(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [{"to": "board", "thread": "s"}])
    store = Store.memory()
    [result] = publish(store, config)
    assert (result.status, result.error) == (
        "failed",
        "project 'acme' has no synced data yet (board); run `pmsync sync` first",
    )
    assert memo.calls == [] and store.publications() == []


def test_unknown_project_is_a_config_error(tmp_path: Path, memo: Remote) -> None:
    config = memo_config(tmp_path, [])
    with pytest.raises(ConfigError, match=r"unknown project 'nope' \(configured: acme\)"):
        publish_project(Store.memory(), config, "nope", start=NOW.date(), end=NOW.date())

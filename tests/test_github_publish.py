"""GitHub connector: publishing a report as a project status update or an issue comment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from config.schema import Config, ProjectSettings
from connectors.base import Publication, PublishTarget
from connectors.github import (
    BODY_LIMIT,
    GitHubConnector,
    GitHubSettings,
    GitHubTarget,
    fit_body,
    neutralise,
    render_body,
)
from sync.engine import sync_source
from sync.errors import PublishError
from sync.publish import publish_project
from sync.report import Report, build_report
from sync.store import Store
from tests.fakes.github import FakeGitHub
from tests.test_github import Board

TOKEN = "ghp_faketoken123"
NOW = datetime(2026, 11, 6, 12, 0, tzinfo=UTC)
START, END = date(2026, 10, 31), date(2026, 11, 6)
ZW = "\u200b"
HOSTILE = (
    "Ping @everyone and &#64;admin, &#x40;ops, &commat;sec, ＠boss, @acme/devs: see #1,"
    " acme/web#2, GH-3 and &#35;4 <script>alert(1)</script>"
)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 50.0

    def __call__(self, seconds: float) -> None:
        self.calls.append(round(seconds, 2))
        self.now += seconds

    def clock(self) -> float:
        return self.now


class Setup:
    """A synced board, its config and store; `report()` builds the period's report."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.board = Board(fake)
        fake.add_item(
            self.board.project,
            fake.add_issue("acme/web", HOSTILE, assignees=["@root"]),
            status="Done",
        )
        self.settings = GitHubSettings(
            project="acme/3", repo="acme/web", token=TOKEN, api_url=fake.url
        )
        self.config = Config(
            sources={"board": self.settings},
            projects={
                "acme": ProjectSettings(
                    name="ACME @everyone relaunch",
                    client="ACME Corp",
                    sources=["board"],
                    target_date=date(2026, 12, 31),
                    publish=[PublishTarget(to="board")],
                )
            },
        )
        self.store = Store.memory()
        result = sync_source(self.store, self.connector(), full=True, now=NOW)
        assert result.status == "ok", result.error
        self.sleeps = Sleeps()

    def connector(self) -> GitHubConnector:
        sleeps = getattr(self, "sleeps", None) or Sleeps()
        return GitHubConnector("board", self.settings, sleep=sleeps, clock=sleeps.clock)

    def report(self, **kw: Any) -> Report:
        return build_report(self.store, self.config, "acme", start=START, end=END, now=NOW, **kw)

    def updates(self) -> list[dict[str, Any]]:
        return self.fake.project("acme", 3)["_updates"]


@pytest.fixture
def setup() -> Iterator[Setup]:
    with FakeGitHub() as fake:
        yield Setup(fake)


STATUS = PublishTarget(to="board")


def previous(ref_id: str, report: Report) -> Publication:
    return Publication(
        project="acme",
        target="board",
        period=report.period_id,
        remote_id=ref_id,
        content_hash="sha256:old",
        published_at=NOW,
    )


# -- neutralising ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi @everyone", f"hi @{ZW}everyone"),
        ("cc @acme/devs", f"cc @{ZW}acme/devs"),
        (
            "&#64;admin &#064;x &#x40;ops &#X0040;y &commat;sec",
            f"@{ZW}admin @{ZW}x @{ZW}ops @{ZW}y @{ZW}sec",
        ),
        ("&#64admin", f"@{ZW}admin"),  # HTML decodes a numeric reference without ';' too
        ("＠boss ﹫pal", f"@{ZW}boss @{ZW}pal"),
        (
            "see #12, acme/web#3 and GH-4 or gh-5",
            f"see #{ZW}12, acme/web#{ZW}3 and GH-{ZW}4 or gh-{ZW}5",
        ),
        ("&#35;7 &#x23;8 &num;9 ＃10", f"#{ZW}7 #{ZW}8 #{ZW}9 #{ZW}10"),
        ("# Heading, C# and #hashtag stay", "# Heading, C# and #hashtag stay"),
        ("&#640; and &#x400; are other characters", "&#640; and &#x400; are other characters"),
        # Shown as the text "&#64;x": no mention, but "#64" could still link an issue.
        ("&amp;#64;x", f"&amp;#{ZW}64;x"),
    ],
)
def test_neutralise(text: str, expected: str) -> None:
    assert neutralise(text) == expected


def test_neutralise_is_idempotent() -> None:
    once = neutralise(HOSTILE)
    assert neutralise(once) == once
    assert not re.search(r"@\w|#\d|&#0*64|&#x0*40|&commat;|＠|GH-\d", once, re.IGNORECASE)


def test_fit_body_keeps_short_bodies_and_appends_the_marker() -> None:
    assert fit_body("hello", "<!-- m -->") == "hello\n\n<!-- m -->"


def test_fit_body_cuts_at_a_line_and_closes_an_open_fence() -> None:
    body = "intro\n```mermaid\n" + "\n".join(f"line {n}" for n in range(20000)) + "\n```\nend"
    out = fit_body(body, "<!-- pmsync:acme:p -->")
    assert len(out) <= BODY_LIMIT
    assert out.endswith("_(report shortened to fit GitHub's size limit)_\n\n<!-- pmsync:acme:p -->")
    assert out.count("```") % 2 == 0
    assert "\nline 5000\n" in out and "line 19999" not in out


def test_render_body_renders_shorter_lists_before_cutting(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows_seen: list[int | None] = []

    def long_markdown(report: Report, rows: int | None = None) -> str:
        rows_seen.append(rows)
        return "x" * (70_000 if rows is None or rows > 5 else 60_000)

    monkeypatch.setattr("connectors.github._to_markdown", long_markdown)
    body = render_body(setup.report())
    assert rows_seen == [None, 10, 5]
    assert body == "x" * 60_000 + "\n\n<!-- pmsync:acme:2026-10-31..2026-11-06 -->"


# -- status updates ----------------------------------------------------------------------------------


def test_status_update_is_created_then_updated_in_place(setup: Setup) -> None:
    c = setup.connector()
    report = setup.report()
    ref = c.publish(STATUS, report, None)
    assert ref.changed is True
    assert ref.url == "https://github.com/orgs/acme/projects/3"
    (update,) = setup.updates()
    assert update["id"] == ref.id
    assert update["body"] == c.render(STATUS, report)
    assert (update["status"], update["targetDate"], update["startDate"]) == (
        "OFF_TRACK",
        "2026-12-31",
        None,
    )
    assert update["body"].endswith("<!-- pmsync:acme:2026-10-31..2026-11-06 -->")
    assert "```mermaid\ngantt" in update["body"]

    changed = setup.report(health="at_risk", note="Waiting for the client's content")
    ref2 = setup.connector().publish(STATUS, changed, previous(ref.id, report))
    assert (ref2.id, ref2.changed) == (ref.id, True)
    (update,) = setup.updates()
    assert update["status"] == "AT_RISK"
    assert "Waiting for the client" in update["body"]
    assert setup.fake.mutations == [f"create {ref.id}", f"update {ref.id}"]


def test_a_lost_store_finds_the_update_of_the_period_by_its_marker(setup: Setup) -> None:
    report = setup.report()
    ref = setup.connector().publish(STATUS, report, None)
    same = setup.connector().publish(STATUS, report, None)
    assert (same.id, same.changed) == (ref.id, False)
    assert setup.fake.mutations == [f"create {ref.id}"]
    newer = setup.connector().publish(STATUS, setup.report(health="complete"), None)
    assert (newer.id, newer.changed) == (ref.id, True)
    assert setup.fake.mutations == [f"create {ref.id}", f"update {ref.id}"]
    assert [u["status"] for u in setup.updates()] == ["COMPLETE"]


def test_a_new_period_posts_a_new_update(setup: Setup) -> None:
    first = setup.connector().publish(STATUS, setup.report(), None)
    later = build_report(
        setup.store, setup.config, "acme", start=date(2026, 11, 7), end=date(2026, 11, 13), now=NOW
    )
    second = setup.connector().publish(STATUS, later, None)
    assert second.id != first.id
    assert [u["id"] for u in setup.updates()] == [second.id, first.id]  # newest first


def test_an_update_deleted_on_github_is_created_again(setup: Setup) -> None:
    report = setup.report()
    ref = setup.connector().publish(STATUS, report, None)
    setup.fake.project("acme", 3)["_updates"].clear()
    setup.fake.nodes.pop(ref.id)
    again = setup.connector().publish(STATUS, report, previous(ref.id, report))
    assert again.id != ref.id
    assert [u["id"] for u in setup.updates()] == [again.id]


def test_a_create_that_timed_out_after_being_applied_is_not_repeated(setup: Setup) -> None:
    setup.fake.lose_reply(contains="createProjectV2StatusUpdate")
    ref = setup.connector().publish(STATUS, setup.report(), None)
    (update,) = setup.updates()
    assert ref.id == update["id"]
    assert setup.fake.mutations == [f"create {ref.id}"]


def test_a_create_that_timed_out_before_being_applied_is_sent_again(setup: Setup) -> None:
    setup.fake.gateway_timeout(times=1)  # the first GraphQL call: the marker lookup
    setup.fake.faults.add("status", status=504, path="graphql", times=1)
    ref = setup.connector().publish(STATUS, setup.report(), None)
    assert [u["id"] for u in setup.updates()] == [ref.id]


def test_creates_that_keep_timing_out_fail_without_duplicates(setup: Setup) -> None:
    for _ in range(3):
        setup.fake.lose_reply(contains="createProjectV2StatusUpdate", status=504)
    # Applied once, then found by its marker: no second create.
    ref = setup.connector().publish(STATUS, setup.report(), None)
    assert len(setup.updates()) == 1 and setup.updates()[0]["id"] == ref.id
    setup.fake.scopes = {"read:project", "project"}


@pytest.mark.parametrize(
    ("health", "status"),
    [
        ("on_track", "ON_TRACK"),
        ("at_risk", "AT_RISK"),
        ("off_track", "OFF_TRACK"),
        ("complete", "COMPLETE"),
    ],
)
def test_health_becomes_the_status_update_status(setup: Setup, health: str, status: str) -> None:
    setup.connector().publish(STATUS, setup.report(health=health), None)
    assert [u["status"] for u in setup.updates()] == [status]


def test_hostile_titles_are_neutralised_in_the_pushed_body(setup: Setup) -> None:
    setup.connector().publish(STATUS, setup.report(), None)
    (update,) = setup.updates()
    body = update["body"]
    assert f"Ping @{ZW}everyone" in body
    assert f"ACME @{ZW}everyone relaunch" in body
    assert "<script>" not in body
    assert not re.search(r"@\w|(?<![\w&])#\d|&#0*64|&#x0*40|&commat;|＠|GH-\d", body)


def test_publishing_without_the_project_scope_says_so(setup: Setup) -> None:
    setup.fake.scopes = {"read:project"}
    with pytest.raises(PublishError) as err:
        setup.connector().publish(STATUS, setup.report(), None)
    assert str(err.value).startswith("board: createProjectV2StatusUpdate failed: Your token")
    assert str(err.value).endswith(
        "; grant the `project` scope (or Projects write permission) to the token"
    )


def test_a_repository_only_source_cannot_post_status_updates(setup: Setup) -> None:
    c = GitHubConnector("web", GitHubSettings(repo="acme/web", token=TOKEN, api_url=setup.fake.url))
    with pytest.raises(PublishError, match="a status update needs project = 'owner/number'"):
        c.publish(PublishTarget(to="web"), setup.report(), None)


# -- issue comments ----------------------------------------------------------------------------------


COMMENT = PublishTarget(to="board", issue=2)


def comments(setup: Setup) -> list[dict[str, Any]]:
    return list(setup.fake.repos["acme/web"]["_comments"].values())


def test_comment_is_created_then_patched(setup: Setup) -> None:
    report = setup.report()
    ref = setup.connector().publish(COMMENT, report, None)
    (comment,) = comments(setup)
    assert ref.id == str(comment["id"])
    assert ref.url == f"https://github.com/acme/web/issues/2#issuecomment-{comment['id']}"
    assert comment["body"] == setup.connector().render(COMMENT, report)
    assert not re.search(r"@\w|(?<![\w&])#\d", comment["body"])
    ref2 = setup.connector().publish(
        COMMENT, setup.report(health="complete"), previous(ref.id, report)
    )
    assert ref2.id == ref.id
    assert setup.fake.mutations == [f"POST comment {ref.id}", f"PATCH comment {ref.id}"]
    assert "Complete" in comments(setup)[0]["body"]


def test_comment_found_by_marker_when_the_store_was_lost(setup: Setup) -> None:
    report = setup.report()
    ref = setup.connector().publish(COMMENT, report, None)
    same = setup.connector().publish(COMMENT, report, None)
    assert (same.id, same.changed) == (ref.id, False)
    setup.connector().publish(COMMENT, setup.report(health="complete"), None)
    assert setup.fake.mutations == [f"POST comment {ref.id}", f"PATCH comment {ref.id}"]


def test_a_deleted_comment_is_posted_again(setup: Setup) -> None:
    report = setup.report()
    ref = setup.connector().publish(COMMENT, report, None)
    setup.fake.repos["acme/web"]["_comments"].clear()
    again = setup.connector().publish(COMMENT, report, previous(ref.id, report))
    assert again.id != ref.id
    assert len(comments(setup)) == 1


def test_a_comment_post_that_timed_out_after_being_applied_is_not_repeated(setup: Setup) -> None:
    setup.fake.lose_reply(path=r"/issues/2/comments$")
    ref = setup.connector().publish(COMMENT, setup.report(), None)
    (comment,) = comments(setup)
    assert ref.id == str(comment["id"])
    assert setup.fake.mutations == [f"POST comment {ref.id}"]


def test_comment_on_a_missing_issue_is_one_line(setup: Setup) -> None:
    with pytest.raises(PublishError) as err:
        setup.connector().publish(PublishTarget(to="board", issue=999), setup.report(), None)
    assert str(err.value) == (
        "board: issue acme/web#999 not found or locked (HTTP 404); check issue = N and the"
        " access of the token"
    )


def test_comment_target_needs_a_repository(setup: Setup) -> None:
    c = GitHubConnector(
        "board", GitHubSettings(project="acme/3", token=TOKEN, api_url=setup.fake.url)
    )
    with pytest.raises(PublishError, match=r"publishing to issue 2 needs repo = 'owner/name'"):
        c.publish(COMMENT, setup.report(), None)
    ref = c.publish(PublishTarget(to="board", issue=1, repo="acme/api"), setup.report(), None)
    assert ref.url is not None and ref.url.startswith("https://github.com/acme/api/issues/1#")


def test_target_options_are_validated() -> None:
    assert GitHubTarget.model_validate({"issue": 4, "audience": "internal"}).issue == 4
    with pytest.raises(ValidationError):
        GitHubTarget.model_validate({"isue": 4})
    with pytest.raises(ValidationError):
        GitHubTarget.model_validate({"issue": 0})


def test_writes_from_one_connector_are_a_second_apart(setup: Setup) -> None:
    c = setup.connector()
    report = setup.report()
    c.publish(STATUS, report, None)
    c.publish(COMMENT, report, None)
    assert setup.sleeps.calls == [1.0]  # the comment waits out the status update's second
    assert c.http.retries == 0


# -- through the publisher -------------------------------------------------------------------------


def test_publish_project_twice_then_after_a_change(setup: Setup) -> None:
    first = publish_project(setup.store, setup.config, "acme", start=START, end=END, now=NOW)
    assert [(r.status, r.error) for r in first] == [("published", None)]
    again = publish_project(setup.store, setup.config, "acme", start=START, end=END, now=NOW)
    assert [r.status for r in again] == ["unchanged"]
    setup.fake.tick(600)
    setup.fake.move(setup.board.refs["g"], "Done")
    sync_source(setup.store, setup.connector(), now=NOW)
    third = publish_project(setup.store, setup.config, "acme", start=START, end=END, now=NOW)
    assert [r.status for r in third] == ["updated"]
    (update,) = setup.updates()
    assert third[0].remote_id == first[0].remote_id == update["id"]
    assert len(setup.fake.mutations) == 2

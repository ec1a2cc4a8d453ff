"""Publishing reports as Jira comments: ADF on Cloud, wiki markup on Data Center, in place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.schema import Config, ProjectSettings
from connectors.base import PublishTarget
from connectors.jira import COMMENT_LIMIT, JiraConnector, JiraSettings, fit_wiki, wiki
from sync.engine import sync_source
from sync.publish import publish_project
from sync.report import build_report
from sync.store import Store
from tests.fakes.jira import FakeJira, adf_problem, make_issues

SOURCE = "acme-jira"
NOW = datetime.now(UTC)
END = NOW.date()
START = END - timedelta(days=6)
HOSTILE = (
    "<script>alert(1)</script> @everyone [~admin] {code}x{code} *bold* |cell| !img.png! (y)\u202e"
)


def make_config(fake: FakeJira, **target: Any) -> Config:
    settings = JiraSettings(
        kind="jira",
        url=fake.url,
        email=fake.email if fake.flavor == "cloud" else None,
        token=fake.token,
        jql="project = ACME",
    )
    return Config(
        sources={SOURCE: settings},
        projects={
            "acme": ProjectSettings(
                name="ACME relaunch",
                client="ACME Corp",
                sources=[SOURCE],
                target_date=END + timedelta(days=60),
                publish=[PublishTarget(to=SOURCE, issue="ACME-1", **target)],
            )
        },
    )


def synced(fake: FakeJira, config: Config) -> Store:
    store = Store.memory()
    conn = JiraConnector(SOURCE, config.sources[SOURCE])  # type: ignore[arg-type]
    result = sync_source(store, conn)
    assert result.status == "ok", result.error
    return store


def publish(store: Store, config: Config, **kw: Any) -> Any:
    (result,) = publish_project(store, config, "acme", start=START, end=END, now=NOW, **kw)
    assert result.ok, result.error
    return result


@pytest.fixture
def cloud() -> Iterator[FakeJira]:
    issues = make_issues(120, seed=12, end_ms=int(NOW.timestamp() * 1000) - 60_000, days=20)
    with FakeJira(issues) as fake:
        listed(fake, "ACME-2", HOSTILE)
        yield fake


def listed(fake: FakeJira, key: str, title: str) -> None:
    """Give `key` a title and put it in progress two hours before NOW (so the report lists it)."""
    fake.update(key, summary=title, status_id="3", at_ms=int(NOW.timestamp() * 1000) - 7_200_000)


def comment_calls(fake: FakeJira) -> list[tuple[str, str]]:
    out = [(r.method, r.path) for r in fake.log if "/comment" in r.path or "/properties/" in r.path]
    fake.log.clear()
    return out


def test_publish_creates_one_comment_then_updates_it_in_place(cloud: FakeJira) -> None:
    config = make_config(cloud)
    store = synced(cloud, config)
    cloud.log.clear()
    first = publish(store, config)
    assert first.status == "published"
    (comment,) = cloud.comments["ACME-1"]
    assert first.remote_id == comment["id"]
    assert first.url == f"{cloud.url}/browse/ACME-1?focusedCommentId={comment['id']}"
    assert adf_problem(comment["body"]) is None
    assert (
        len(json.dumps(comment["body"], ensure_ascii=False, separators=(",", ":"))) <= COMMENT_LIMIT
    )
    assert comment_calls(cloud) == [
        ("GET", "/rest/api/3/issue/ACME-1/properties/com.pmsync.status-report"),
        ("GET", "/rest/api/3/issue/ACME-1/comment"),
        ("POST", "/rest/api/3/issue/ACME-1/comment"),
        ("PUT", "/rest/api/3/issue/ACME-1/properties/com.pmsync.status-report"),
    ]
    slot = f"acme/{START.isoformat()}..{END.isoformat()}"
    mirror = cloud.issue("ACME-1").properties["com.pmsync.status-report"]
    assert mirror["reports"][slot]["commentId"] == comment["id"]
    assert cloud.comment_properties[comment["id"]]["com.pmsync.status-report"]["slot"] == slot
    text = json.dumps(comment["body"], ensure_ascii=False)
    assert "[~admin]" in text and "mention" not in text  # plain text, never a mention node

    # Same data: the orchestrator sends nothing.
    again = publish(store, config)
    assert again.status == "unchanged" and comment_calls(cloud) == []

    # The data changes: the same comment is edited, nothing new is posted.
    cloud.update("ACME-2", summary="Renamed in progress")
    sync_source(store, JiraConnector(SOURCE, config.sources[SOURCE]))  # type: ignore[arg-type]
    cloud.log.clear()
    updated = publish(store, config)
    assert updated.status == "updated" and updated.remote_id == comment["id"]
    assert len(cloud.comments["ACME-1"]) == 1
    assert comment_calls(cloud) == [
        ("GET", "/rest/api/3/issue/ACME-1/properties/com.pmsync.status-report"),
        ("PUT", f"/rest/api/3/issue/ACME-1/comment/{comment['id']}"),
        ("PUT", "/rest/api/3/issue/ACME-1/properties/com.pmsync.status-report"),
    ]
    assert cloud.comments["ACME-1"][0]["body"] != first  # edited in place


def test_a_lost_store_does_not_post_twice(cloud: FakeJira) -> None:
    config = make_config(cloud)
    first = publish(synced(cloud, config), config)
    cloud.log.clear()
    # A fresh store knows nothing of the comment: the issue property does.
    second = publish(synced(cloud, config), config)
    assert second.remote_id == first.remote_id
    assert second.status == "unchanged"  # same content hash in the property: nothing sent
    assert len(cloud.comments["ACME-1"]) == 1
    assert ("POST", "/rest/api/3/issue/ACME-1/comment") not in comment_calls(cloud)


def test_without_the_issue_property_the_comment_property_finds_the_comment(
    cloud: FakeJira,
) -> None:
    config = make_config(cloud)
    cloud.forbid_properties = True  # no Edit issues permission: the mirror cannot be written
    first = publish(synced(cloud, config), config)
    assert cloud.issue("ACME-1").properties == {}
    cloud.update("ACME-2", summary="Changed meanwhile")
    cloud.log.clear()
    second = publish(synced(cloud, config), config)
    assert second.remote_id == first.remote_id
    assert len(cloud.comments["ACME-1"]) == 1
    calls = comment_calls(cloud)
    assert ("POST", "/rest/api/3/comment/list") in calls
    assert ("PUT", f"/rest/api/3/issue/ACME-1/comment/{first.remote_id}") in calls


def test_a_deleted_comment_is_posted_again_and_a_new_period_gets_its_own(
    cloud: FakeJira,
) -> None:
    config = make_config(cloud)
    store = synced(cloud, config)
    first = publish(store, config)
    cloud.comments["ACME-1"].clear()  # someone deleted it
    cloud.update("ACME-2", summary="Changed")
    sync_source(store, JiraConnector(SOURCE, config.sources[SOURCE]))  # type: ignore[arg-type]
    again = publish(store, config)
    assert again.remote_id != first.remote_id and len(cloud.comments["ACME-1"]) == 1
    (later,) = publish_project(
        store, config, "acme", start=END + timedelta(days=1), end=END + timedelta(days=7), now=NOW
    )
    assert later.ok and later.status == "published"
    assert len(cloud.comments["ACME-1"]) == 2


def test_a_report_too_long_for_one_comment_is_cut_with_a_note() -> None:
    issues = make_issues(900, seed=13, end_ms=int(NOW.timestamp() * 1000) - 60_000, days=5)
    for issue in issues:
        issue.fields["summary"] = "Very long title " + "x" * 230
    with FakeJira(issues) as fake:
        config = make_config(fake)
        store = synced(fake, config)
        report = build_report(store, config, "acme", start=START, end=END, now=NOW)
        conn = JiraConnector(SOURCE, config.sources[SOURCE])  # type: ignore[arg-type]
        text = conn.render(PublishTarget(to=SOURCE, issue="ACME-1"), report)
        assert len(text) <= COMMENT_LIMIT
        publish(store, config)
        body = fake.comments["ACME-1"][0]["body"]
        assert adf_problem(body) is None
        assert "more" in json.dumps(body)  # lists say how many rows were left out


def test_the_fake_rejects_invalid_adf_like_jira(cloud: FakeJira) -> None:
    good = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
    }
    assert adf_problem(good) is None
    bad = [
        {**good, "version": 2},
        {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}],
        },
        {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "bulletList",
                    "content": [
                        {"type": "listItem", "content": [{"type": "text", "text": "bare"}]}
                    ],
                }
            ],
        },
        {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "table",
                    "content": [
                        {"type": "tableRow", "content": [{"type": "tableCell", "content": []}]}
                    ],
                }
            ],
        },
        {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [{"type": "text", "text": "a", "marks": [{"type": "link"}]}],
                }
            ],
        },
        "plain text",
    ]
    conn = JiraConnector(SOURCE, make_config(cloud).sources[SOURCE])  # type: ignore[arg-type]
    for body in bad:
        assert adf_problem(body) is not None
        response = conn.http.request(
            "POST", "rest/api/3/issue/ACME-1/comment", json={"body": body}, ok=(400,)
        )
        assert "Comment body is not valid" in response.json()["errors"]["comment"]
    huge = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "x" * 33000}]}],
    }
    response = conn.http.request(
        "POST", "rest/api/3/issue/ACME-1/comment", json={"body": huge}, ok=(400,)
    )
    assert "exceeds the allowed limit of 32767" in response.json()["errors"]["comment"]


def test_publish_errors_name_the_issue_and_what_to_check(cloud: FakeJira) -> None:
    config = make_config(cloud)
    store = synced(cloud, config)
    config.projects["acme"].publish[0] = PublishTarget(to=SOURCE, issue="ACME-999")
    (result,) = publish_project(store, config, "acme", start=START, end=END, now=NOW)
    assert result.status == "failed"
    assert result.error is not None and "issue ACME-999 not found (HTTP 404" in result.error
    config.projects["acme"].publish[0] = PublishTarget(to=SOURCE, issue="not a key")
    (result,) = publish_project(store, config, "acme", start=START, end=END, now=NOW)
    assert result.status == "failed" and "issue must be an issue key" in (result.error or "")


def test_dry_run_prints_the_adf_that_would_be_sent(cloud: FakeJira) -> None:
    config = make_config(cloud)
    store = synced(cloud, config)
    (result,) = publish_project(store, config, "acme", start=START, end=END, now=NOW, dry_run=True)
    assert result.status == "dry-run" and cloud.comments == {}
    assert adf_problem(json.loads(result.payload)) is None


# -- Data Center ------------------------------------------------------------------------------


def test_data_center_publishes_escaped_wiki_markup_and_edits_it(tmp_path: Any) -> None:
    issues = make_issues(
        60, seed=14, flavor="datacenter", end_ms=int(NOW.timestamp() * 1000) - 60_000, days=10
    )
    with FakeJira(issues, flavor="datacenter") as fake:
        listed(fake, "ACME-2", HOSTILE)
        config = make_config(fake)
        store = synced(fake, config)
        first = publish(store, config)
        (comment,) = fake.comments["ACME-1"]
        body = comment["body"]
        assert isinstance(body, str) and len(body) <= COMMENT_LIMIT
        assert body.startswith("h2. Status report: ACME relaunch")
        assert "\\[\\~admin\\]" in body and "[~admin]" not in body
        assert "\\{code\\}" in body and "\\|cell\\|" in body and "\\!img.png\\!" in body
        assert "\u202e" not in body
        assert first.url == f"{fake.url}/browse/ACME-1?focusedCommentId={comment['id']}"
        fake.update("ACME-2", summary="Changed on DC")
        sync_source(store, JiraConnector(SOURCE, config.sources[SOURCE]))  # type: ignore[arg-type]
        second = publish(store, config)
        assert second.status == "updated" and len(fake.comments["ACME-1"]) == 1
        assert second.remote_id == first.remote_id
        assert "Changed on DC" in fake.comments["ACME-1"][0]["body"]


def test_wiki_escaping_and_size() -> None:
    assert wiki("[~admin] {code} *b* _i_ -s- +u+ ^sup^ ~sub~ ??cite?? #1 !x! |c|") == (
        "\\[\\~admin\\] \\{code\\} \\*b\\* \\_i\\_ \\-s\\- \\+u\\+ \\^sup\\^ \\~sub\\~"
        " \\?\\?cite\\?\\? \\#1 \\!x\\! \\|c\\|"
    )
    assert wiki("ok (y) (!) :)") == "ok \\(y) \\(\\!) :)"
    assert wiki("line\nbreak\x00") == "line break"
    assert wiki("") == " "


def test_fit_wiki_cuts_at_a_line_with_a_note() -> None:
    issues = make_issues(700, seed=15, end_ms=int(NOW.timestamp() * 1000) - 60_000, days=5)
    for issue in issues:
        issue.fields["summary"] = "Long title " + "y" * 240
    with FakeJira(issues) as fake:
        config = make_config(fake)
        store = synced(fake, config)
        report = build_report(store, config, "acme", start=START, end=END, now=NOW)
        roomy = fit_wiki(report)
        assert len(roomy) <= COMMENT_LIMIT and "\\_and " in roomy.replace("_and ", "\\_and ")
        small = fit_wiki(report, limit=1200)
        assert len(small) <= 1200
        assert small.endswith(
            "The report is too long for one Jira comment and was cut here. Full report:"
        )
        assert fit_wiki(report) == roomy  # deterministic, so its content hash is stable

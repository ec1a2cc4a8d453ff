"""Redmine connector: mapping, paging under change, census, errors, text and publishing.

HTTP goes to `tests.fakes.redmine.FakeRedmine` (a threaded fake on 127.0.0.1) or to
`responses`; the real-server tests are in test_redmine_e2e.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import responses

from config.schema import Config, ProjectSettings
from connectors.base import Publication, PublishTarget
from connectors.redmine import (
    MAX_NOTE_BYTES,
    RedmineConnector,
    RedmineSettings,
    drop_mermaid,
    limit_size,
    neutralise,
    to_textile,
    tx,
)
from sync.engine import sync_source
from sync.errors import ConfigError, PublishError, SourceError
from sync.model import StatusCategory, WorkItem
from sync.render import to_markdown
from sync.report import Report, build_report
from sync.store import Store
from tests.fakes.redmine import KEY, FakeRedmine, fmt

HOSTILE = "<script>alert(1)</script> @admin #12 {{toc}} [[Secret]] r12 commit:abc *b* |x|"


@pytest.fixture
def fake() -> Iterator[FakeRedmine]:
    with FakeRedmine() as server:
        yield server  # type: ignore[misc]


def make(url: str, **kw: Any) -> RedmineConnector:
    settings = RedmineSettings(url=url, token=kw.pop("token", KEY), project="web", **kw)
    c = RedmineConnector("rm", settings)
    c.http.sleep = lambda s: None  # type: ignore[union-attr]
    return c


# -- settings and mapping -------------------------------------------------------------------


def test_settings_hide_the_token_and_check_the_url() -> None:
    s = RedmineSettings(url="https://rm.example/", token="secret-key", project="web")
    assert s.url == "https://rm.example"
    assert "secret-key" not in repr(s)
    assert s.in_progress_statuses == ["In Progress", "Feedback", "Resolved"]
    with pytest.raises(ValueError, match="not an http"):
        RedmineSettings(url="rm.example", token="k", project="web")


@pytest.mark.parametrize(
    ("status_id", "name", "closed", "category"),
    [
        (1, "New", False, StatusCategory.TODO),
        (2, "In Progress", False, StatusCategory.IN_PROGRESS),
        (3, "Resolved", False, StatusCategory.IN_PROGRESS),
        (4, "feedback", False, StatusCategory.IN_PROGRESS),  # names fold case
        (5, "Closed", True, StatusCategory.DONE),
        (6, "Rejected", True, StatusCategory.CANCELLED),
        (7, "Won't fix", True, StatusCategory.DONE),
        (8, "Waiting", False, StatusCategory.TODO),
    ],
)
def test_default_status_mapping(status_id: int, name: str, closed: bool, category: Any) -> None:
    c = make("http://rm.example")
    assert c.category(status_id, name, closed) == category


def test_status_lists_and_map_override_by_name_or_id() -> None:
    c = make(
        "http://rm.example",
        in_progress_statuses=[8],
        cancelled_statuses=["Won't fix"],
        status_map={"2": "todo", "closed": "cancelled"},
    )
    assert c.category(8, "Waiting", False) == StatusCategory.IN_PROGRESS
    assert c.category(3, "Resolved", False) == StatusCategory.TODO  # list replaced
    assert c.category(7, "Won't fix", True) == StatusCategory.CANCELLED
    assert c.category(2, "In Progress", False) == StatusCategory.TODO  # by id
    assert c.category(5, "Closed", True) == StatusCategory.CANCELLED  # by name


def test_issue_maps_to_work_item() -> None:
    c = make("http://rm.example", blocked_statuses=["Feedback"])
    issue = {
        "id": 42, "project": {"id": 1, "name": "Web"}, "tracker": {"id": 2, "name": "Feature"},
        "status": {"id": 4, "name": "Feedback", "is_closed": False},
        "priority": {"id": 4, "name": "Normal"}, "author": {"id": 5, "name": "A"},
        "assigned_to": {"id": 6, "name": "B"}, "fixed_version": {"id": 7, "name": "v1.2"},
        "parent": {"id": 40}, "category": {"id": 3, "name": "Backend"}, "subject": "Login",
        "start_date": "2024-05-01", "due_date": "2024-05-20", "done_ratio": 60,
        "is_private": True, "estimated_hours": 8.0, "created_on": "2024-04-30T08:00:00Z",
        "updated_on": "2024-05-10T09:12:00Z", "closed_on": "2024-05-01T10:00:00Z",
    }  # fmt: skip
    item = c.to_item(issue)
    assert item == WorkItem(
        source="rm", id="42", key="#42", url="http://rm.example/issues/42", title="Login",
        kind="feature", status="Feedback", category=StatusCategory.IN_PROGRESS, assignee="B",
        priority="Normal", labels=["Backend", "private"], parent_id="40", milestone_id="7",
        start_date=date(2024, 5, 1), due_date=date(2024, 5, 20),
        created_at=datetime(2024, 4, 30, 8, tzinfo=UTC),
        updated_at=datetime(2024, 5, 10, 9, 12, tzinfo=UTC),
        completed_at=None,  # closed_on of an earlier close survives the reopen
        estimate=8.0, progress=0.6, blocked=True, raw=issue,
    )  # fmt: skip
    bare = c.to_item({"id": 1, "subject": "x", "status": {"id": 5, "name": "Closed"},
                      "updated_on": "2024-05-10T09:12:00Z", "closed_on": "2024-05-10T09:12:00Z"})  # fmt: skip
    # No is_closed (Redmine < 5.0) and no status table yet: open. With the table: closed.
    assert bare.category == StatusCategory.TODO
    c._statuses = {"5": ("Closed", True)}
    closed = c.to_item(bare.raw)
    assert closed.category == StatusCategory.DONE
    assert closed.completed_at == datetime(2024, 5, 10, 9, 12, tzinfo=UTC)
    assert (closed.assignee, closed.milestone_id, closed.parent_id, closed.estimate) == (
        None, None, None, None)  # fmt: skip
    assert closed.kind == "issue" and closed.progress is None


# -- sync -----------------------------------------------------------------------------------


def test_incremental_request_has_every_filter_in_utc(fake: FakeRedmine) -> None:
    fake.add(1)
    c = make(fake.url, subprojects=False)
    since = datetime(2026, 11, 2, 10, 30, 15, 900_000, tzinfo=UTC).astimezone(
        ZoneInfo("Asia/Shanghai")
    )
    list(c.fetch_items(since))
    (req,) = fake.requests_to(r"^/issues\.json$")
    assert req.query == {
        "project_id": ["1"], "status_id": ["*"], "subproject_id": ["!*"],
        "sort": ["updated_on,id"], "limit": ["100"], "offset": ["0"],
        "updated_on": [">=2026-11-02T10:30:15Z"],
    }  # fmt: skip
    assert req.headers["x-redmine-api-key"] == KEY
    # Who we are is checked first: a wrong key is otherwise served as anonymous.
    assert fake.log[0].path == "/users/current.json"


def test_full_sync_pages_and_store_matches(fake: FakeRedmine) -> None:
    for n in range(1, 251):
        fake.add(n, status=1 + n % 6, done_ratio=n % 100, estimated_hours=n / 2)
    store = Store.memory()
    result = sync_source(store, make(fake.url), full=True)
    assert result.ok, result.error
    assert result.new == 250
    items = {i.id: i for i in store.items(["rm"])}
    assert set(items) == {str(n) for n in range(1, 251)}
    assert items["7"].status == "In Progress" and items["7"].progress == 0.07
    assert items["10"].category == StatusCategory.DONE  # closed issues are not lost
    assert items["11"].category == StatusCategory.CANCELLED
    # 250 issues, pages of 100 overlapping by one: offsets 0, 99, 198.
    offsets = [r.arg("offset") for r in fake.requests_to(r"^/issues\.json$")]
    assert offsets == ["0", "99", "198"]


def naive_offsets(fake: FakeRedmine, limit: int) -> set[int]:
    """Plain offset paging (what the connector must not do), for comparison."""
    import requests

    got: set[int] = set()
    offset = 0
    while True:
        page = requests.get(
            f"{fake.url}/issues.json",
            params={"status_id": "*", "sort": "updated_on,id", "limit": limit, "offset": offset},
            headers={"X-Redmine-API-Key": KEY},
            timeout=5,
        ).json()["issues"]
        got |= {i["id"] for i in page}
        if len(page) < limit:
            return got
        offset += limit


def shifting(fake: FakeRedmine, after_pages: tuple[int, ...]) -> list[int]:
    """Between pages, update the first issue of the page and delete its second."""
    calls = {"n": 0}
    touched: list[int] = []

    def on_list(request: Any, page: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] in after_pages and len(page) > 2:
            fake.change(page[0]["id"], done_ratio=70)
            fake.delete(page[1]["id"])
            touched.append(page[0]["id"])

    fake.on_list = on_list
    return touched


def test_naive_offset_paging_skips_issues_when_the_list_shifts(fake: FakeRedmine) -> None:
    for n in range(1, 61):
        fake.add(n)
    shifting(fake, after_pages=(1,))
    got = naive_offsets(fake, limit=10)
    missed = set(fake.issues) - got
    assert missed == {11, 12}  # the proof that the scenario below is a real hazard


def test_paging_skips_nothing_when_issues_change_between_pages(fake: FakeRedmine) -> None:
    for n in range(1, 61):
        fake.add(n)
    touched = shifting(fake, after_pages=(1, 3, 4))
    c = make(fake.url, page_size=10)
    items = list(c.fetch_items(None))
    got = [int(i.id) for i in items]
    assert set(fake.issues) <= set(got)
    # The changes after pages 1 and 3 shift the list; those after page 4 land on a page that
    # the shift already threw away (it is re-read from the last timestamp).
    assert c.restarts == 2
    for n in touched:
        assert [i.progress for i in items if int(i.id) == n][-1] == 0.7
    stamps = [i.updated_at for i in items]
    assert stamps == sorted(stamps)
    assert any("re-read" in note for note in c.notes)


def test_paging_survives_more_than_a_page_of_issues_in_one_second(fake: FakeRedmine) -> None:
    for n in range(1, 131):
        fake.add(n)
        fake.clock -= timedelta(seconds=0.1) - timedelta(microseconds=1)  # all in one second
    assert len({fmt(t) for t in fake.updated.values()}) == 1
    shifting(fake, after_pages=(2,))
    c = make(fake.url, page_size=25)
    got = {int(i.id) for i in c.fetch_items(None)}
    assert set(fake.issues) <= got
    assert c.restarts == 1


def test_paging_gives_up_when_the_list_never_settles(fake: FakeRedmine) -> None:
    for n in range(1, 31):
        fake.add(n)

    def churn(request: Any, page: list[dict[str, Any]]) -> None:
        if page:
            fake.change(page[0]["id"])
            fake.change(page[1]["id"])

    fake.on_list = churn
    c = make(fake.url, page_size=5)
    c.max_restarts = 4
    with pytest.raises(SourceError) as err:
        list(c.fetch_items(None))
    assert (
        str(err.value) == "rm: issues kept changing during the sync (4 restarts); try again later"
    )


def test_census_pages_by_id_and_ignores_deletions_behind_it(fake: FakeRedmine) -> None:
    for n in range(1, 206):
        fake.add(n)
    calls = {"n": 0}

    def delete_behind(request: Any, page: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            fake.delete(3)  # already counted: keyset paging by id does not shift

    fake.on_list = delete_behind
    ids = list(make(fake.url).fetch_ids())
    assert ids == [str(n) for n in range(1, 206)]
    lows = [r.arg("issue_id") for r in fake.requests_to(r"^/issues\.json$")]
    assert lows == [None, ">=101", ">=201"]
    assert all(r.arg("sort") == "id" for r in fake.requests_to(r"^/issues\.json$"))


def test_engine_census_tombstones_deleted_issues(fake: FakeRedmine) -> None:
    for n in range(1, 11):
        fake.add(n)
    store = Store.memory()
    assert sync_source(store, make(fake.url), full=True).ok
    fake.delete(4)
    fake.change(5, status=5)
    result = sync_source(store, make(fake.url), census_every=timedelta(0))
    assert result.ok and result.tombstoned == 1
    live = {i.id: i for i in store.items(["rm"])}
    assert "4" not in live and live["5"].category == StatusCategory.DONE


def test_history_builds_transitions_from_journals(fake: FakeRedmine) -> None:
    fake.add(1)
    fake.change(1, status=2)
    fake.change(1, status=5)
    fake.add(2, status=3)
    c = make(fake.url, history=True)
    items = {i.id: i for i in c.fetch_items(None)}
    moves = [(t.from_status, t.to_status, t.to_category) for t in items["1"].transitions]
    assert moves == [
        (None, "New", StatusCategory.TODO),
        ("New", "In Progress", StatusCategory.IN_PROGRESS),
        ("In Progress", "Closed", StatusCategory.DONE),
    ]
    assert [(t.from_status, t.to_status) for t in items["2"].transitions] == [(None, "Resolved")]
    assert items["1"].transitions[2].at == datetime.fromisoformat(
        fake.issues[1]["closed_on"].replace("Z", "+00:00"))  # fmt: skip
    assert "read the journals of 2 issues (2 requests)" in c.notes


def test_versions_of_project_and_subprojects_are_milestones(fake: FakeRedmine) -> None:
    fake.projects.append({"id": 2, "name": "Sub", "identifier": "web-sub", "parent": {"id": 1}})
    fake.versions[1] = [{"id": 7, "name": "1.0", "status": "closed", "due_date": "2026-10-01"}]
    fake.versions[2] = [
        {"id": 9, "name": "Sub 1", "status": "open", "due_date": None},
        {"id": 7, "name": "1.0", "status": "closed", "due_date": "2026-10-01"},  # shared
    ]
    fake.projects.append({"id": 3, "name": "Other", "identifier": "other"})  # not a child
    ms = make(fake.url).fetch_milestones()
    assert [(m.id, m.name, m.state, m.due_date) for m in ms] == [
        ("7", "1.0", "closed", date(2026, 10, 1)), ("9", "Sub 1", "open", None)]  # fmt: skip
    assert ms[0].url == f"{fake.url}/versions/7"
    assert [m.id for m in make(fake.url, subprojects=False).fetch_milestones()] == ["7"]


# -- errors ---------------------------------------------------------------------------------


def test_wrong_key_is_one_line_naming_the_token(fake: FakeRedmine) -> None:
    c = make(fake.url, token="wrong-key-123")
    with pytest.raises(SourceError) as err:
        list(c.fetch_items(None))
    msg = str(err.value)
    assert msg == (
        "rm: HTTP 401 on the current user: the API key was refused: check `token`"
        " (My account → API access key)"
    )
    assert "wrong-key-123" not in msg


def test_unknown_project_is_one_line(fake: FakeRedmine) -> None:
    c = RedmineConnector("rm", RedmineSettings(url=fake.url, token=KEY, project="nope"))
    with pytest.raises(SourceError) as err:
        c.check()
    assert str(err.value) == (
        "rm: HTTP 404 on project 'nope': not found: check `url` and `project` ('nope')"
    )
    assert make(fake.url).check() == f"admin on {fake.url}, project Web"


@responses.activate
def test_403_says_to_enable_the_rest_api() -> None:
    responses.get("http://rm.example/users/current.json", status=403, body="")
    with pytest.raises(SourceError, match=r"^rm: HTTP 403 on the current user: access denied: "
                       r"check that the REST API is enabled \(Administration"):  # fmt: skip
        make("http://rm.example").check()


@responses.activate
def test_truncated_json_and_retries() -> None:
    url = "http://rm.example"
    responses.get(f"{url}/users/current.json", json={"user": {"id": 1, "login": "a"}})
    responses.get(f"{url}/projects/web.json", json={"project": {"id": 1, "name": "Web"}})
    responses.get(f"{url}/issue_statuses.json", json={"issue_statuses": []})
    responses.get(f"{url}/issues.json", status=503, headers={"Retry-After": "0"})
    responses.get(f"{url}/issues.json", body='{"issues": [{"id": 1,')
    c = make(url)
    with pytest.raises(SourceError, match="invalid or truncated JSON"):
        list(c.fetch_items(None))
    assert c.http.retries == 1  # type: ignore[union-attr]


@responses.activate
def test_list_without_issues_is_a_clear_error() -> None:
    url = "http://rm.example"
    responses.get(f"{url}/users/current.json", json={"user": {"id": 1, "login": "a"}})
    responses.get(f"{url}/projects/web.json", json={"project": {"id": 1, "name": "Web"}})
    responses.get(f"{url}/issue_statuses.json", json={"issue_statuses": []})
    responses.get(f"{url}/issues.json", json={"error": "nope"})
    with pytest.raises(SourceError, match=r"unexpected answer from /issues\.json"):
        list(make(url).fetch_items(None))


# -- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ping @admin now", "ping @\u200badmin now"),
        ("see #12 and ##13 and #note-2", "see #\u200b12 and #\u200b#13 and #\u200bnote-2"),
        ("## Progress\n# 1 thing", "## Progress\n# 1 thing"),  # headings stay
        ("{{include(Secret)}} [[Wiki]]", "{\u200b{include(Secret)}} [\u200b[Wiki]]"),
        ("\\[\\[Wiki\\]\\] \\{\\{x", "\\[\u200b\\[Wiki\\]\\] \\{\u200b\\{x"),
        ("r12 (r3) x r4", "r\u200b12 (r\u200b3) x r\u200b4"),
        (
            "bar12 commit:abc source:x user#1",
            "bar12 commit\u200b:abc source\u200b:x user\u200b#\u200b1",
        ),
        ("https://rm.example/issues/1#note-3 @x", "https://rm.example/issues/1#note-3 @\u200bx"),
        ("&#35;12 stays an entity", "&#35;12 stays an entity"),
    ],
)
def test_neutralise(text: str, expected: str) -> None:
    assert neutralise(text) == expected


def test_tx_escapes_every_markup_character() -> None:
    assert tx('a <b> *c* @d #1 {{e}} |f| "g":h _i_ 50% ok.') == (
        "a &#60;b&#62; &#42;c&#42; &#64;d &#35;1 &#123;&#123;e&#125;&#125; &#124;f&#124;"
        " &#34;g&#34;&#58;h &#95;i&#95; 50&#37; ok."
    )
    assert tx("two\nlines  中文") == "two lines 中文"


def test_drop_mermaid_removes_the_block_and_its_heading() -> None:
    text = "# R\n\nx\n\n## Timeline\n\n```mermaid\ngantt\n    a :a, 2026-01-01, 1d\n```\n\n## Next\n\ny\n"
    assert drop_mermaid(text) == "# R\n\nx\n\n## Next\n\ny\n"
    assert drop_mermaid("```python\nx\n```") == "```python\nx\n```"


def test_limit_size_cuts_at_a_line() -> None:
    text = "\n".join(f"line {n} " + "x" * 90 for n in range(2000))
    cut = limit_size(text)
    assert len(cut.encode()) <= MAX_NOTE_BYTES
    assert cut.endswith("(truncated: the full report is too long for a Redmine note)\n")
    assert cut.split("\n\n(truncated")[0].split("\n")[-1].startswith("line ")
    assert limit_size("short") == "short"


NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def sample_report(name: str = "Web relaunch", hostile: str = HOSTILE) -> Report:
    """A real report (sync.report.build_report) over a few items with `hostile` titles."""
    store = Store.memory()
    cats = [StatusCategory.DONE, StatusCategory.IN_PROGRESS, StatusCategory.TODO,
            StatusCategory.CANCELLED]  # fmt: skip
    items = [
        WorkItem(
            source="rm", id=str(n), key=f"#{n}", url=f"http://rm.example/issues/{n}",
            title=f"Task {n} {hostile}", status=cats[n % 4].value, category=cats[n % 4],
            created_at=NOW - timedelta(days=30), updated_at=NOW - timedelta(days=n),
            completed_at=NOW - timedelta(days=n) if cats[n % 4] == StatusCategory.DONE else None,
            due_date=(NOW - timedelta(days=3 - n)).date(), assignee=f"Dev {hostile}",
        )
        for n in range(8)
    ]  # fmt: skip
    store.upsert_items(items)
    config = Config(
        sources={"rm": RedmineSettings(url="http://rm.example", token="k", project="web")},
        projects={"p": ProjectSettings(name=name, client=f"ACME {hostile}", sources=["rm"],
                                       start_date=date(2026, 10, 1),
                                       target_date=date(2026, 12, 31))},
    )  # fmt: skip
    return build_report(store, config, "p", now=NOW)


def test_textile_report_escapes_hostile_text() -> None:
    text = to_textile(sample_report())
    assert text.startswith("h2. Status report: Web relaunch\n")
    for raw in ("<script>", "@admin", "{{toc}}", "[[Secret]]", "*b*", "commit:abc", "|x|"):
        assert raw not in text
    assert not re.search(r"(?<!&)#\d", text)  # only entities such as &#35;
    assert "&#60;script&#62;alert&#40;1&#41;&#60;/script&#62;" in text
    assert '"&#35;1":http://rm.example/issues/1' in text  # item keys link to the issue
    assert "|_. Key |_. Title |_. Status |_. Due |_. Assignee |" in text
    assert "h3. Health" in text and "h3. Forecast" in text
    # Each table row is one line: a cell never breaks the table.
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows and all(line.endswith(" |") for line in rows)


def test_render_picks_the_format(fake: FakeRedmine) -> None:
    c = make(fake.url)
    report = sample_report()
    textile = c.render(PublishTarget(to="rm", issue=1), report)
    assert textile.startswith("h2. ")
    assert textile == neutralise(to_textile(report))
    md = c.render(PublishTarget(to="rm", issue="#1", format="markdown"), report)
    assert md == neutralise(drop_mermaid(to_markdown(report)))
    assert md.startswith("# Status report: Web relaunch")
    for raw in ("@admin", "{{toc}}", "\\[\\[Secret", " r12", "commit:abc"):
        assert raw not in md
    assert not re.search(r"(?<!&)#\d", md)
    # A markdown server (common_mark) gets Markdown without asking the target.
    md_source = make(fake.url, text_formatting="common_mark")
    assert md_source.render(PublishTarget(to="rm", issue=1), report) == md
    with pytest.raises(ConfigError, match="a Redmine target needs `issue = <number>`"):
        c.render(PublishTarget(to="rm"), report)


# -- publishing -----------------------------------------------------------------------------


def previous(ref_id: str) -> Publication:
    return Publication(project="p", target="rm", period="w", remote_id=ref_id,
                       content_hash="h", published_at=NOW)  # fmt: skip


def test_publish_adds_then_edits_then_skips(fake: FakeRedmine) -> None:
    fake.add(1)
    c = make(fake.url)
    target = PublishTarget(to="rm", issue=1)
    report = sample_report()
    ref = c.publish(target, report, None)
    assert [j["notes"] for j in fake.journals[1]] == [c.render(target, report)]
    jid = fake.journals[1][0]["id"]
    assert ref.id == str(jid) and ref.changed
    assert ref.url == f"{fake.url}/issues/1#change-{jid}"

    puts = len(fake.requests_to(r"\.json$", "PUT"))
    same = c.publish(target, report, previous(ref.id))
    assert same.id == ref.id and not same.changed
    assert len(fake.requests_to(r"\.json$", "PUT")) == puts  # nothing sent

    revised = sample_report(name="Web relaunch v2")
    edited = c.publish(target, revised, previous(ref.id))
    assert edited.id == ref.id and edited.changed
    assert len(fake.journals[1]) == 1
    assert fake.journals[1][0]["notes"].startswith("h2. Status report: Web relaunch v2")
    assert fake.requests_to(rf"^/journals/{jid}\.json$", "PUT")


def test_publish_without_a_record_does_not_repeat_the_last_note(fake: FakeRedmine) -> None:
    fake.add(1)
    c = make(fake.url)
    target = PublishTarget(to="rm", issue=1)
    first = c.publish(target, sample_report(), None)
    again = c.publish(target, sample_report(), None)
    assert again.id == first.id and not again.changed
    assert len(fake.journals[1]) == 1


def test_publish_adds_a_new_note_when_the_old_one_is_gone(fake: FakeRedmine) -> None:
    fake.add(1)
    c = make(fake.url)
    target = PublishTarget(to="rm", issue=1)
    ref = c.publish(target, sample_report(), previous("999"))
    assert ref.changed and ref.id == str(fake.journals[1][-1]["id"])


def test_publish_falls_back_to_a_new_note_when_editing_is_refused(fake: FakeRedmine) -> None:
    fake.add(1)
    c = make(fake.url)
    target = PublishTarget(to="rm", issue=1)
    ref = c.publish(target, sample_report(), None)
    fake.faults.add("status", path=r"^/journals/", status=403)
    new = c.publish(target, sample_report(name="Changed"), previous(ref.id))
    assert new.changed and new.id != ref.id
    assert len(fake.journals[1]) == 2
    assert any("could not edit note" in n for n in c.notes)


def test_publish_errors_are_one_line(fake: FakeRedmine) -> None:
    c = make(fake.url)
    with pytest.raises(PublishError) as err:
        c.publish(PublishTarget(to="rm", issue=77), sample_report(), None)
    assert str(err.value) == ("rm: HTTP 404 on issue #77: not found: check the target's issue #77")
    fake.add(1)
    fake.note_limit = 100
    with pytest.raises(PublishError, match=r"HTTP 422 on issue #1: Redmine rejected the "
                       r"request \(Notes is too long\)"):  # fmt: skip
        c.publish(PublishTarget(to="rm", issue=1), sample_report(), None)

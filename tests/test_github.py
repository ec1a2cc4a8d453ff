"""GitHub connector: board and repository sync against the fake GitHub (tests/fakes/github.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from graphql import parse
from pydantic import ValidationError

from connectors import connector_class
from connectors.github import (
    ALL_DOCUMENTS,
    BOARD_ITEMS_QUERY,
    GitHubConnector,
    GitHubSettings,
    graphql_url,
)
from sync.engine import sync_source
from sync.errors import SourceError
from sync.model import StatusCategory
from sync.store import Store
from tests.fakes.github import FakeGitHub, make_board, query_cost, validate_document

TOKEN = "ghp_faketoken123"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def connector(fake: FakeGitHub, **kw: Any) -> GitHubConnector:
    settings = GitHubSettings(**{"project": "acme/3", "token": TOKEN, "api_url": fake.url, **kw})
    return GitHubConnector("board", settings, sleep=lambda s: None)


class Board:
    """A hand-made board covering every item shape; `refs` names each item."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.project = fake.add_project(
            "acme",
            3,
            "Website relaunch",
            statuses=("Todo", "In Progress", "Blocked", "Done", "Waiting on client"),
        )
        self.beta = fake.add_milestone("acme/web", "Beta", "2026-12-01")
        web, api, p = "acme/web", "acme/api", self.project
        parent = fake.add_issue(web, "Epic: accounts")
        login = fake.add_issue(
            web, "Login page", labels=["bug"], assignees=["ana", "bo"], milestone=self.beta,
            parent=parent,
        )  # fmt: skip
        refs: dict[str, dict[str, Any]] = {}
        # Items are added ten minutes apart, so the 5-minute sync overlap re-reads few.
        add_item = fake.add_item

        def spaced(*args: Any, **kw: Any) -> dict[str, Any]:
            fake.tick(600)
            return add_item(*args, **kw)

        fake.add_item = spaced  # type: ignore[method-assign]
        # The sub-issue comes first on the board and its parent later: parent_id is resolved
        # at the end of the pass.
        refs["a"] = fake.add_item(
            p, login, status="In Progress", start="2026-11-01", target="2026-11-20", estimate=3,
            iteration=1,
        )  # fmt: skip
        refs["b"] = fake.add_item(p, fake.add_issue(web, "Open but in Done"), status="Done")
        refs["c"] = fake.add_item(
            p, fake.add_issue(web, "Closed done", state="CLOSED", reason="COMPLETED")
        )
        refs["d"] = fake.add_item(
            p, fake.add_issue(web, "Closed not planned", state="CLOSED", reason="NOT_PLANNED")
        )
        refs["e"] = fake.add_item(p, fake.add_issue(api, "Merged PR", pr=True, state="MERGED"))
        refs["f"] = fake.add_item(p, fake.add_issue(api, "Closed PR", pr=True, state="CLOSED"))
        refs["g"] = fake.add_item(p, fake.add_issue(api, "Open PR", pr=True))
        refs["h"] = fake.add_item(p, draft="Draft blocked", status="Blocked")
        refs["i"] = fake.add_item(p, draft="Draft plain", assignees=["chen"])
        refs["j"] = fake.add_item(
            p, fake.add_issue(web, "Archived todo"), status="Todo", archived=True
        )
        refs["k"] = fake.add_item(p, redacted=True)
        refs["parent"] = fake.add_item(p, parent)
        many = [f"label-{n:02d}" for n in range(25)]
        refs["labels"] = fake.add_item(p, fake.add_issue(web, "Many labels", labels=many))
        refs["custom"] = fake.add_item(
            p, fake.add_issue(web, "Waiting"), status="Waiting on client"
        )
        fake.add_item = add_item  # type: ignore[method-assign]
        self.refs = refs


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def board(fake: FakeGitHub) -> Board:
    return Board(fake)


def by_key(store: Store, source: str = "board") -> dict[str, Any]:
    return {i.title: i for i in store.items([source])}


# -- contract: documents and cost --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL_DOCUMENTS))
def test_every_document_validates_against_the_github_schema(name: str) -> None:
    assert validate_document(ALL_DOCUMENTS[name]) == []


def test_schema_validation_rejects_what_the_vendored_schema_lacks() -> None:
    doc = BOARD_ITEMS_QUERY.replace(
        "items(first: $first,", 'items(query: "updated:>@today-1d", first: $first,'
    )
    errors = validate_document(doc)
    assert errors == ["Unknown argument 'query' on field 'ProjectV2.items'."]


def test_fake_point_cost_follows_githubs_documented_example() -> None:
    # docs: repositories(100) -> issues(50) -> labels(60) = 1 + 100 + 5000 requests = 51 points
    doc = parse(
        "{ viewer { repositories(first: 100) { nodes { issues(first: 50) { nodes {"
        " labels(first: 60) { nodes { name } } } } } } } }"
    )
    assert query_cost(doc, {}) == (51, 100 + 5000 + 300000, [])


def test_board_page_costs_three_points_and_field_values_cost_nothing() -> None:
    variables = {"first": 100, "withMeta": True}
    # items 1 + draft assignees 100 + Assignable assignees 100 + Labelable labels 100 = 301
    assert query_cost(parse(BOARD_ITEMS_QUERY), variables)[0] == 3


def test_the_fake_refuses_what_github_refuses(fake: FakeGitHub) -> None:
    def post(query: str) -> dict[str, Any]:
        response = requests.post(
            fake.url + "/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 200
        return response.json()

    assert post("{ viewer { loginn } }") == {
        "errors": [{"message": "Cannot query field 'loginn' on type 'User'. Did you mean 'login'?"}]
    }
    fake.add_project("acme", 1)
    unbounded = '{ repositoryOwner(login: "acme") { ... on ProjectV2Owner { projectV2(number: 1) { items { totalCount } } } } }'
    assert post(unbounded)["errors"][0]["message"] == (
        "You must provide a `first` or `last` value to properly paginate the `items` connection."
    )
    too_many = unbounded.replace("items {", "items(first: 101) {")
    assert post(too_many)["errors"][0]["message"] == (
        "Requesting 101 records on the `items` connection exceeds the `first` limit of 100 records."
    )
    assert (
        requests.post(
            fake.url + "/graphql", json={"query": "{ viewer { login } }"}, timeout=10
        ).status_code
        == 401
    )


def test_graphql_url_for_github_ghes_and_local() -> None:
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com/api/graphql"
    assert graphql_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/graphql"


# -- settings ----------------------------------------------------------------------------------


def test_registered_under_its_kind() -> None:
    assert connector_class("github") is GitHubConnector


def test_settings_accept_board_urls_and_refuse_bad_forms() -> None:
    s = GitHubSettings(project="https://github.com/orgs/acme/projects/7/views/1", token=TOKEN)
    assert s.project == "acme/7"
    assert GitHubSettings(project="acme/7", token=TOKEN).api_url == "https://api.github.com"
    with pytest.raises(ValidationError, match="owner/number"):
        GitHubSettings(project="acme", token=TOKEN)
    with pytest.raises(ValidationError, match="owner/name"):
        GitHubSettings(repo="acme", token=TOKEN)
    with pytest.raises(ValidationError, match="set project"):
        GitHubSettings(token=TOKEN)
    with pytest.raises(ValidationError, match="token"):
        GitHubSettings(project="acme/7")


# -- board: full sync ----------------------------------------------------------------------------


def test_full_sync_maps_every_item_shape(fake: FakeGitHub, board: Board) -> None:
    store = Store.memory()
    result = sync_source(store, connector(fake), full=True, now=NOW)
    assert result.status == "ok", result.error
    assert (result.new, result.changed, result.tombstoned) == (13, 0, 0)
    assert result.requests == 2  # one page, plus the labels of the item with 25 labels
    items = by_key(store)
    assert set(items) == {
        "Login page", "Epic: accounts", "Open but in Done", "Closed done", "Closed not planned",
        "Merged PR", "Closed PR", "Open PR", "Draft blocked", "Draft plain", "Archived todo",
        "Many labels", "Waiting",
    }  # fmt: skip
    cat = {title: i.category for title, i in items.items()}
    assert cat == {
        "Login page": StatusCategory.IN_PROGRESS,
        "Epic: accounts": StatusCategory.TODO,
        "Open but in Done": StatusCategory.DONE,  # the board's Status wins
        "Closed done": StatusCategory.DONE,
        "Closed not planned": StatusCategory.CANCELLED,
        "Merged PR": StatusCategory.DONE,
        "Closed PR": StatusCategory.CANCELLED,
        "Open PR": StatusCategory.TODO,
        "Draft blocked": StatusCategory.IN_PROGRESS,
        "Draft plain": StatusCategory.TODO,
        "Archived todo": StatusCategory.TODO,
        "Many labels": StatusCategory.TODO,
        "Waiting": StatusCategory.IN_PROGRESS,  # unknown column on an open issue
    }
    a = items["Login page"]
    refs = board.refs
    assert a.id == refs["a"]["id"]
    assert a.key == "acme/web#2"
    assert a.url == "https://github.com/acme/web/issues/2"
    assert (a.kind, a.status, a.assignee, a.labels) == ("issue", "In Progress", "ana", ["bug"])
    assert (str(a.start_date), str(a.due_date), a.estimate) == ("2026-11-01", "2026-11-20", 3.0)
    assert a.milestone_id == board.beta["id"]
    assert a.parent_id == refs["parent"]["id"]
    epic = items["Epic: accounts"]
    assert (epic.kind, epic.progress, epic.parent_id) == ("epic", 0.0, None)
    assert items["Merged PR"].kind == "pull_request"
    assert items["Merged PR"].completed_at is not None
    draft = items["Draft blocked"]
    assert (draft.kind, draft.blocked, draft.status) == ("draft", True, "Blocked")
    assert draft.key == f"draft-{refs['h']['fullDatabaseId']}"
    assert draft.url == (
        f"https://github.com/orgs/acme/projects/3?pane=issue&itemId={refs['h']['fullDatabaseId']}"
    )
    assert items["Draft plain"].assignee == "chen"
    assert items["Many labels"].labels == [f"label-{n:02d}" for n in range(25)]
    assert items["Closed not planned"].status == "closed (not planned)"
    assert any("skipped 1 board items that are hidden" in n for n in result.notes)
    assert any("every run reads the whole board" in n for n in result.notes)
    milestones = {m.id: m for m in store.milestones(["board"])}
    assert milestones[board.beta["id"]].name == "Beta"
    assert str(milestones[board.beta["id"]].due_date) == "2026-12-01"
    sprints = {m.name: m for m in milestones.values() if m.name.startswith("Sprint")}
    assert sorted(sprints) == ["Sprint 1", "Sprint 2", "Sprint 3"]
    assert sprints["Sprint 1"].state == "closed"
    assert (str(sprints["Sprint 2"].start_date), str(sprints["Sprint 2"].due_date)) == (
        "2026-11-02",
        "2026-11-15",
    )
    raw = json.dumps([i.raw for i in store.items(["board"], with_raw=True)])
    assert TOKEN not in raw


def test_updated_at_is_the_later_of_item_and_content(fake: FakeGitHub, board: Board) -> None:
    store = Store.memory()
    fake.tick(3600)
    fake.move(board.refs["b"], "Todo")  # item only
    sync_source(store, connector(fake), full=True, now=NOW)
    b = by_key(store)["Open but in Done"]
    assert b.updated_at == datetime.fromisoformat(board.refs["b"]["updatedAt"])
    assert b.updated_at > datetime.fromisoformat(board.refs["b"]["content"]["updatedAt"])


# -- board: incremental --------------------------------------------------------------------------


def test_board_moves_and_closes_are_picked_up_by_the_next_sync(
    fake: FakeGitHub, board: Board
) -> None:
    store = Store.memory()
    sync_source(store, connector(fake), full=True, now=NOW)
    fake.tick(600)
    fake.move(board.refs["g"], "In Progress")  # bumps only the item
    plain = board.refs["custom"]["content"]
    fake.set_value(board.refs["custom"], "Status", None, touch=False)
    fake.close(plain, "NOT_PLANNED")  # bumps only the issue
    result = sync_source(store, connector(fake), now=NOW + timedelta(hours=1))
    assert result.status == "ok", result.error
    assert (result.mode, result.seen, result.changed, result.new) == ("incremental", 2, 2, 0)
    items = by_key(store)
    assert items["Open PR"].category is StatusCategory.IN_PROGRESS
    assert items["Waiting"].category is StatusCategory.CANCELLED
    moves = [(t.item_id, t.from_category, t.to_category) for t in store.transitions(["board"])]
    assert (board.refs["g"]["id"], StatusCategory.TODO, StatusCategory.IN_PROGRESS) in moves
    # Nothing changed since: a whole-board sweep re-reads the overlap, writes nothing.
    again = sync_source(store, connector(fake), now=NOW + timedelta(hours=2))
    assert (again.seen, again.changed, again.new, again.requests) == (2, 0, 0, 1)


def test_items_removed_from_the_board_are_tombstoned_by_the_free_census(
    fake: FakeGitHub, board: Board
) -> None:
    store = Store.memory()
    sync_source(store, connector(fake), full=True, now=NOW)
    fake.remove_item(board.refs["c"])
    result = sync_source(store, connector(fake), now=NOW + timedelta(hours=1))
    assert (result.tombstoned, result.requests) == (1, 1)  # no extra census request
    assert "Closed done" not in by_key(store)
    gone = [i for i in store.items(["board"], include_deleted=True) if i.title == "Closed done"]
    assert len(gone) == 1


def test_a_redacted_item_that_becomes_readable_is_fetched(fake: FakeGitHub, board: Board) -> None:
    store = Store.memory()
    sync_source(store, connector(fake), full=True, now=NOW)
    item = board.refs["k"]
    old = fake.add_issue("acme/secret", "Was hidden", updated="2026-01-01T00:00:00Z")
    item["content"], item["type"] = old, "ISSUE"  # access granted; nothing bumped
    result = sync_source(store, connector(fake), now=NOW + timedelta(hours=1))
    assert (result.new, result.status) == (1, "ok")
    assert by_key(store)["Was hidden"].key == "acme/secret#1"


def test_forbidden_content_skips_that_item_only(fake: FakeGitHub, board: Board) -> None:
    fake.forbid(board.refs["e"])
    store = Store.memory()
    result = sync_source(store, connector(fake), full=True, now=NOW)
    assert result.status == "ok", result.error
    assert "Merged PR" not in by_key(store)
    assert result.new == 12
    assert any("skipped 2 board items that are hidden" in n for n in result.notes)


def test_small_pages_are_followed_to_the_end(fake: FakeGitHub) -> None:
    make_board(95, seed=3, owner="acme", number=3, fake=fake)
    store = Store.memory()
    result = sync_source(store, connector(fake, page_size=10), full=True, now=NOW)
    project = fake.project("acme", 3)
    visible = [i for i in project["_items"] if i["type"] != "REDACTED"]
    assert result.status == "ok", result.error
    assert result.new == len(visible)
    assert {i.id for i in store.items(["board"])} == {i["id"] for i in visible}
    pages = [json.loads(r.body)["variables"]["first"] for r in fake.requests_to("graphql$")]
    assert pages == [10] * 10


def test_sweep_costs_at_most_ten_requests_and_thirty_points_per_thousand_items() -> None:
    fake = make_board(1000, seed=7, number=3)
    with fake:
        store = Store.memory()
        result = sync_source(store, connector(fake), full=True, now=NOW)
        assert result.status == "ok", result.error
        assert (fake.graphql_requests, fake.points) == (10, 30)
        c = connector(fake)
        assert sum(1 for _ in c.fetch_items(NOW)) == 0  # incremental: same sweep, same cost
        assert (fake.graphql_requests, fake.points, c.http.points) == (20, 60, 30)


def test_census_without_a_pass_reads_ids_only(fake: FakeGitHub, board: Board) -> None:
    c = connector(fake)
    assert c.free_census is False
    ids = list(c.fetch_ids() or ())
    expected = [i["id"] for i in board.project["_items"] if i["type"] != "REDACTED"]
    assert ids == expected
    assert (fake.graphql_requests, fake.points) == (1, 1)  # ids only: one point a page
    list(c.fetch_items(None))
    assert c.free_census is True
    assert list(c.fetch_ids() or ()) == expected
    assert fake.graphql_requests == 3  # the pass (+ the 25-label item), no census request


def test_user_owned_board(fake: FakeGitHub) -> None:
    fake.add_owner("octocat", "User")
    project = fake.add_project("octocat", 1, "Personal")
    fake.add_item(project, draft="Note to self", status="Done")
    c = GitHubConnector(
        "me",
        GitHubSettings(project="octocat/1", token=TOKEN, api_url=fake.url),
        sleep=lambda s: None,
    )
    (item,) = list(c.fetch_items(None))
    assert (item.title, item.category) == ("Note to self", StatusCategory.DONE)
    assert item.url is not None and item.url.startswith("https://github.com/users/octocat/")


def test_enterprise_server_urls(fake: FakeGitHub, board: Board) -> None:
    c = connector(fake, api_url=fake.url + "/api/v3")
    assert sum(1 for _ in c.fetch_items(None)) == 13
    assert [r.path for r in fake.log] == ["/api/graphql", "/api/graphql"]


def test_status_map_and_blocked_statuses_from_config(fake: FakeGitHub, board: Board) -> None:
    c = connector(
        fake, status_map={"waiting on client": "todo"}, blocked_statuses=["Waiting on client"]
    )
    items = {i.title: i for i in c.fetch_items(None)}
    assert (items["Waiting"].category, items["Waiting"].blocked) == (StatusCategory.TODO, True)


def test_check_names_the_viewer_board_and_missing_fields(fake: FakeGitHub, board: Board) -> None:
    c = connector(fake, estimate_field="Points")
    assert c.check() == (
        "pm-bot on board 'Website relaunch' (acme/3); fields not found (ignored): Points (number)"
    )


# -- board: not found ----------------------------------------------------------------------------


def test_wrong_board_number_is_one_clear_line(fake: FakeGitHub, board: Board) -> None:
    store = Store.memory()
    result = sync_source(store, connector(fake, project="acme/99"), full=True, now=NOW)
    assert result.status == "failed"
    assert result.error == (
        "board: Projects board acme/99 not found (Could not resolve to a ProjectV2 with the"
        " number 99.); check the owner login (organisation or user) and the board number, and"
        " grant read:project to the token"
    )
    assert "\n" not in result.error


def test_unknown_owner_is_one_clear_line(fake: FakeGitHub) -> None:
    with pytest.raises(
        SourceError, match=r"^board: Projects board nobody/3 not found \(no account 'nobody'\)"
    ):
        list(connector(fake, project="nobody/3").fetch_items(None))


# -- repository mode -----------------------------------------------------------------------------


def repo_connector(fake: FakeGitHub, **kw: Any) -> GitHubConnector:
    settings = GitHubSettings(**{"repo": "acme/web", "token": TOKEN, "api_url": fake.url, **kw})
    return GitHubConnector("web", settings, sleep=lambda s: None)


@pytest.fixture
def repo(fake: FakeGitHub) -> dict[str, Any]:
    fake.add_repo("acme/web")
    m = fake.add_milestone("acme/web", "v1", "2026-12-24")
    refs = {"m": m}
    for n in range(130):
        fake.tick(60)
        refs[f"i{n}"] = fake.add_issue(
            "acme/web",
            f"Issue {n}",
            pr=n % 10 == 0,
            state="OPEN" if n % 3 else ("MERGED" if n % 10 == 0 else "CLOSED"),
            reason="NOT_PLANNED" if n == 3 else None,
            labels=["in progress"] if n == 1 else ["blocked"] if n == 2 else [],
            milestone=m if n < 5 else None,
        )
    return refs


def test_repository_full_then_incremental_with_etag(fake: FakeGitHub, repo: dict[str, Any]) -> None:
    store = Store.memory()
    c = repo_connector(fake, status_map={"In Progress": "in_progress"})
    result = sync_source(store, c, full=True, now=NOW)
    assert result.status == "ok", result.error
    assert result.new == 130
    items = {i.key: i for i in store.items(["web"])}
    assert items["acme/web#1"].kind == "pull_request"
    assert items["acme/web#1"].category is StatusCategory.DONE  # merged
    assert items["acme/web#2"].category is StatusCategory.IN_PROGRESS  # label in status_map
    assert items["acme/web#3"].blocked is True
    assert items["acme/web#4"].category is StatusCategory.CANCELLED  # not planned
    assert items["acme/web#7"].category is StatusCategory.DONE
    assert items["acme/web#5"].milestone_id == repo["m"]["id"]
    assert items["acme/web#5"].id == repo["i4"]["id"]  # node ids, as GraphQL has them
    assert "secret body text" not in json.dumps(
        [i.raw for i in store.items(["web"], with_raw=True)]
    )
    assert [m.name for m in store.milestones(["web"])] == ["v1"]
    issue_pages = fake.requests_to(r"/repos/acme/web/issues$")
    assert len(issue_pages) == 2  # 130 items at 100 a page, by the link header
    assert issue_pages[0].query["sort"] == ["updated"]
    assert issue_pages[0].query["state"] == ["all"]
    assert "if-none-match" not in issue_pages[0].headers  # a full pass is never conditional

    fake.tick(600)
    fake.close(repo["i10"])
    state = store.cursor("web")["state"]
    c2 = repo_connector(fake)
    c2.state = dict(state)
    changed = list(
        c2.fetch_items(datetime.fromisoformat(repo["i10"]["updatedAt"]) - timedelta(minutes=5))
    )
    assert [i.key for i in changed] == ["acme/web#11"]
    assert fake.requests_to(r"/issues$")[-1].query["since"] == ["2026-11-02T11:15:01Z"]

    # Unchanged poll with the same window: 304, no quota.
    before = fake.rest_requests
    c3 = repo_connector(fake)
    c3.state = c2.state
    assert (
        list(
            c3.fetch_items(datetime.fromisoformat(repo["i10"]["updatedAt"]) - timedelta(minutes=5))
        )
        == []
    )
    assert fake.rest_requests == before
    assert any("unchanged (304" in n for n in c3.notes)


def test_repository_milestones_survive_a_304(fake: FakeGitHub, repo: dict[str, Any]) -> None:
    c = repo_connector(fake)
    assert [m.name for m in c.fetch_milestones()] == ["v1"]
    c2 = repo_connector(fake)
    c2.state = c.state
    assert [m.name for m in c2.fetch_milestones()] == ["v1"]
    assert fake.log[-1].headers.get("if-none-match")
    assert fake.rest_requests == 1


def test_repository_census_tombstones_deleted_issues(
    fake: FakeGitHub, repo: dict[str, Any]
) -> None:
    store = Store.memory()
    sync_source(store, repo_connector(fake), full=True, now=NOW)
    del fake.repos["acme/web"]["_issues"][7]
    result = sync_source(
        store, repo_connector(fake), now=NOW + timedelta(hours=1), census_every=timedelta(0)
    )
    assert result.status == "ok", result.error
    assert result.tombstoned == 1
    assert "acme/web#7" not in {i.key for i in store.items(["web"])}


def test_repository_not_found(fake: FakeGitHub) -> None:
    c = GitHubConnector(
        "web", GitHubSettings(repo="acme/nope", token=TOKEN, api_url=fake.url), sleep=lambda s: None
    )
    with pytest.raises(SourceError, match=r"^web: repository acme/nope not found: check repo"):
        list(c.fetch_items(None))


def test_repository_check(fake: FakeGitHub, repo: dict[str, Any]) -> None:
    assert repo_connector(fake).check() == "pm-bot on repository acme/web"

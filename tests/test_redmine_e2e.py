"""The Redmine connector against a real Redmine server (scripts/redmine-up.sh).

Each run seeds a fresh project (unique identifier) with about 200 issues in every status,
three versions, parents, dates and estimates through the REST API, then syncs it with the
engine and compares the store with what the server says. Skipped when no server is up,
except under CI (env CI set), where a missing server fails the run.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.base import Publication, PublishTarget
from connectors.redmine import RedmineConnector, RedmineSettings
from sync.engine import sync_source
from sync.errors import SourceError
from sync.model import StatusCategory
from sync.store import Store

pytestmark = pytest.mark.redmine

N_ISSUES = 200
# The default statuses of a fresh Redmine, and what the connector's defaults make of them.
EXPECTED_CATEGORY = {
    "New": StatusCategory.TODO,
    "In Progress": StatusCategory.IN_PROGRESS,
    "Resolved": StatusCategory.IN_PROGRESS,
    "Feedback": StatusCategory.IN_PROGRESS,
    "Closed": StatusCategory.DONE,
    "Rejected": StatusCategory.CANCELLED,
}
HOSTILE = "<script>alert(1)</script> @admin #1 {{toc}} [[Secret]] r12 commit:abc *bold*"


def _server() -> tuple[str, str] | None:
    url = os.environ.get("PMSYNC_REDMINE_URL")
    key = os.environ.get("PMSYNC_REDMINE_KEY")
    if not (url and key):
        env = Path(os.environ.get("REDMINE_STATE_DIR", "/tmp/pmsync-redmine")) / "env"
        if env.is_file():
            values = dict(
                line.split("=", 1) for line in env.read_text().splitlines() if "=" in line
            )
            url, key = values.get("PMSYNC_REDMINE_URL"), values.get("PMSYNC_REDMINE_KEY")
    if not (url and key):
        return None
    try:
        r = requests.get(
            f"{url}/users/current.json", headers={"X-Redmine-API-Key": key}, timeout=10
        )
    except requests.RequestException:
        return None
    return (url, key) if r.status_code == 200 else None


@dataclass
class Api:
    """A minimal admin client for seeding and reading back (independent of the connector)."""

    url: str
    key: str
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.headers["X-Redmine-API-Key"] = self.key

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        r = self.session.request(method, self.url + path, json=body, params=params, timeout=60)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:300]}"
        return r.json() if r.content.strip() else None

    def issues(self, project_id: int) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        offset = 0
        while True:
            page = self.call(
                "GET", "/issues.json", project_id=project_id, status_id="*", sort="id",
                limit=100, offset=offset,
            )  # fmt: skip
            out.update({i["id"]: i for i in page["issues"]})
            offset += 100
            if offset >= page["total_count"]:
                return out

    def journals(self, issue: int) -> list[dict[str, Any]]:
        return self.call("GET", f"/issues/{issue}.json", include="journals")["issue"]["journals"]


@dataclass
class Seeded:
    api: Api
    project_id: int
    identifier: str
    versions: dict[str, int]
    ids: list[int]
    seconds: float


@pytest.fixture(scope="module")
def redmine() -> Api:
    found = _server()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Redmine is not up: .ci/run must start it with scripts/redmine-up.sh")
        pytest.skip("no local Redmine: run scripts/redmine-up.sh (or deselect -m 'not redmine')")
    return Api(*found)


@pytest.fixture(scope="module")
def seeded(redmine: Api) -> Iterator[Seeded]:
    """A fresh project with N_ISSUES issues in all six statuses, versions, parents and dates."""
    started = time.monotonic()
    api = redmine
    ident = f"pmsync-e2e-{uuid.uuid4().hex[:10]}"
    project = api.call(
        "POST", "/projects.json",
        {"project": {"name": f"E2E {ident}", "identifier": ident, "tracker_ids": [1, 2, 3],
                     "enabled_module_names": ["issue_tracking"]}},
    )["project"]  # fmt: skip
    try:
        me = api.call("GET", "/users/current.json")["user"]["id"]
        api.call("POST", f"/projects/{ident}/memberships.json",
                 {"membership": {"user_id": me, "role_ids": [3]}})  # fmt: skip
        versions = {}
        version_states = {"1.0": ("2026-10-01", "closed"), "1.1": ("2026-12-15", "open"),
                          "2.0": (None, "locked")}  # fmt: skip
        for name, (due, _state) in version_states.items():
            v = api.call("POST", f"/projects/{ident}/versions.json",
                         {"version": {"name": name, "due_date": due}})["version"]  # fmt: skip
            versions[name] = v["id"]
        ids: list[int] = []
        statuses = [1, 2, 3, 4, 5, 6]
        for n in range(N_ISSUES):
            issue: dict[str, Any] = {
                "project_id": project["id"],
                "tracker_id": 1 + n % 3,
                "subject": f"Issue {n}" if n % 50 else f"Issue {n} {HOSTILE}",
                "priority_id": 1 + n % 4,
                "estimated_hours": (n % 8) + 0.5 if n % 5 else None,
                "done_ratio": (n % 11) * 10,
                "start_date": f"2026-{1 + n % 9:02d}-{1 + n % 27:02d}" if n % 4 else None,
                "due_date": f"2026-{3 + n % 9:02d}-{1 + n % 27:02d}" if n % 3 else None,
                "fixed_version_id": list(versions.values())[n % 4] if n % 4 < 3 else None,
                "assigned_to_id": me if n % 2 else None,
            }
            if n % 30 == 9:  # a child of an issue that stays New (a closed parent refuses it)
                issue["parent_issue_id"] = ids[n - 9]
            created = api.call("POST", "/issues.json", {"issue": issue})["issue"]
            ids.append(created["id"])
            status = statuses[n % 6]
            if status != 1:  # a new issue starts as New; admins may set any status after
                api.call("PUT", f"/issues/{created['id']}.json", {"issue": {"status_id": status}})
        # Issues cannot be assigned to a closed or locked version: change their state last.
        for name, (_due, state) in version_states.items():
            if state != "open":
                api.call("PUT", f"/versions/{versions[name]}.json", {"version": {"status": state}})
        seconds = time.monotonic() - started
        print(f"\nseeded {N_ISSUES} Redmine issues in {seconds:.1f}s")
        yield Seeded(api, project["id"], ident, versions, ids, seconds)
    finally:  # also when seeding failed half-way
        api.session.delete(f"{api.url}/projects/{ident}.json", timeout=120)


def connector(seeded: Seeded, **kw: Any) -> RedmineConnector:
    settings = RedmineSettings(
        url=seeded.api.url, token=seeded.api.key, project=seeded.identifier, **kw
    )
    return RedmineConnector("rm", settings)


def assert_store_matches_server(store: Store, seeded: Seeded) -> None:
    """Every live item equals the server's issue, field by field; nothing more, nothing less."""
    server = seeded.api.issues(seeded.project_id)
    stored = {int(i.id): i for i in store.items(["rm"])}
    assert sorted(stored) == sorted(server)
    for iid, issue in server.items():
        item = stored[iid]
        assert item.key == f"#{iid}"
        assert item.url == f"{seeded.api.url}/issues/{iid}"
        assert item.title == issue["subject"]
        assert item.status == issue["status"]["name"]
        assert item.category == EXPECTED_CATEGORY[issue["status"]["name"]]
        assert item.kind == issue["tracker"]["name"].lower()
        assert item.priority == issue["priority"]["name"]
        assert item.assignee == (issue.get("assigned_to") or {}).get("name")
        assert item.milestone_id == (
            str(issue["fixed_version"]["id"]) if "fixed_version" in issue else None
        )
        assert item.parent_id == (str(issue["parent"]["id"]) if "parent" in issue else None)
        assert item.estimate == issue.get("estimated_hours")
        assert item.progress == pytest.approx(issue["done_ratio"] / 100)
        assert (item.start_date and item.start_date.isoformat()) == issue.get("start_date")
        assert (item.due_date and item.due_date.isoformat()) == issue.get("due_date")
        assert item.updated_at is not None
        assert item.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ") == issue["updated_on"]
        closed = issue["status"]["is_closed"]
        assert (item.completed_at is not None) == closed
        if closed:
            assert item.completed_at.strftime("%Y-%m-%dT%H:%M:%SZ") == issue["closed_on"]


def test_full_sync_matches_server(seeded: Seeded) -> None:
    store = Store.memory()
    started = time.monotonic()
    result = sync_source(store, connector(seeded), full=True)
    seconds = time.monotonic() - started
    print(f"full sync of {N_ISSUES} issues: {seconds:.2f}s, {result.requests} requests")
    assert result.error is None and result.ok
    assert result.new == N_ISSUES
    assert_store_matches_server(store, seeded)
    # Six statuses seeded evenly: every category is present, closed issues included.
    counts: dict[StatusCategory, int] = {}
    for item in store.items(["rm"]):
        counts[item.category] = counts.get(item.category, 0) + 1
    assert counts == {
        StatusCategory.TODO: 34, StatusCategory.IN_PROGRESS: 100,
        StatusCategory.DONE: 33, StatusCategory.CANCELLED: 33,
    }  # fmt: skip
    # 200 issues in pages of 100 (one issue overlap): about 3 list requests plus set-up.
    assert result.requests <= 12


def test_versions_are_milestones(seeded: Seeded) -> None:
    c = connector(seeded)
    milestones = {m.name: m for m in c.fetch_milestones()}
    assert set(milestones) == {"1.0", "1.1", "2.0"}
    assert milestones["1.0"].state == "closed"
    assert milestones["1.0"].due_date.isoformat() == "2026-10-01"
    assert milestones["1.1"].state == "open"
    assert milestones["2.0"].state == "locked" and milestones["2.0"].due_date is None
    assert milestones["1.1"].id == str(seeded.versions["1.1"])
    assert milestones["1.1"].url == f"{seeded.api.url}/versions/{seeded.versions['1.1']}"


def test_incremental_sync_picks_up_status_changes_and_closures(seeded: Seeded) -> None:
    store = Store.memory()
    assert sync_source(store, connector(seeded), full=True).ok
    time.sleep(1.1)  # let the changes below land in a later second than the seed
    api = seeded.api
    changed = seeded.ids[10:20]
    for n, iid in enumerate(changed):
        status = (5, 6, 2)[n % 3]  # close, reject, start
        api.call("PUT", f"/issues/{iid}.json",
                 {"issue": {"status_id": status, "subject": f"Changed {iid}"}})  # fmt: skip
    result = sync_source(store, connector(seeded), overlap=timedelta(0))
    assert result.ok and result.mode == "incremental"
    assert result.changed >= len(changed)
    assert result.seen < N_ISSUES  # only the recent ones came back
    assert_store_matches_server(store, seeded)
    for n, iid in enumerate(changed):
        item = next(i for i in store.items(["rm"]) if i.id == str(iid))
        assert item.title == f"Changed {iid}"
        assert (
            item.category
            == (StatusCategory.DONE, StatusCategory.CANCELLED, StatusCategory.IN_PROGRESS)[n % 3]
        )


def test_census_tombstones_deleted_issues(seeded: Seeded) -> None:
    store = Store.memory()
    assert sync_source(store, connector(seeded), full=True).ok
    victims = [seeded.ids[-1], seeded.ids[-2]]
    for iid in victims:
        seeded.api.call("DELETE", f"/issues/{iid}.json")
        seeded.ids.remove(iid)
    c = connector(seeded)
    assert sorted(int(i) for i in c.fetch_ids()) == sorted(seeded.api.issues(seeded.project_id))
    result = sync_source(store, connector(seeded), census_every=timedelta(0))
    assert result.ok and result.tombstoned == 2
    gone = {int(i.id) for i in store.items(["rm"], include_deleted=True)} - {
        int(i.id) for i in store.items(["rm"])
    }
    assert gone == set(victims)
    assert_store_matches_server(store, seeded)


def test_paging_skips_nothing_while_issues_change_between_pages(seeded: Seeded) -> None:
    """Updates and a deletion of already-passed issues between page requests lose nothing."""
    api = seeded.api
    c = connector(seeded, page_size=20)
    original = c._issue_list
    pages: list[dict[str, Any]] = []
    touched: list[int] = []

    def listing(params: dict[str, Any]) -> list[dict[str, Any]]:
        pages.append(dict(params))
        issues = original(params)
        if len(pages) in (2, 4):  # after these pages, change issues already passed
            first, second = issues[0]["id"], issues[1]["id"]
            api.call("PUT", f"/issues/{first}.json", {"issue": {"done_ratio": 70}})
            api.call("DELETE", f"/issues/{second}.json")
            seeded.ids.remove(second)
            touched.append(first)
        return issues

    c._issue_list = listing  # type: ignore[method-assign]
    items = list(c.fetch_items(None))
    server = api.issues(seeded.project_id)
    got = {int(i.id) for i in items}
    assert set(server) <= got  # every live issue came through
    assert c.restarts >= 1  # the shift was noticed
    for iid in touched:  # and the updated ones came back with their new state
        latest = [i for i in items if int(i.id) == iid][-1]
        assert latest.progress == pytest.approx(0.7)
    updated = [i.updated_at for i in items]
    assert updated == sorted(updated)  # oldest first, as `ordered` promises


def test_history_reads_status_transitions_from_journals(seeded: Seeded) -> None:
    c = connector(seeded, history=True)
    # The oldest issues come first; reading six of them costs six journal requests.
    items = list(itertools.islice(c.fetch_items(None), 6))
    assert len(items) == 6
    names = {1: "New", 2: "In Progress", 3: "Resolved", 4: "Feedback", 5: "Closed", 6: "Rejected"}
    for item in items:
        n = seeded.ids.index(int(item.id))
        seeded_status = names[1 + n % 6]  # created New, then set once (see `seeded`)
        expected = [(None, "New", StatusCategory.TODO)]
        if seeded_status != "New":
            expected.append(("New", seeded_status, EXPECTED_CATEGORY[seeded_status]))
        assert item.transitions is not None
        assert [(t.from_status, t.to_status, t.to_category) for t in item.transitions] == expected
        assert item.transitions[0].at == item.created_at
        if item.completed_at is not None:
            assert item.transitions[-1].at == item.completed_at
    # user, project, statuses, one list page, then one journal request per issue
    assert c.http is not None and c.http.requests == 4 + 6


def test_publish_adds_note_edits_it_and_never_repeats_it(seeded: Seeded) -> None:
    api = seeded.api
    c = connector(seeded)
    target = PublishTarget(to="rm", issue=seeded.ids[0])
    before = len(api.journals(seeded.ids[0]))
    report = _fake_report("Week 47", HOSTILE)
    ref = c.publish(target, report, None)
    journals = api.journals(seeded.ids[0])
    assert len(journals) == before + 1
    note = journals[-1]
    assert str(note["id"]) == ref.id and ref.changed
    assert ref.url == f"{api.url}/issues/{seeded.ids[0]}#change-{note['id']}"
    assert note["notes"].replace("\r\n", "\n") == c.render(target, report)
    assert "Week 47" in note["notes"]
    # Hostile text is neutralised: no mention, no issue link, no macro, no script tag.
    assert "@admin" not in note["notes"] and "{{toc}}" not in note["notes"]
    assert "<script>" not in note["notes"]
    html = requests.get(f"{api.url}/issues/{seeded.ids[0]}", timeout=30).text
    assert 'class="user active user-mention"' not in html
    assert "<script>alert(1)</script>" not in html

    previous = Publication(project="p", target="rm", period="w47", remote_id=ref.id,
                           content_hash="x", published_at=note["created_on"])  # fmt: skip
    again = c.publish(target, report, previous)
    assert again.id == ref.id and not again.changed
    assert len(api.journals(seeded.ids[0])) == before + 1  # no new note
    # Without the publications row (lost store) the identical note is still not repeated.
    assert not c.publish(target, report, None).changed
    assert len(api.journals(seeded.ids[0])) == before + 1

    changed = c.publish(target, _fake_report("Week 47 (revised)", "ok"), previous)
    journals = api.journals(seeded.ids[0])
    assert len(journals) == before + 1  # edited in place (Redmine >= 5.0)
    assert changed.id == ref.id and changed.changed
    assert "Week 47 &#40;revised&#41;" in journals[-1]["notes"]


def test_wrong_key_fails_with_one_line(seeded: Seeded) -> None:
    settings = RedmineSettings(url=seeded.api.url, token="0" * 40, project=seeded.identifier)
    c = RedmineConnector("rm", settings)
    with pytest.raises(SourceError) as err:
        list(c.fetch_items(None))
    message = str(err.value)
    assert message.startswith("rm: HTTP 401") and "token" in message and "\n" not in message
    missing = connector(seeded)
    missing.settings.project = "no-such-project"
    with pytest.raises(SourceError, match="HTTP 404 on project 'no-such-project'"):
        missing.check()


def _fake_report(title: str, text: str) -> Any:
    from tests.test_redmine import sample_report

    return sample_report(title, text)

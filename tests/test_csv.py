"""connectors/csv.py: the plain layout, the Jira preset, [columns], encodings, bad rows, census."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.csv import CsvConnector, CsvSettings
from sync.engine import sync_source
from sync.errors import SourceError
from sync.model import Milestone, StatusCategory, WorkItem
from sync.store import Store

TODO, DOING, DONE, CANCELLED = (
    StatusCategory.TODO,
    StatusCategory.IN_PROGRESS,
    StatusCategory.DONE,
    StatusCategory.CANCELLED,
)


def connector(path: Path, name: str = "acme", **settings: Any) -> CsvConnector:
    return CsvConnector(name, CsvSettings(path=path, **settings))


def write(tmp_path: Path, text: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def items_of(conn: CsvConnector) -> dict[str, WorkItem]:
    return {i.key: i for i in conn.fetch_items(None)}


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def without_raw(item: WorkItem) -> WorkItem:
    return item.model_copy(update={"raw": {}})


PLAIN_HEADER = (
    "key,title,type,status,category,assignee,labels,created,updated,resolved,due,start,"
    "estimate,parent,milestone,blocked,url"
)
PLAIN = (
    PLAIN_HEADER
    + "\r\n"
    + "ACME-E1,Checkout epic,Epic,In Progress,,,,2026-09-01T08:00:00Z,2026-09-02T08:00:00Z,,,,,,,,\r\n"
    + 'ACME-1,Build login page,Story,In Review,in_progress,Ana Lima,"frontend; needs-client, frontend",'
    + "2026-09-01T08:00:00Z,2026-09-03T10:30:00+02:00,,2026-10-01,2026-09-02,5,ACME-E1,"
    + "Beta on staging,yes,https://acme.example/browse/ACME-1\r\n"
    + 'ACME-2,Payment provider,Task,Done,,Bo Chen,backend,2026-09-01,2026-09-10T12:00:00,2026-09-09T17:45:00Z,,,"2,5",'
    + "ACME-E1,ACME-M1,0,\r\n"
    + "ACME-M1,Beta on staging,Milestone,Open,,,,2026-09-01T00:00:00Z,2026-09-01T00:00:00Z,,"
    + "2026-12-07,2026-10-16,,,,,https://acme.example/m/1\r\n"
)


# -- the plain layout -------------------------------------------------------------------------


def test_plain_layout_every_column(tmp_path: Path) -> None:
    items = items_of(connector(write(tmp_path, PLAIN)))

    assert sorted(items) == ["ACME-1", "ACME-2", "ACME-E1"]
    assert without_raw(items["ACME-1"]) == WorkItem(
        source="acme",
        id="ACME-1",
        key="ACME-1",
        url="https://acme.example/browse/ACME-1",
        title="Build login page",
        kind="story",
        status="In Review",
        category=DOING,
        assignee="Ana Lima",
        labels=["frontend", "needs-client"],
        parent_id="ACME-E1",
        milestone_id="ACME-M1",  # named by title, resolved to the milestone row's key
        start_date=date(2026, 9, 2),
        due_date=date(2026, 10, 1),
        created_at=at(2026, 9, 1, 8, 0),
        updated_at=at(2026, 9, 3, 8, 30),
        completed_at=None,
        estimate=5.0,
        blocked=True,
    )
    assert without_raw(items["ACME-2"]) == WorkItem(
        source="acme",
        id="ACME-2",
        key="ACME-2",
        title="Payment provider",
        kind="task",
        status="Done",
        category=DONE,
        assignee="Bo Chen",
        labels=["backend"],
        parent_id="ACME-E1",
        milestone_id="ACME-M1",
        created_at=at(2026, 9, 1),
        updated_at=at(2026, 9, 10, 12, 0),
        completed_at=at(2026, 9, 9, 17, 45),
        estimate=2.5,
        blocked=False,
    )
    epic = items["ACME-E1"]
    assert epic.kind == "epic"
    assert epic.is_container
    assert epic.category is DOING
    assert epic.labels == []
    assert epic.estimate is None


def test_raw_is_json_and_holds_no_surprises(tmp_path: Path) -> None:
    item = items_of(connector(write(tmp_path, PLAIN)))["ACME-1"]
    raw = json.loads(json.dumps(item.raw))
    assert raw["title"] == "Build login page"
    assert raw["created"] == "2026-09-01T08:00:00+00:00"
    assert raw["due"] == "2026-10-01"


def test_columns_in_any_order(tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(PLAIN)))
    shuffled = io.StringIO()
    names = list(reversed(rows[0].keys()))
    names.insert(3, names.pop(0))
    writer = csv.DictWriter(shuffled, names)
    writer.writeheader()
    writer.writerows(rows)

    ordered = items_of(connector(write(tmp_path, PLAIN, "a.csv")))
    reordered = items_of(connector(write(tmp_path, shuffled.getvalue(), "b.csv")))

    assert [without_raw(i) for i in reordered.values()] != []
    assert {k: without_raw(v) for k, v in reordered.items()} == {
        k: without_raw(v) for k, v in ordered.items()
    }


def test_only_key_and_title(tmp_path: Path) -> None:
    conn = connector(write(tmp_path, "Key , TITLE\nA-1,One\nA-2,Two\n"))
    items = list(conn.fetch_items(None))
    assert [without_raw(i) for i in items] == [
        WorkItem(source="acme", id="A-1", key="A-1", title="One", status="todo", category=TODO),
        WorkItem(source="acme", id="A-2", key="A-2", title="Two", status="todo", category=TODO),
    ]
    assert list(conn.fetch_ids()) == ["A-1", "A-2"]
    assert conn.check() == "export.csv: 2 rows"


@pytest.mark.parametrize(
    ("status", "category", "expected"),
    [
        ("Done", "", DONE),
        ("closed", "", DONE),
        ("Resolved", "", DONE),
        ("In Progress", "", DOING),
        ("In Review", "", DOING),
        ("Blocked", "", DOING),
        ("Won't Do", "", CANCELLED),
        ("Cancelled", "", CANCELLED),
        ("Backlog", "", TODO),
        ("Open", "", TODO),
        ("Something custom", "", TODO),
        ("进行中", "", DOING),
        ("已完成", "", DONE),
        ("已取消", "", CANCELLED),
        ("Blocked", "todo", TODO),  # an explicit category wins over the status words
        ("Shipped", "done", DONE),
        ("Dropped", "cancelled", CANCELLED),
        ("Building", "In Progress", DOING),
        ("Idea", "To Do", TODO),
    ],
)
def test_category(tmp_path: Path, status: str, category: str, expected: StatusCategory) -> None:
    path = write(tmp_path, f"key,title,status,category\nA-1,One,{status},{category}\n")
    (item,) = connector(path).fetch_items(None)
    assert item.category is expected
    assert item.status == status


def test_status_map_and_blocked_statuses_from_config(tmp_path: Path) -> None:
    path = write(tmp_path, "key,title,status\nA-1,One,Parked\nA-2,Two,Waiting\nA-3,Three,Done\n")
    conn = connector(path, status_map={"Parked": "cancelled"}, blocked_statuses=["Waiting"])
    items = items_of(conn)
    assert items["A-1"].category is CANCELLED
    assert (items["A-2"].category, items["A-2"].blocked) == (TODO, True)
    assert (items["A-3"].category, items["A-3"].blocked) == (DONE, False)


@pytest.mark.parametrize(
    ("cell", "labels"),
    [
        ("a;b", ["a", "b"]),
        ("a, b", ["a", "b"]),
        ("a;b,c", ["a", "b", "c"]),
        (" needs-client ; internal ;", ["needs-client", "internal"]),
        ("x;x", ["x"]),
        ("", []),
    ],
)
def test_labels(tmp_path: Path, cell: str, labels: list[str]) -> None:
    path = write(tmp_path, f'key,title,labels\nA-1,One,"{cell}"\n')
    (item,) = connector(path).fetch_items(None)
    assert item.labels == labels


@pytest.mark.parametrize(
    ("cell", "blocked"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("NO", False),
        ("0", False),
        ("", False),
    ],
)
def test_blocked_words(tmp_path: Path, cell: str, blocked: bool) -> None:
    (item,) = connector(write(tmp_path, f"key,title,blocked\nA-1,One,{cell}\n")).fetch_items(None)
    assert item.blocked is blocked


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-09-01T08:00:00", at(2026, 9, 1, 8, 0)),
        ("2026-09-01 08:00", at(2026, 9, 1, 8, 0)),
        ("2026-09-01T08:00:00Z", at(2026, 9, 1, 8, 0)),
        ("2026-09-01T08:00:00+08:00", at(2026, 9, 1, 0, 0)),
        ("2026-09-01T08:00:00.250-05:00", datetime(2026, 9, 1, 13, 0, 0, 250000, UTC)),
        ("2026-09-01", at(2026, 9, 1)),
        ("2026/09/01 08:00", at(2026, 9, 1, 8, 0)),
        ("01.09.2026", at(2026, 9, 1)),
        ("2026年09月01日 08:00", at(2026, 9, 1, 8, 0)),
        ("1 Sep 2026", at(2026, 9, 1)),
        ("Sep 1, 2026", at(2026, 9, 1)),
    ],
)
def test_datetimes_are_utc(tmp_path: Path, cell: str, expected: datetime) -> None:
    path = write(tmp_path, f'key,title,created\nA-1,One,"{cell}"\n')
    (item,) = connector(path).fetch_items(None)
    assert item.created_at == expected
    assert item.created_at.utcoffset() == timedelta(0)
    assert item.updated_at == expected  # no updated column: created stands in


def test_due_and_start_are_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "key,title,due,start\nA-1,One,2026-10-01T18:00:00,2026-09-01\n")
    (item,) = connector(path).fetch_items(None)
    assert item.due_date == date(2026, 10, 1)
    assert item.start_date == date(2026, 9, 1)


def test_date_format_setting_reads_day_first_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "key,title,created,due\nA-1,One,03/09/2026,04/10/2026\n")
    (item,) = connector(path, date_format="%d/%m/%Y").fetch_items(None)
    assert item.created_at == at(2026, 9, 3)
    assert item.due_date == date(2026, 10, 4)


def test_done_without_resolved_uses_updated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "key,title,status,updated,resolved\n"
        "A-1,One,Done,2026-09-05T10:00:00Z,\n"
        "A-2,Two,Open,2026-09-05T10:00:00Z,2026-09-04T10:00:00Z\n",
    )
    items = items_of(connector(path))
    assert items["A-1"].completed_at == at(2026, 9, 5, 10, 0)
    assert items["A-2"].completed_at is None  # reopened: not complete


def test_url_template(tmp_path: Path) -> None:
    path = write(tmp_path, "key,title,url\nA-1,One,\nA-2,Two,https://x.example/2\n")
    items = items_of(connector(path, url_template="https://jira.example/browse/{key}"))
    assert items["A-1"].url == "https://jira.example/browse/A-1"
    assert items["A-2"].url == "https://x.example/2"


# -- the Jira preset --------------------------------------------------------------------------

JIRA_EXPORT = (
    "Summary,Issue key,Issue id,Issue Type,Status,Priority,Resolution,Assignee,Created,Updated,"
    "Resolved,Due date,Labels,Labels,Custom field (Story Points),Parent,Fix Version/s,"
    "Status Category\r\n"
    "Checkout,ACME-10,10010,Epic,In Progress,Medium,,Ana Lima,01/Sep/26 9:00 AM,"
    "20/Nov/26 4:05 PM,,,,,,,,In Progress\r\n"
    "Login page,ACME-11,10011,Story,Done,High,Done,Ana Lima,02/Sep/26 10:30 AM,"
    "26/Nov/26 9:15 AM,26/Nov/26 9:15 AM,30/Nov/26,frontend,needs-client,3.0,10010,1.0,Done\r\n"
    '"Old report, CSV",ACME-12,10012,Task,Done,Low,Won\'t Do,,03/Sep/26 11:00 AM,'
    "25/Nov/26 1:45 PM,25/Nov/26 1:45 PM,,,,,10010,,Done\r\n"
    "Search,ACME-13,10013,Story,Selected for Development,Medium,,,04/Sep/26 12:00 PM,"
    "04/Sep/26 12:00 PM,,15/Dec/26,,,5,10010,1.1,To Do\r\n"
)


def test_jira_preset_reads_a_jira_export(tmp_path: Path) -> None:
    conn = connector(write(tmp_path, JIRA_EXPORT, "jira.csv"), preset="jira")
    items = {i.key: i for i in conn.fetch_items(None)}

    assert sorted(items) == ["ACME-10", "ACME-11", "ACME-12", "ACME-13"]
    assert without_raw(items["ACME-11"]) == WorkItem(
        source="acme",
        id="10011",
        key="ACME-11",
        title="Login page",
        kind="story",
        status="Done",
        category=DONE,
        assignee="Ana Lima",
        priority="High",
        labels=["frontend", "needs-client"],
        parent_id="10010",
        milestone_id="1.0",
        due_date=date(2026, 11, 30),
        created_at=at(2026, 9, 2, 10, 30),
        updated_at=at(2026, 11, 26, 9, 15),
        completed_at=at(2026, 11, 26, 9, 15),
        estimate=3.0,
    )
    cancelled = items["ACME-12"]
    assert cancelled.title == "Old report, CSV"
    assert cancelled.category is CANCELLED  # status Done, resolution Won't Do
    assert cancelled.completed_at is None
    assert cancelled.created_at == at(2026, 9, 3, 11, 0)
    assert cancelled.updated_at == at(2026, 11, 25, 13, 45)
    epic = items["ACME-10"]
    assert (epic.id, epic.kind, epic.category, epic.updated_at) == (
        "10010",
        "epic",
        DOING,
        at(2026, 11, 20, 16, 5),
    )
    todo = items["ACME-13"]
    assert (todo.category, todo.status, todo.estimate) == (TODO, "Selected for Development", 5.0)
    assert todo.created_at == at(2026, 9, 4, 12, 0)
    assert todo.due_date == date(2026, 12, 15)
    assert todo.milestone_id == "1.1"
    assert list(conn.fetch_ids()) == ["10010", "10011", "10012", "10013"]
    assert sorted((m.id, m.name) for m in conn.fetch_milestones()) == [
        ("1.0", "1.0"),
        ("1.1", "1.1"),
    ]


def test_jira_preset_alternative_story_point_header(tmp_path: Path) -> None:
    text = (
        "Summary,Issue key,Issue id,Status,Custom field (Story point estimate),Start date\n"
        "One,ACME-1,101,To Do,8,05/Oct/26\n"
    )
    (item,) = connector(write(tmp_path, text), preset="jira").fetch_items(None)
    assert (item.id, item.estimate, item.start_date) == ("101", 8.0, date(2026, 10, 5))


def test_jira_preset_without_summary_column_is_a_clear_error(tmp_path: Path) -> None:
    conn = connector(write(tmp_path, "Issue key,Status\nA-1,Done\n", "jira.csv"), preset="jira")
    with pytest.raises(SourceError) as info:
        list(conn.fetch_items(None))
    assert str(info.value) == (
        "acme: jira.csv has no 'Summary' column (preset 'jira'); fix the header or set [columns]"
    )


# -- explicit [columns] -----------------------------------------------------------------------


def test_explicit_column_mapping(tmp_path: Path) -> None:
    text = (
        "ID;Name;State;Owner;Deadline;Tags;Points\n"
        "T-1;Write spec;Doing;Zoe;2026-12-01;a,b;2\n"
        "T-2;Review spec;Closed;;;;\n"
    )
    conn = connector(
        write(tmp_path, text),
        delimiter=";",
        columns={
            "key": "ID",
            "title": "Name",
            "status": "State",
            "assignee": "Owner",
            "due": "Deadline",
            "labels": "Tags",
            "estimate": "Points",
        },
    )
    items = items_of(conn)
    assert without_raw(items["T-1"]) == WorkItem(
        source="acme",
        id="T-1",
        key="T-1",
        title="Write spec",
        status="Doing",
        category=DOING,
        assignee="Zoe",
        labels=["a", "b"],
        due_date=date(2026, 12, 1),
        estimate=2.0,
    )
    assert (items["T-2"].category, items["T-2"].assignee) == (DONE, None)


def test_mapping_to_a_missing_header_is_a_clear_error(tmp_path: Path) -> None:
    conn = connector(write(tmp_path, "key,title\nA,B\n"), columns={"key": "Ticket"})
    with pytest.raises(SourceError) as info:
        conn.check()
    assert "has no 'Ticket' column" in str(info.value)


# -- encodings --------------------------------------------------------------------------------

CHINESE = (
    "key,title,status,assignee,labels,created\r\n"
    "PC-1,登录页面,进行中,张伟,前端;需客户确认,2026-11-01T09:00:00+08:00\r\n"
    "PC-2,支付接口,已完成,李娜,后端,2026年11月02日 10:00\r\n"
)


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""], ids=["bom", "no-bom"])
def test_utf8_with_or_without_bom_and_chinese(tmp_path: Path, bom: bytes) -> None:
    path = tmp_path / "pingcode.csv"
    path.write_bytes(bom + CHINESE.encode("utf-8"))
    items = items_of(connector(path))
    assert without_raw(items["PC-1"]) == WorkItem(
        source="acme",
        id="PC-1",
        key="PC-1",
        title="登录页面",
        status="进行中",
        category=DOING,
        assignee="张伟",
        labels=["前端", "需客户确认"],
        created_at=at(2026, 11, 1, 1, 0),
        updated_at=at(2026, 11, 1, 1, 0),
    )
    assert (items["PC-2"].title, items["PC-2"].category) == ("支付接口", DONE)
    assert items["PC-2"].created_at == at(2026, 11, 2, 10, 0)


def test_other_encoding_is_a_clear_error_and_readable_with_setting(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(CHINESE.encode("gbk"))
    with pytest.raises(SourceError) as info:
        connector(path).check()
    assert str(info.value).startswith("acme: ")
    assert str(info.value).endswith("; set `encoding`")
    assert "is not utf-8-sig" in str(info.value)

    items = items_of(connector(path, encoding="gbk"))
    assert items["PC-1"].title == "登录页面"


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        connector(tmp_path / "gone.csv").check()
    assert str(info.value) == f"acme: CSV file {tmp_path / 'gone.csv'} not found; check `path`"
    with pytest.raises(SourceError) as info:
        connector(write(tmp_path, "")).check()
    assert str(info.value) == f"acme: {tmp_path / 'export.csv'} is empty"


# -- malformed rows ---------------------------------------------------------------------------

MALFORMED = (
    "key,title,status,created,estimate,blocked\n"  # 1
    "A-1,Good one,Open,2026-09-01,1,no\n"  # 2
    "A-2,Bad date,Open,2026-13-45,1,no\n"  # 3
    "A-3,Bad number,Open,2026-09-01,three,no\n"  # 4
    "A-4,Bad blocked,Open,2026-09-01,1,maybe\n"  # 5
    ",No key,Open,2026-09-01,1,no\n"  # 6
    "A-1,Duplicate,Open,2026-09-01,1,no\n"  # 7
    'A-5,"Multi\n'  # 8
    'line title",Done,2026-09-01,2,yes\n'  # 9
    "A-6,,Open,2026-09-01,1,no\n"  # 10
    "\n"  # 11
    "A-7,Day first,Open,03/09/2026,1,no\n"  # 12
    "A-8,Short row\n"  # 13
)


def test_malformed_rows_reported_with_line_numbers_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    conn = connector(write(tmp_path, MALFORMED, "t.csv"))

    items = items_of(conn)

    assert sorted(items) == ["A-1", "A-5", "A-8"]
    assert items["A-1"].title == "Good one"  # the first wins, the duplicate is reported
    assert items["A-5"].title == "Multi\nline title"
    assert (items["A-5"].category, items["A-5"].blocked, items["A-5"].estimate) == (
        DONE,
        True,
        2.0,
    )
    skipped = [
        "t.csv line 3: created: unreadable date '2026-13-45'; row skipped",
        "t.csv line 4: estimate: not a number: 'three'; row skipped",
        "t.csv line 5: blocked: expected true/false/yes/no/1/0, got 'maybe'; row skipped",
        "t.csv line 6: empty key; row skipped",
        "t.csv line 7: duplicate key 'A-1' (first on line 2); row skipped",
        "t.csv line 10: A-6: empty title; row skipped",
        "t.csv line 12: created: unreadable date '03/09/2026'; set date_format; row skipped",
    ]
    assert conn.notes == [*skipped, "read the whole file (3 rows; a file has no 'changed since')"]
    assert [r.getMessage() for r in caplog.records if r.name == "pmsync.csv"] == [
        f"acme: {line}" for line in skipped
    ]
    assert list(conn.fetch_ids()) == ["A-1", "A-5", "A-8"]


def test_oversized_cell_is_reported_and_later_rows_survive(tmp_path: Path) -> None:
    huge = "x" * 200_000
    text = f"key,title\nA-1,ok\nA-2,{huge}\nA-3,also ok\n"
    conn = connector(write(tmp_path, text, "big.csv"))
    items = items_of(conn)
    assert "A-1" in items
    assert "A-3" in items
    assert "A-2" not in items
    assert any(n.startswith("big.csv line 3: ") for n in conn.notes), conn.notes


# -- milestones -------------------------------------------------------------------------------


def test_milestone_rows_become_milestones(tmp_path: Path) -> None:
    text = (
        "key,title,type,status,due,start,url,milestone\n"
        "M-1,Beta,milestone,Done,2026-10-01,2026-09-01,https://x.example/m1,\n"
        "M-2,Launch,Milestone,Open,2026-12-01,,,\n"
        "A-1,Task,task,Open,,,,Beta\n"
        "A-2,Other,task,Open,,,,M-2\n"
        "A-3,Loose,task,Open,,,,Someday\n"
    )
    conn = connector(write(tmp_path, text))

    assert sorted(i.key for i in conn.fetch_items(None)) == ["A-1", "A-2", "A-3"]
    assert list(conn.fetch_ids()) == ["A-1", "A-2", "A-3"]
    assert sorted(conn.fetch_milestones(), key=lambda m: m.id) == [
        Milestone(
            source="acme",
            id="M-1",
            name="Beta",
            start_date=date(2026, 9, 1),
            due_date=date(2026, 10, 1),
            state="closed",
            url="https://x.example/m1",
        ),
        Milestone(source="acme", id="M-2", name="Launch", due_date=date(2026, 12, 1)),
        Milestone(source="acme", id="Someday", name="Someday"),
    ]
    items = items_of(conn)
    assert items["A-1"].milestone_id == "M-1"
    assert items["A-2"].milestone_id == "M-2"
    assert items["A-3"].milestone_id == "Someday"


# -- through the engine: tombstones -----------------------------------------------------------

ROWS = {
    "A-1": "A-1,One,Open,2026-09-01T10:00:00Z",
    "A-2": "A-2,Two,Done,2026-09-02T10:00:00Z",
    "A-3": "A-3,Three,Open,2026-09-03T10:00:00Z",
}


def export(path: Path, keys: list[str]) -> None:
    lines = ["key,title,status,updated"] + [ROWS[k] for k in keys]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_vanished_row_is_tombstoned_and_restored(tmp_path: Path) -> None:
    store = Store.memory()
    path = tmp_path / "e.csv"
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    export(path, ["A-1", "A-2", "A-3"])
    first = sync_source(store, connector(path), now=t0)
    assert (first.status, first.new, first.tombstoned) == ("ok", 3, 0)
    assert store.item_ids("acme") == {"A-1", "A-2", "A-3"}

    export(path, ["A-1", "A-3"])
    second = sync_source(store, connector(path), now=t0 + timedelta(hours=1))
    assert second.status == "ok"
    assert second.mode == "incremental"
    assert (second.new, second.tombstoned, second.restored) == (0, 1, 0)
    assert store.item_ids("acme") == {"A-1", "A-3"}
    assert store.item_ids("acme", include_deleted=True) == {"A-1", "A-2", "A-3"}
    gone = next(r for r in store.item_rows(["acme"]) if r["id"] == "A-2")
    assert gone["deleted_at"] is not None
    assert "A-2" not in {i.id for i in store.items(["acme"])}

    export(path, ["A-1", "A-2", "A-3"])
    third = sync_source(store, connector(path), now=t0 + timedelta(hours=2))
    assert third.status == "ok"
    assert (third.new, third.tombstoned, third.restored) == (0, 0, 1)
    assert store.item_ids("acme") == {"A-1", "A-2", "A-3"}
    back = next(r for r in store.item_rows(["acme"]) if r["id"] == "A-2")
    assert back["deleted_at"] is None


def test_sync_records_skipped_rows_and_milestones(tmp_path: Path) -> None:
    store = Store.memory()
    path = write(
        tmp_path,
        "key,title,type,due,created\n"
        "A-1,One,task,,2026-09-01\n"
        "A-2,Two,task,soon,2026-09-01\n"
        "M-1,Beta,milestone,2026-10-01,2026-09-01\n",
        "s.csv",
    )
    result = sync_source(store, connector(path), now=datetime(2026, 11, 1, tzinfo=UTC))
    assert result.status == "ok"
    assert result.new == 1
    assert result.milestones == 1
    assert result.requests == 0
    assert "s.csv line 3: due: unreadable date 'soon'; row skipped" in result.notes
    assert store.item_ids("acme") == {"A-1"}
    assert [(m.id, m.name, m.due_date) for m in store.milestones(["acme"])] == [
        ("M-1", "Beta", date(2026, 10, 1))
    ]


def test_sync_of_a_missing_file_fails_the_source_only(tmp_path: Path) -> None:
    store = Store.memory()
    result = sync_source(store, connector(tmp_path / "none.csv"))
    assert result.status == "failed"
    assert result.error == f"acme: CSV file {tmp_path / 'none.csv'} not found; check `path`"
    assert store.item_ids("acme", include_deleted=True) == set()


def test_bad_multiline_row_reported_at_its_first_line(tmp_path: Path) -> None:
    text = (
        "key,title,estimate\n"  # 1
        'A-1,"A title\n'  # 2
        'over two lines",many\n'  # 3
        'A-2,"Another\n'  # 4
        'long one",1\n'  # 5
        "A-2,dup,1\n"  # 6
    )
    conn = connector(write(tmp_path, text, "m.csv"))
    assert list(conn.fetch_ids()) == ["A-2"]
    assert conn.notes == [
        "m.csv line 2: estimate: not a number: 'many'; row skipped",
        "m.csv line 6: duplicate key 'A-2' (first on line 4); row skipped",
    ]

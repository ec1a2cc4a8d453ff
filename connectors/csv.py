"""CSV connector: an exported file, for teams without API access or for a one-off import.

Layouts: `plain` (DESIGN §9), `jira` (Jira's "Export CSV (all fields)"), or an explicit
`[sources.X.columns]` mapping from our field names to the file's headers. The file is
re-read on every sync (it is local and cheap); the store's content hash tells what changed,
and every sync is also a census, so rows that vanish from the file are tombstoned.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connectors.base import Connector, SourceSettings
from sync.errors import SourceError
from sync.model import Milestone, StatusCategory, WorkItem

log = logging.getLogger("pmsync.csv")

FIELDS = (
    "id",
    "key",
    "title",
    "type",
    "status",
    "category",
    "assignee",
    "priority",
    "labels",
    "created",
    "updated",
    "resolved",
    "due",
    "start",
    "estimate",
    "parent",
    "milestone",
    "blocked",
    "url",
    "resolution",
)

PRESETS: dict[str, dict[str, str]] = {
    "plain": {f: f for f in FIELDS if f not in ("id", "resolution")},
    "jira": {
        "id": "Issue id",
        "key": "Issue key",
        "title": "Summary",
        "type": "Issue Type",
        "status": "Status",
        "category": "Status Category",
        "assignee": "Assignee",
        "priority": "Priority",
        "labels": "Labels",
        "created": "Created",
        "updated": "Updated",
        "resolved": "Resolved",
        "due": "Due date",
        "start": "Custom field (Start date)",
        "estimate": "Custom field (Story Points)",
        "parent": "Parent",
        "milestone": "Fix Version/s",
        "blocked": "Custom field (Flagged)",
        "resolution": "Resolution",
    },
}
# Other headers Jira uses for the same field, depending on the site's template and age.
JIRA_ALTERNATIVES = {
    "estimate": ("Custom field (Story point estimate)",),
    "parent": ("Parent id",),
    "start": ("Start date",),
}

CATEGORY_WORDS: dict[StatusCategory, tuple[str, ...]] = {
    StatusCategory.DONE: (
        "done",
        "closed",
        "resolved",
        "complete",
        "completed",
        "finished",
        "已完成",
        "完成",
        "已关闭",
        "已解决",
    ),
    StatusCategory.CANCELLED: (
        "cancelled",
        "canceled",
        "won't do",
        "wont do",
        "rejected",
        "duplicate",
        "declined",
        "abandoned",
        "已取消",
        "已拒绝",
    ),
    StatusCategory.IN_PROGRESS: (
        "in progress",
        "in review",
        "doing",
        "review",
        "testing",
        "in test",
        "qa",
        "blocked",
        "进行中",
        "处理中",
        "测试中",
    ),
}
CANCELLED_RESOLUTIONS = ("won't do", "won't fix", "duplicate", "cannot reproduce", "declined")
TRUE_WORDS = {"true", "yes", "y", "1", "x", "impediment", "是"}
FALSE_WORDS = {"false", "no", "n", "0", "", "否"}
# Formats tried after ISO 8601; day-first/month-first numeric dates need `date_format`.
DATE_FORMATS = (
    "%d/%b/%y %I:%M %p",
    "%d/%b/%Y %I:%M %p",
    "%d/%b/%y",
    "%d/%b/%Y",  # Jira exports
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
    "%d %b %Y",
    "%b %d, %Y",
)


class CsvSettings(SourceSettings):
    kind: Literal["csv"] = "csv"
    path: Path
    preset: Literal["plain", "jira"] = "plain"
    # Our field name -> the file's header; overrides the preset per field.
    columns: dict[str, str] = Field(default_factory=dict)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    # strptime format for dates that are neither ISO 8601 nor a known export format.
    date_format: str | None = None
    # Base for item links when the file has no url column, e.g. "https://jira.example/browse/{key}".
    url_template: str | None = None


class BadRow(ValueError):
    """A row that cannot be read; reported with its line number and skipped."""


class CsvConnector(Connector):
    kind = "csv"
    Settings = CsvSettings
    free_census = True
    settings: CsvSettings

    def __init__(self, name: str, settings: CsvSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        self._rows: list[dict[str, Any]] | None = None
        self._milestones: dict[str, Milestone] = {}

    def check(self) -> str:
        rows = self._read()
        return f"{self.settings.path.name}: {len(rows)} rows"

    def fetch_items(self, since: datetime | None) -> Iterator[WorkItem]:
        rows = self._read()
        self.notes.append(f"read the whole file ({len(rows)} rows; a file has no 'changed since')")
        for row in rows:
            if row["type"].lower() != "milestone":
                yield self._item(row)

    def fetch_milestones(self) -> Iterable[Milestone]:
        self._read()
        return list(self._milestones.values())

    def fetch_ids(self) -> Iterator[str]:
        return (r["id"] for r in self._read() if r["type"].lower() != "milestone")

    # -- reading --------------------------------------------------------------------------

    def _read(self) -> list[dict[str, Any]]:
        if self._rows is not None:
            return self._rows
        path = self.settings.path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SourceError(f"{self.name}: CSV file {path} not found; check `path`") from None
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read {path}: {exc.strerror}") from None
        try:
            text = data.decode(self.settings.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise SourceError(
                f"{self.name}: {path} is not {self.settings.encoding} ({exc}); set `encoding`"
            ) from None
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.settings.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise SourceError(f"{self.name}: {path} is empty") from None
        except csv.Error as exc:
            raise SourceError(f"{self.name}: {path} line 1: {exc}") from None
        columns = self._column_indexes([h.strip() for h in header])
        rows: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        line = 1
        while True:
            # A quoted cell may span lines: report a record at the line it starts on.
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self._skip(line, str(exc))
                continue
            if not any(c.strip() for c in cells):
                continue
            try:
                row = self._parse(cells, columns)
            except BadRow as exc:
                self._skip(line, str(exc))
                continue
            if row["id"] in seen:
                self._skip(line, f"duplicate key {row['key']!r} (first on line {seen[row['id']]})")
                continue
            seen[row["id"]] = line
            rows.append(row)
        self._collect_milestones(rows)
        self._rows = rows
        return rows

    def _skip(self, line: int, why: str) -> None:
        message = f"{self.settings.path.name} line {line}: {why}; row skipped"
        log.warning("%s: %s", self.name, message)
        self.notes.append(message)

    def _column_indexes(self, header: list[str]) -> dict[str, list[int]]:
        mapping = {**PRESETS[self.settings.preset], **self.settings.columns}
        folded = [h.casefold() for h in header]
        out: dict[str, list[int]] = {}
        for field_name, wanted in mapping.items():
            names = [wanted]
            if self.settings.preset == "jira" and field_name not in self.settings.columns:
                names += JIRA_ALTERNATIVES.get(field_name, ())
            for name in names:
                idx = [i for i, h in enumerate(folded) if h == name.casefold()]
                if idx:
                    out[field_name] = idx
                    break
        for required in ("key", "title"):
            if required not in out:
                raise SourceError(
                    f"{self.name}: {self.settings.path.name} has no {mapping[required]!r} column"
                    f" (preset {self.settings.preset!r}); fix the header or set [columns]"
                )
        return out

    def _parse(self, cells: list[str], columns: dict[str, list[int]]) -> dict[str, Any]:
        def get(name: str) -> str:
            idx = columns.get(name)
            if not idx:
                return ""
            return cells[idx[0]].strip() if idx[0] < len(cells) else ""

        def get_all(name: str) -> list[str]:
            return [cells[i].strip() for i in columns.get(name, []) if i < len(cells)]

        key = get("key")
        if not key:
            raise BadRow("empty key")
        title = get("title")
        if not title:
            raise BadRow(f"{key}: empty title")
        labels: list[str] = []
        for cell in get_all("labels"):
            labels += [x.strip() for x in re.split(r"[;,]", cell) if x.strip()]
        milestones = [m for m in get_all("milestone") if m]
        return {
            "id": get("id") or key,
            "key": key,
            "title": title,
            "type": get("type") or "task",
            "status": get("status"),
            "category": get("category"),
            "resolution": get("resolution"),
            "assignee": get("assignee") or None,
            "priority": get("priority") or None,
            "labels": list(dict.fromkeys(labels)),
            "created": self._datetime(get("created"), "created"),
            "updated": self._datetime(get("updated"), "updated"),
            "resolved": self._datetime(get("resolved"), "resolved"),
            "due": self._date(get("due"), "due"),
            "start": self._date(get("start"), "start"),
            "estimate": _number(get("estimate"), "estimate"),
            "parent": get("parent") or None,
            "milestone": milestones[0] if milestones else None,
            "blocked": _flag(get("blocked")),
            "url": get("url") or None,
        }

    def _when(self, text: str, field_name: str) -> datetime | None:
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            value = None
        if value is None:
            formats = (self.settings.date_format,) if self.settings.date_format else ()
            for fmt in (*formats, *DATE_FORMATS):
                try:
                    value = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
        if value is None:
            hint = "; set date_format" if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{2,4}.*", text) else ""
            raise BadRow(f"{field_name}: unreadable date {text[:40]!r}{hint}")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def _datetime(self, text: str, field_name: str) -> datetime | None:
        value = self._when(text, field_name)
        return None if value is None else value.astimezone(UTC)

    def _date(self, text: str, field_name: str) -> date | None:
        value = self._when(text, field_name)
        return None if value is None else value.date()

    # -- normalising ----------------------------------------------------------------------

    def _category(self, row: dict[str, Any]) -> StatusCategory:
        status_map = self.settings.status_map
        if row["status"] in status_map:
            return status_map[row["status"]]
        resolution = row["resolution"].casefold()
        if resolution and any(resolution.startswith(r) for r in CANCELLED_RESOLUTIONS):
            return StatusCategory.CANCELLED
        explicit = row["category"].casefold().replace(" ", "_").replace("-", "_")
        if explicit in {c.value for c in StatusCategory}:
            return StatusCategory(explicit)
        if explicit in ("to_do", "new", "open"):
            return StatusCategory.TODO
        status = row["status"].casefold()
        for category, words in CATEGORY_WORDS.items():
            if status in words:
                return category
        return StatusCategory.TODO

    def _item(self, row: dict[str, Any]) -> WorkItem:
        category = self._category(row)
        blocked = row["blocked"] or row["status"] in self.settings.blocked_statuses
        url = row["url"]
        if url is None and self.settings.url_template:
            url = self.settings.url_template.format(key=row["key"], id=row["id"])
        completed = row["resolved"]
        if completed is None and category is StatusCategory.DONE:
            completed = row["updated"]
        return WorkItem(
            source=self.name,
            id=row["id"],
            key=row["key"],
            url=url,
            title=row["title"],
            kind=row["type"].lower(),
            status=row["status"] or category.value,
            category=category,
            assignee=row["assignee"],
            priority=row["priority"],
            labels=row["labels"],
            parent_id=row["parent"],
            milestone_id=row["milestone"] and self._milestone_id(row["milestone"]),
            start_date=row["start"],
            due_date=row["due"],
            created_at=row["created"],
            updated_at=row["updated"] or row["created"],
            completed_at=completed if category is StatusCategory.DONE else None,
            estimate=row["estimate"],
            blocked=blocked,
            raw={k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()},
        )

    def _collect_milestones(self, rows: list[dict[str, Any]]) -> None:
        self._milestones = {}
        for row in rows:
            if row["type"].lower() == "milestone":
                done = self._category(row) is StatusCategory.DONE
                self._milestones[row["id"]] = Milestone(
                    source=self.name,
                    id=row["id"],
                    name=row["title"],
                    start_date=row["start"],
                    due_date=row["due"],
                    state="closed" if done else "open",
                    url=row["url"],
                )
        by_name = {m.name: m.id for m in self._milestones.values()}
        for row in rows:
            name = row["milestone"]
            if name and name not in self._milestones and name not in by_name:
                self._milestones[name] = Milestone(source=self.name, id=name, name=name)

    def _milestone_id(self, ref: str) -> str:
        if ref in self._milestones:
            return ref
        for m in self._milestones.values():
            if m.name == ref:
                return m.id
        return ref


def _number(text: str, field_name: str) -> float | None:
    if not text:
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError:
        raise BadRow(f"{field_name}: not a number: {text[:40]!r}") from None


def _flag(text: str) -> bool:
    folded = text.casefold()
    if folded in TRUE_WORDS:
        return True
    if folded in FALSE_WORDS:
        return False
    raise BadRow(f"blocked: expected true/false/yes/no/1/0, got {text[:40]!r}")

"""Jira's Atlassian Document Format (jira-api.md §8): node builders and the report as ADF.

The builders are reusable (the Jira connector posts `to_adf`). They keep to the document
structure Atlassian documents: `doc` has `version: 1`; list items and table cells hold
paragraphs, never bare text; no empty text node is ever emitted; a link mark only carries
an http(s) URL. A report is shrunk (fewer rows per list, shorter titles) until its text
fits well under Jira's 32,767-character comment limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sync import i18n
from sync.render import common
from sync.render.neutralise import plain, safe_url
from sync.report import ItemRef, Report

Node = dict[str, Any]

# jira-api.md §8: 32,767 characters; keep headroom (unclear whether Jira counts text or JSON).
TEXT_BUDGET = 30_000


# -- builders ---------------------------------------------------------------------------------


def doc(content: Iterable[Node]) -> Node:
    return {"type": "doc", "version": 1, "content": [n for n in content if n]}


def text(value: str | None, *, strong: bool = False, href: str | None = None) -> Node | None:
    """A text node (None for empty text: ADF rejects empty text nodes)."""
    value = plain(value)
    if not value:
        return None
    node: Node = {"type": "text", "text": value}
    marks: list[Node] = []
    if strong:
        marks.append({"type": "strong"})
    url = safe_url(href)
    if url:
        marks.append({"type": "link", "attrs": {"href": url}})
    if marks:
        node["marks"] = marks
    return node


def paragraph(*inlines: Node | str | None) -> Node:
    """A paragraph of text nodes and strings (empty parts are dropped)."""
    content = []
    for part in inlines:
        node = text(part) if isinstance(part, str) else part
        if node:
            content.append(node)
    para: Node = {"type": "paragraph"}
    if content:
        para["content"] = content
    return para


def heading(level: int, value: str) -> Node:
    node: Node = {"type": "heading", "attrs": {"level": level}}
    t = text(value)
    if t:
        node["content"] = [t]
    return node


def bullet_list(items: Iterable[Node | str]) -> Node | None:
    """A bulletList whose items each hold one paragraph (None when there is nothing to list)."""
    entries = [
        {"type": "listItem", "content": [item if isinstance(item, dict) else paragraph(item)]}
        for item in items
    ]
    return {"type": "bulletList", "content": entries} if entries else None


def table(headers: Sequence[str], rows: Iterable[Sequence[Node | str | None]]) -> Node:
    """A table with a header row; every cell holds one paragraph."""

    def cell(kind: str, value: Node | str | None) -> Node:
        content = value if isinstance(value, dict) else paragraph(value)
        return {"type": kind, "attrs": {}, "content": [content]}

    body = [{"type": "tableRow", "content": [cell("tableHeader", h) for h in headers]}]
    body += [{"type": "tableRow", "content": [cell("tableCell", v) for v in row]} for row in rows]
    return {"type": "table", "attrs": {"isNumberColumnEnabled": False}, "content": body}


def rule() -> Node:
    return {"type": "rule"}


def text_length(node: Any) -> int:
    """Characters of text in an ADF tree (what Jira's comment limit counts)."""
    if isinstance(node, dict):
        own = len(node.get("text", "")) if node.get("type") == "text" else 0
        return own + sum(text_length(c) for c in node.get("content", ()))
    if isinstance(node, list):
        return sum(text_length(c) for c in node)
    return 0


# -- the report -------------------------------------------------------------------------------


def _cells(item: ItemRef, columns: Sequence[common.Column], lang: str, clip: int) -> list[Any]:
    out: list[Any] = []
    for col in columns:
        value = col.value(item, lang)
        if col.link:
            out.append(paragraph(text(value, href=item.url)))
        else:
            out.append(plain(value, clip))
    return out


def _more(report: Report, hidden: int) -> Node | None:
    if hidden <= 0:
        return None
    lang = report.language
    parts: list[Node | str | None] = [common.more_text(report, hidden)]
    if report.more_url and safe_url(report.more_url):
        parts += [" (", text(i18n.t(lang, "more_link"), href=report.more_url), ")"]
    return paragraph(*parts)


def _build(report: Report, limit: int, clip: int) -> Node:
    lang = report.language

    def t(key: str, **kw: Any) -> str:
        return i18n.t(lang, key, **kw)

    out: list[Node | None] = [heading(2, common.title(report))]
    out.append(
        paragraph(*[n for label, value in common.header_fields(report)
                    for n in (text(f"{label}: ", strong=True), text(f"{plain(value, 200)}  "))])
    )  # fmt: skip
    out.append(
        paragraph(
            text(f"{t('health')}: ", strong=True), text(common.health_heading(report), strong=True)
        )
    )
    out.append(bullet_list(plain(r, 500) for r in report.health.reasons[: max(limit, 3)]))
    out.append(heading(3, t("progress")))
    out += [paragraph(line) for line in common.progress_lines(report)]

    out.append(heading(3, t("changes")))
    out.append(paragraph(common.changes_line(report)))
    out += _change_table(report, common.change_rows(report), limit, clip)

    for section in common.sections(report):
        out.append(heading(3, f"{t(section.heading)} ({len(section.items)})"))
        if not section.items:
            out.append(paragraph(t("none")))
            continue
        shown = section.items[:limit]
        if shown:
            out.append(
                table(
                    [t(c.heading) for c in section.columns],
                    [_cells(i, section.columns, lang, clip) for i in shown],
                )
            )
        out.append(_more(report, len(section.items) - len(shown)))

    out.append(heading(3, t("scope_change")))
    out.append(paragraph(common.scope_line(report)))
    out += _change_table(report, common.scope_rows(report), limit, clip)

    out.append(heading(3, f"{t('milestones')} ({len(report.milestones)})"))
    ms = report.milestones[:limit]
    if ms:
        out.append(
            table(
                [
                    t(k)
                    for k in (
                        "col_milestone",
                        "col_due",
                        "col_percent",
                        "col_forecast",
                        "col_state",
                    )
                ],
                [
                    [
                        paragraph(text(plain(m.name, clip), href=m.url)),
                        i18n.fmt_date(lang, m.due_date),
                        i18n.fmt_percent(m.percent_done),
                        i18n.fmt_date(lang, m.forecast),
                        t("state_" + m.state),
                    ]
                    for m in ms
                ],
            )
        )
    elif not report.milestones:
        out.append(paragraph(t("none")))
    out.append(_more(report, len(report.milestones) - len(ms)))

    out.append(heading(3, t("forecast")))
    out += [paragraph(line) for line in common.forecast_lines(report)]

    if report.closing is not None:
        out += _closing(report, limit, clip)

    out.append(heading(3, t("sources")))
    out.append(
        table(
            [t(k) for k in ("col_source", "col_kind", "col_last_synced", "col_items")],
            [list(row) for row in common.source_rows(report)],
        )
    )
    out.append(paragraph(text(t("footer"))))
    return doc(n for n in out if n)


def _change_table(
    report: Report, rows: list[tuple[str, ItemRef]], limit: int, clip: int
) -> list[Node | None]:
    if not rows:
        return []
    lang = report.language
    shown = rows[:limit]
    out: list[Node | None] = []
    if shown:
        out.append(
            table(
                [i18n.t(lang, k) for k in ("col_change", "col_key", "col_title", "col_status")],
                [
                    [
                        i18n.t(lang, word),
                        *_cells(i, (common.KEY, common.TITLE), lang, clip),
                        plain(i.status, 80),
                    ]
                    for word, i in shown
                ],
            )
        )
    out.append(_more(report, len(rows) - len(shown)))
    return out


def _closing(report: Report, limit: int, clip: int) -> list[Node | None]:
    c = report.closing
    assert c is not None
    lang = report.language

    def t(key: str) -> str:
        return i18n.t(lang, key)

    out: list[Node | None] = [heading(3, t("closing"))]
    out.append(
        table(
            ["-", t("closing_planned"), t("closing_actual")],
            [list(r) for r in common.closing_table(report)],
        )
    )
    slip = common.slip_text(report)
    if slip:
        out.append(paragraph(text(f"{t('closing_slip')}: ", strong=True), slip))
    out += [paragraph(line) for line in common.closing_lines(report)]
    entries = c.feedback.entries[-limit:] if limit else []
    if entries:
        out.append(
            table(
                [t("col_day"), t("col_score"), t("col_comment")],
                [
                    [i18n.fmt_date(lang, f.day), str(f.score), plain(f.comment, clip * 2)]
                    for f in entries
                ],
            )
        )
    if c.lessons_learned:
        out.append(heading(4, t("lessons")))
        budget = clip * 40
        for block in c.lessons_learned.split("\n\n"):
            if budget <= 0:
                break
            chunk = plain(block, budget)
            budget -= len(chunk)
            out.append(paragraph(chunk))
    return out


def to_adf(report: Report, *, budget: int = TEXT_BUDGET) -> Node:
    """Render the report as an ADF document whose text stays under `budget` characters."""
    tried: Node | None = None
    start = common.LIMITS["adf"]
    for limit, clip in ((start, 200), (10, 160), (5, 120), (3, 80), (1, 60), (0, 40)):
        tried = _build(report, limit, clip)
        if text_length(tried) <= budget:
            return tried
    assert tried is not None
    # Still too long (hundreds of late milestones, say): keep whole blocks while they fit.
    kept, used = [], 0
    for node in tried["content"]:
        size = text_length(node)
        if used + size > budget - 200:
            kept.append(paragraph(common.more_text(report, len(tried["content"]) - len(kept))))
            break
        kept.append(node)
        used += size
    return doc(kept)

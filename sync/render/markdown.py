"""GitHub-flavoured Markdown: tables for lists, the timeline as a ```mermaid gantt block.

Every value from a source goes through `neutralise.md` (or `mermaid_label`), so a title can
add no link, HTML, table cell or heading of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from sync import i18n
from sync.render import common
from sync.render.neutralise import md, md_link, mermaid_label, safe_url
from sync.report import ItemRef, Report


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    out.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return out


def _more(report: Report, hidden: int) -> list[str]:
    if hidden <= 0:
        return []
    text = md(common.more_text(report, hidden))
    href = safe_url(report.more_url)
    if href:
        text += f" ([{md(i18n.t(report.language, 'more_link'))}]({href}))"
    return ["", f"_{text}_"]


def _item_cells(item: ItemRef, columns: Sequence[common.Column], lang: str) -> list[str]:
    cells = []
    for col in columns:
        value = col.value(item, lang)
        if col.link:
            cells.append(md_link(value, item.url))
        else:
            cells.append(md(value, common.TITLE_LIMIT))
    return cells


def _items(report: Report, section: common.Section, limit: int) -> list[str]:
    lang = report.language
    out = ["", f"## {md(i18n.t(lang, section.heading))} ({len(section.items)})", ""]
    if not section.items:
        return [*out, md(i18n.t(lang, "none"))]
    shown = section.items[:limit]
    out += _table(
        [md(i18n.t(lang, c.heading)) for c in section.columns],
        [_item_cells(i, section.columns, lang) for i in shown],
    )
    return out + _more(report, len(section.items) - len(shown))


def _change_table(report: Report, rows: list[tuple[str, ItemRef]], limit: int) -> list[str]:
    if not rows:
        return []
    lang = report.language
    shown = rows[:limit]
    cols = (common.KEY, common.TITLE)
    table = _table(
        [md(i18n.t(lang, c)) for c in ("col_change", "col_key", "col_title", "col_status")],
        [[md(i18n.t(lang, word)), *_item_cells(i, cols, lang), md(i.status)] for word, i in shown],
    )
    return ["", *table, *_more(report, len(rows) - len(shown))]


def gantt_block(report: Report, rows: int = common.GANTT_ROWS) -> list[str]:
    """The timeline as a Mermaid gantt chart (GitHub renders ```mermaid blocks)."""
    bars = report.charts.gantt
    if not bars:
        return []
    lang = report.language
    lines = [
        "```mermaid",
        "gantt",
        f"    title {mermaid_label(report.project.name)}",
        "    dateFormat YYYY-MM-DD",
        "    axisFormat %Y-%m-%d",
    ]
    section = None
    for n, bar in enumerate(bars[:rows]):
        if bar.kind != section:
            section = bar.kind
            lines.append(f"    section {mermaid_label(i18n.t(lang, 'kind_' + bar.kind))}")
        tags = []
        if bar.state == "done":
            tags.append("done")
        elif bar.state in ("late", "at_risk"):
            tags.append("crit")
        if bar.kind == "milestone" and bar.start is None:
            tags.append("milestone")
            span = f"{bar.end.isoformat()}, 0d"
        else:
            span = f"{(bar.start or bar.end).isoformat()}, {bar.end.isoformat()}"
        name = mermaid_label(bar.name if bar.kind == "milestone" else f"{bar.key} {bar.name}")
        lines.append(f"    {name} :{', '.join([*tags, f'g{n}'])}, {span}")
    lines.append("```")
    hidden = len(bars) - min(len(bars), rows)
    if hidden:
        lines += ["", f"_{md(i18n.t(lang, 'gantt_more', count=hidden))}_"]
    return lines


def to_markdown(report: Report, *, limit: int | None = None) -> str:
    """Render the report as GitHub-flavoured Markdown."""
    limit = limit if limit is not None else common.LIMITS["md"]
    lang = report.language
    t = lambda key, **kw: md(i18n.t(lang, key, **kw))  # noqa: E731
    out = [f"# {md(common.title(report))}", ""]
    out += [f"**{md(label)}:** {md(value)}  " for label, value in common.header_fields(report)]
    out += ["", f"## {t('health')}: {md(common.health_heading(report))}", ""]
    out += [f"- {md(reason, 500)}" for reason in report.health.reasons]
    out += ["", f"## {t('progress')}", ""]
    out += [md(line) for line in common.progress_lines(report)]

    out += ["", f"## {t('changes')}", "", md(common.changes_line(report))]
    out += _change_table(report, common.change_rows(report), limit)
    feedback = report.changes_since_last_report.feedback
    if feedback:
        out += [
            "",
            *_table(
                [t("col_day"), t("col_score"), t("col_comment")],
                [
                    [md(i18n.fmt_date(lang, f.day)), str(f.score), md(f.comment, 500)]
                    for f in feedback
                ],
            ),
        ]

    for section in common.sections(report):
        out += _items(report, section, limit)

    out += ["", f"## {t('scope_change')}", "", md(common.scope_line(report))]
    out += _change_table(report, common.scope_rows(report), limit)

    out += ["", f"## {t('milestones')} ({len(report.milestones)})", ""]
    if report.milestones:
        ms = report.milestones[:limit]
        out += _table(
            [t(k) for k in ("col_milestone", "col_due", "col_percent", "col_forecast", "col_state")],
            [
                [md_link(m.name, m.url), md(i18n.fmt_date(lang, m.due_date)),
                 md(i18n.fmt_percent(m.percent_done)), md(i18n.fmt_date(lang, m.forecast)),
                 t("state_" + m.state)]
                for m in ms
            ],
        )  # fmt: skip
        out += _more(report, len(report.milestones) - len(ms))
    else:
        out.append(t("none"))

    out += ["", f"## {t('forecast')}", ""]
    out += [md(line) for line in common.forecast_lines(report)]

    gantt = gantt_block(report)
    if gantt:
        out += ["", f"## {t('gantt')}", "", *gantt]

    if report.closing is not None:
        out += _closing(report)

    out += ["", f"## {t('sources')}", ""]
    out += _table(
        [t(k) for k in ("col_source", "col_kind", "col_last_synced", "col_items")],
        [[md(c) for c in row] for row in common.source_rows(report)],
    )
    out += ["", f"_{t('footer')}_", ""]
    return "\n".join(out)


def _closing(report: Report) -> list[str]:
    lang = report.language
    c = report.closing
    assert c is not None
    t = lambda key, **kw: md(i18n.t(lang, key, **kw))  # noqa: E731
    out = ["", f"## {t('closing')}", ""]
    out += _table(
        [" ", t("closing_planned"), t("closing_actual")],
        [[md(a), md(b), md(c_)] for a, b, c_ in common.closing_table(report)],
    )
    slip = common.slip_text(report)
    if slip:
        out += ["", f"**{t('closing_slip')}:** {md(slip)}"]
    out += [""] + [md(line) for line in common.closing_lines(report)]
    if c.feedback.entries:
        out += ["", *_table(
            [t("col_day"), t("col_score"), t("col_comment")],
            [[md(i18n.fmt_date(lang, f.day)), str(f.score), md(f.comment, 500)]
             for f in c.feedback.entries],
        )]  # fmt: skip
    if c.lessons_learned:
        # The project manager's own Markdown file: included as written.
        out += ["", f"### {t('lessons')}", "", c.lessons_learned]
    return out

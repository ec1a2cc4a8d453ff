"""Self-contained HTML: one file, inline CSS and SVG charts, print-friendly, every value escaped.

The template is rendered by jinja2 with autoescape on; the only unescaped markup is the SVG
matplotlib writes (which escapes the text it draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from sync import i18n
from sync.render import common
from sync.render.neutralise import plain, safe_url
from sync.report import ItemRef, Report


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sync.render", "templates"),
        autoescape=True,  # every template here is HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["plain"] = plain
    env.filters["safe_url"] = safe_url
    return env


def to_html(report: Report, *, limit: int | None = None, charts: bool = True) -> str:
    """Render the report as one self-contained HTML document."""
    limit = limit if limit is not None else common.LIMITS["html"]
    lang = report.language
    sections = common.sections(report)
    burnup = gantt = None
    if charts:
        from sync.render import charts as ch

        burnup = ch.burnup_svg(report)
        gantt = ch.gantt_svg(report)

    def t(key: str, **kw: Any) -> str:
        return i18n.t(lang, key, **kw)

    context = {
        "r": report,
        "t": t,
        "d": lambda value: i18n.fmt_date(lang, value),
        "num": i18n.fmt_number,
        "pct": i18n.fmt_percent,
        "lang": lang,
        "title": common.title(report),
        "header": common.header_fields(report),
        "health_heading": common.health_heading(report),
        "progress_lines": common.progress_lines(report),
        "changes_line": common.changes_line(report),
        "change_rows": _change_rows(common.change_rows(report), limit, t),
        "scope_line": common.scope_line(report),
        "scope_rows": _change_rows(common.scope_rows(report), limit, t),
        "sections": sections,
        "section_rows": {s.id: item_rows(s.items[:limit], s.columns, lang) for s in sections},
        "forecast_lines": common.forecast_lines(report),
        "closing_lines": common.closing_lines(report),
        "closing_table": common.closing_table(report),
        "slip": common.slip_text(report),
        "sources": common.source_rows(report),
        "limit": limit,
        "title_limit": common.TITLE_LIMIT,
        "more_url": safe_url(report.more_url),
        "burnup_svg": burnup,
        "gantt_svg": gantt,
        "gantt_hidden": max(len(report.charts.gantt) - common.GANTT_ROWS, 0),
        "percent_done": report.progress.percent_done or 0,
    }
    return _env().get_template("report.html.j2").render(context)


def _esc(text: str) -> str:
    """Escape as markupsafe does (the same five entities), for rows built as plain text."""
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


def _row(html: str) -> Markup:
    """Mark a table row built here as safe: every value in it went through `_esc`."""
    return Markup(html)  # noqa: S704


def _link(text: str, url: str | None) -> str:
    """The template's `link` macro, escaped: the text, as a link where the URL is safe."""
    label = _esc(plain(text, common.TITLE_LIMIT))
    href = safe_url(url)
    return f'<a href="{_esc(href)}" rel="noopener noreferrer">{label}</a>' if href else label


def item_rows(
    items: Sequence[ItemRef], columns: Sequence[common.Column], lang: str
) -> list[Markup]:
    """Table rows of `items`, every value escaped (what the template did cell by cell; rows
    are built here because 1,600 rows of macro calls were most of the render time)."""
    limit = common.TITLE_LIMIT
    return [
        _row(
            "<tr>"
            + "".join(
                f'<td class="key">{_link(c.value(item, lang), item.url)}</td>'
                if c.link
                else f"<td>{_esc(plain(c.value(item, lang), limit))}</td>"
                for c in columns
            )
            + "</tr>"
        )
        for item in items
    ]


@dataclass(frozen=True)
class _ChangeRows:
    count: int  # all rows, shown or not
    html: list[Markup]  # the shown ones


def _change_rows(rows: list[tuple[str, ItemRef]], limit: int, t: Any) -> _ChangeRows:
    """The rows of a "changes" table (change word, key, title, status), the first `limit`."""
    html = [
        _row(
            f'<tr><td>{_esc(t(word))}</td><td class="key">{_link(item.key, item.url)}</td>'
            f"<td>{_esc(plain(item.title, common.TITLE_LIMIT))}</td>"
            f"<td>{_esc(plain(item.status, 80))}</td></tr>"
        )
        for word, item in rows[:limit]
    ]
    return _ChangeRows(len(rows), html)

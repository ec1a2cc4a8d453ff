"""Self-contained HTML: one file, inline CSS and SVG charts, print-friendly, every value escaped.

The template is rendered by jinja2 with autoescape on; the only unescaped markup is the SVG
matplotlib writes (which escapes the text it draws).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from sync import i18n
from sync.render import common
from sync.render.neutralise import plain, safe_url
from sync.report import Report


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
        "change_rows": common.change_rows(report),
        "scope_line": common.scope_line(report),
        "scope_rows": common.scope_rows(report),
        "sections": common.sections(report),
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

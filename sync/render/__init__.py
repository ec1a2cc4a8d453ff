"""Renderers: one `Report` value in, Markdown, HTML, JSON or Jira ADF out (DESIGN §7).

Each format module is imported on first use: HTML pulls in jinja2 and matplotlib, which a
`pmsync status` run should never pay for.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sync.report import Report

Format = Literal["md", "html", "json", "adf"]
FORMATS: tuple[str, ...] = ("md", "html", "json", "adf")


def to_markdown(report: Report) -> str:
    from sync.render.markdown import to_markdown as render_md

    return render_md(report)


def to_html(report: Report) -> str:
    from sync.render.html import to_html as render_html

    return render_html(report)


def to_json(report: Report) -> str:
    """The report's JSON contract, pretty-printed, non-ASCII kept as is."""
    return report.model_dump_json(indent=2) + "\n"


def to_adf(report: Report) -> dict[str, Any]:
    from sync.render.adf import to_adf as render_adf

    return render_adf(report)


def render(report: Report, fmt: Format) -> str:
    """Return the report in `fmt` as text (ADF as its JSON)."""
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        return to_html(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "adf":
        return json.dumps(to_adf(report), ensure_ascii=False, separators=(",", ":"))
    from sync.errors import ConfigError

    raise ConfigError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")

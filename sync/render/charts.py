"""The burn-up and Gantt charts as inline SVG, drawn by matplotlib (Agg backend).

matplotlib is imported on first use only, so the CLI starts fast. Text stays text in the
SVG (`svg.fonttype = none`: small files, selectable words) and math parsing is off, so a
title with `$` is shown as typed. Element ids get a per-chart prefix so two charts can live
in one HTML page.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from functools import cache
from typing import Any

from sync import i18n
from sync.render import common
from sync.render.neutralise import plain
from sync.report import Report

COLORS = {
    "scope": "#5b6770",
    "done": "#1a7f37",
    "target": "#cf222e",
    "forecast": "#9a6700",
    "period": "#ddf4ff",
    "done_bar": "#1a7f37",
    "on_track": "#0969da",
    "at_risk": "#bf8700",
    "late": "#cf222e",
}
# Chinese text needs a CJK font for measuring; the first installed one is used as fallback.
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
)
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "pmsync",
    "font.size": 9,
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
}


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """Return a new (figure, axes) without pyplot (no global figure manager, no GUI backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


@cache
def _families() -> list[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *[name for name in _CJK_FONTS if name in installed][:1]]


# Layout, in inches. `tight_layout` measured every text again with a second renderer and
# walked every tick (half of each chart's time), so the margins are set here from the few
# texts that decide them, measured as the SVG backend measures text.
_PAD = 1.08 * 9 / 72  # tight_layout's padding: 1.08 font sizes
_TICKS = (3.5 + 3.5 + 9 * 1.2) / 72  # tick, label pad and one line of tick labels
_OVERHANG = 0.2  # half of the last date label, past the axes' right end


@cache
def _measurer() -> Any:
    from matplotlib.textpath import TextToPath

    return TextToPath()


def _width(texts: Iterable[str], size: float) -> float:
    """The width of the widest of `texts` in inches (inside `_style()`)."""
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(family=_families(), size=size)
    measure = _measurer().get_text_width_height_descent
    return max((measure(t, prop, ismath=False)[0] for t in texts if t), default=0.0) / 72


def _place(fig: Any, *, left: float, bottom: float, right: float, top: float) -> None:
    """Set the axes' margins in inches."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height
    )


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context({**_RC, "font.family": _families()}), warnings.catch_warnings():
        # Glyphs no installed font has (rare scripts, some emoji): the browser draws them.
        warnings.simplefilter("ignore", UserWarning)
        yield


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_ID = re.compile(r'(\bid=")|(url\(#)|(href="#)')


def _svg(fig: Any, prefix: str) -> str:
    """Return the figure as an inline <svg> element (no XML prolog, ids prefixed)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = _PROLOG.sub("", buf.getvalue(), count=1)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = _ID.sub(lambda m: m.group(0) + f"{prefix}-", text)
    # Let CSS size the chart to the page width, keeping the aspect ratio of the viewBox.
    text = re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 width="100%"', text, count=1
    )
    return text.strip()


def burnup_svg(report: Report) -> str | None:
    """Scope and done over time, the report period shaded, target and P85 marked."""
    points = report.charts.burnup
    if len(points) < 2:
        return None
    with _style():
        return _draw_burnup(report)


def _draw_burnup(report: Report) -> str:
    points = report.charts.burnup
    lang = report.language
    days = [p.day for p in points]
    fig, ax = _figure(8, 3.2)
    ax.axvspan(
        report.period.start,
        report.period.end,
        color=COLORS["period"],
        lw=0,
        label=i18n.t(lang, "chart_period"),
    )
    ax.step(
        days,
        [p.scope for p in points],
        where="post",
        color=COLORS["scope"],
        lw=1.6,
        label=i18n.t(lang, "chart_scope"),
    )
    ax.fill_between(
        days, [p.done for p in points], step="post", color=COLORS["done"], alpha=0.18, lw=0
    )
    ax.step(
        days,
        [p.done for p in points],
        where="post",
        color=COLORS["done"],
        lw=1.8,
        label=i18n.t(lang, "chart_done"),
    )
    right = days[-1]
    f = report.forecast
    if f.p85 is not None and f.p85 <= days[-1] + timedelta(days=365):
        ax.axvline(
            f.p85, color=COLORS["forecast"], ls="--", lw=1.2, label=i18n.t(lang, "chart_forecast")
        )
        ax.plot(
            [f.window_end, f.p85],
            [points[-1].done, points[-1].scope],
            color=COLORS["forecast"],
            lw=1,
            ls=":",
        )
        right = max(right, f.p85)
    if f.target_date is not None and f.target_date <= days[-1] + timedelta(days=365):
        ax.axvline(
            f.target_date, color=COLORS["target"], lw=1.2, label=i18n.t(lang, "chart_target")
        )
        right = max(right, f.target_date)
    ax.set_xlim(days[0], right + timedelta(days=1))
    ax.set_ylim(bottom=0)
    ax.set_ylabel(i18n.t(lang, "chart_items"))
    _date_axis(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False, fontsize=8, ncols=5)
    low, high = ax.get_ylim()
    ticks = [v for v in ax.yaxis.get_major_locator()() if low <= v <= high]
    labels = ax.yaxis.get_major_formatter().format_ticks(ticks)
    # The legend (one row of 8 pt text and its padding) hangs 10% of the axes' height below.
    top = _PAD + 9 * 0.6 / 72
    legend = (8 * 1.2 + 2 * 0.4 * 8) / 72
    _place(
        fig,
        left=_PAD + (9 * 1.2 + 4) / 72 + _TICKS - 9 * 1.2 / 72 + _width(labels, 9),
        bottom=(_PAD + legend + 0.1 * (fig.get_size_inches()[1] - top)) / 1.1,
        right=_PAD + _OVERHANG,
        top=top,
    )
    return _svg(fig, "burnup")


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))


def gantt_svg(report: Report, rows: int = common.GANTT_ROWS) -> str | None:
    """Milestones (diamonds, or bars when they have a start) and epics by start and due date."""
    bars = report.charts.gantt[:rows]
    if not bars:
        return None
    with _style():
        return _draw_gantt(report, bars)


def _draw_gantt(report: Report, bars: list[Any]) -> str:
    from matplotlib.transforms import ScaledTranslation

    fig, ax = _figure(8, 0.9 + 0.32 * len(bars))
    lo: date = min((b.start or b.end) for b in bars)
    hi: date = max(b.end for b in bars)
    colors = [COLORS["done_bar"] if b.state == "done" else COLORS[b.state] for b in bars]
    # One call per layer, not per bar: each call makes its own container of artists.
    spans = [y for y, b in enumerate(bars) if b.start is not None]
    if spans:
        starts = [bars[y].start for y in spans]
        widths = [max((bars[y].end - bars[y].start).days, 1) for y in spans]
        ax.barh(
            spans,
            widths,
            left=starts,
            height=0.55,
            color=[colors[y] for y in spans],
            alpha=0.28,
            lw=0,
        )
        done = [
            (y, s, w * (bars[y].percent_done or 0) / 100)
            for y, s, w in zip(spans, starts, widths, strict=True)
        ]
        done = [d for d in done if d[2]]
        if done:
            ax.barh(
                [d[0] for d in done],
                [d[2] for d in done],
                left=[d[1] for d in done],
                height=0.55,
                color=[colors[d[0]] for d in done],
                lw=0,
            )
    points = [y for y, b in enumerate(bars) if b.start is None]
    for color in dict.fromkeys(colors[y] for y in points):
        ys = [y for y in points if colors[y] == color]
        ax.plot([bars[y].end for y in ys], ys, ls="none", marker="D", color=color, ms=7)
    today = report.period.end
    ax.axvline(today, color="#57606a", lw=1, ls="--")
    if report.forecast.target_date is not None:
        ax.axvline(report.forecast.target_date, color=COLORS["target"], lw=1)
        lo, hi = min(lo, report.forecast.target_date), max(hi, report.forecast.target_date)
    lo, hi = min(lo, today), max(hi, today)
    ax.set_xlim(lo - timedelta(days=2), hi + timedelta(days=2))
    ax.set_ylim(len(bars) - 0.5, -0.5)
    # Row names as texts left of the axes rather than tick labels: a tick is five artists,
    # and 40 of them cost more than everything else in the chart.
    ax.set_yticks([])
    left = ax.get_yaxis_transform() + ScaledTranslation(-4 / 72, 0, fig.dpi_scale_trans)
    names = [plain(b.name if b.kind == "milestone" else f"{b.key} {b.name}", 48) for b in bars]
    for y, name in enumerate(names):
        ax.text(0, y, name, transform=left, ha="right", va="center")
    ax.grid(axis="y", visible=False)
    _date_axis(ax)
    _place(
        fig,
        left=_PAD + 4 / 72 + _width(names, 9),
        bottom=_PAD + _TICKS,
        right=_PAD + _OVERHANG,
        top=_PAD,
    )
    return _svg(fig, "gantt")

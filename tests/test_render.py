"""Renderers: a hostile store renders safely in every format; ADF validates; lists truncate."""

from __future__ import annotations

import html
import json
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import jsonschema
import pytest

from sync import i18n
from sync.errors import ConfigError
from sync.model import Milestone
from sync.render import charts, render, to_adf, to_html, to_json, to_markdown
from sync.render.adf import text_length
from sync.render.markdown import gantt_block
from sync.render.neutralise import md, mermaid_label, plain, safe_url
from sync.report import Report
from tests.test_report import END, C, at, build, config, item, project, store_with

LONG = "Very long title " * 400
HOSTILE = [
    "<script>alert(1)</script>",
    "</table></td><b>broken",
    "@everyone please look",
    "[x](javascript:alert(1))",
    "🚀 Launch 🎉 party",
    LONG,
    "支付页面重构（第二阶段）",
    "a | b | c",
    "$\\frac{1}{2}$ and $x^2$",
    "line one\n# Heading\n- list item\n\n| x |",
    "`code` **bold** _em_ ~~gone~~",
    "\u202eevil bidi\u202c",
    "section Injected",
    "Task : crit, done, 2020-01-01, 2020-02-01",
    "{{ 7*7 }} {% raw %}",
    '"><img src=x onerror=alert(1)>',
    "]]></text><script>x</script>",
    "&amp; &lt;entity&gt;",
    "1. ordered",
    "- dash",
]
BAD_URLS = ["javascript:alert(1)", "https://ok.example/a\"onmouseover=alert(1)", "data:text/html,x",
            "https://ok.example/(a)|b<c>", "//no-scheme.example/x"]  # fmt: skip


def hostile_report(language: str = "en", **kw: Any) -> Report:
    items = []
    for n, title in enumerate(HOSTILE):
        common = {"title": title, "url": BAD_URLS[n % len(BAD_URLS)] if n % 2 else
                  f"https://tracker.example/H-{n}", "assignee": title[:40],
                  "status": title[:30] or "x"}  # fmt: skip
        items += [
            item(f"H-{n}a", C.DONE, completed_at=at(END - timedelta(days=n % 5)),
                 milestone_id="m1", **common),
            item(f"H-{n}b", C.IN_PROGRESS, due_date=END - timedelta(days=1), blocked=True,
                 labels=["needs-client", "change-request"], parent_id="E-1", **common),
            item(f"H-{n}c", C.TODO, due_date=END + timedelta(days=2), **common),
        ]  # fmt: skip
    items.append(item("E-1", C.IN_PROGRESS, kind="epic", title=HOSTILE[0] + HOSTILE[13],
                      start_date=date(2026, 11, 1), due_date=date(2026, 12, 20)))  # fmt: skip
    store = store_with(items)
    store.upsert_milestones("src", [
        Milestone(source="src", id="m1", name=HOSTILE[0], due_date=date(2026, 12, 1),
                  url="javascript:alert(1)"),
        Milestone(source="src", id="m2", name="section click call", due_date=date(2026, 12, 5)),
    ])  # fmt: skip
    store.add_feedback("p", date(2026, 11, 25), 3, HOSTILE[0])
    cfg = config(project(name="Relaunch <b>&", client="ACME </dd>", language=language,
                         target_date=date(2027, 1, 31), start_date=date(2026, 10, 1)))  # fmt: skip
    return build(store, cfg, audience="internal", **kw)


# -- HTML -------------------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.ends: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_every_hostile_value() -> None:
    out = to_html(hostile_report())
    page = _Collect()
    page.feed(out)
    names = [t for t, _ in page.tags]
    assert "script" not in names and "img" not in names and "b" not in names
    for _tag, attrs in page.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (name, value)
            if name == "href":
                assert value is not None
                assert value.startswith(("https://", "http://", "#")), value
                assert '"' not in value and "<" not in value
    assert names.count("table") == page.ends.count("table")
    assert names.count("td") == page.ends.count("td")
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text  # shown, as text
    assert "支付页面重构（第二阶段）" in text and "🚀 Launch 🎉 party" in text
    assert "{{ 7*7 }}" in text and "49" not in text.split("{{ 7*7 }}")[0][-3:]
    assert "\u202e" not in out
    # Long titles are clipped for people (the JSON keeps them whole).
    assert LONG.strip() not in text
    assert "Very long title Very long title" in text


def test_html_is_self_contained_with_two_inline_svg_charts() -> None:
    out = to_html(hostile_report())
    assert out.startswith("<!DOCTYPE html>")
    assert out.count("<svg") == 2 and "<?xml" not in out and "<!DOCTYPE svg" not in out
    assert 'id="burnup-chart"' in out and 'id="gantt-chart"' in out
    assert "@media print" in out and "@page" in out
    assert not re.search(r"""(src|href)=["'](?!https?://|#)""", out)
    assert "<link" not in out  # no external stylesheet
    # Chart text stays text (svg.fonttype none) and math is not parsed: `$` shown as typed.
    assert "<text" in out
    assert "font-family" in out
    ids = re.findall(r'\bid="([^"]+)"', out)
    assert len(ids) == len(set(ids))


def test_chart_labels_are_escaped_in_the_svg() -> None:
    out = to_html(hostile_report())
    svg = out[out.index('<figure class="chart" id="gantt-chart">') :]
    svg = svg[: svg.index("</figure>")]
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg


# -- Markdown ---------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\]\\])*)\]\(([^)]*)\)")


def _unescaped(line: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), line))


def test_markdown_titles_cannot_add_structure() -> None:
    out = to_markdown(hostile_report())
    prose, _, rest = out.partition("```mermaid")
    _mermaid, _, tail = rest.partition("```")
    text = prose + tail
    for line in text.splitlines():
        assert _unescaped(line, "<") == 0, line
        assert _unescaped(line, "$") == 0, line
        assert _unescaped(line, "`") == 0, line
    for _label, target in _LINK.findall(text):
        assert target.startswith("https://"), target
        assert not re.search(r"[\s<>\"'()|]", target), target
    # Every table row has exactly as many cells as its header.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            width = _unescaped(lines[i - 1], "|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert _unescaped(lines[j], "|") == width, lines[j]
                j += 1
    headings = [line for line in lines if line.startswith("#")]
    assert all(h.startswith(("# ", "## ", "### ")) for h in headings)
    assert not any(line.startswith(("# Heading", "- list item")) for line in lines)
    assert "\\[x\\](javascript:alert(1))" in text
    assert "\\<script\\>alert(1)\\</script\\>" in text
    assert "@everyone" in text  # mention neutralising is the GitHub connector's job
    assert "支付页面重构（第二阶段）" in text and "🚀 Launch 🎉 party" in text


def test_markdown_gantt_lines_are_plain_mermaid_tasks() -> None:
    report = hostile_report()
    block = gantt_block(report)
    assert block[0] == "```mermaid" and block[-1] == "```"
    task = re.compile(r"^    [^:\n]+ :((done|crit|milestone), )*g\d+, \d{4}-\d{2}-\d{2}, "
                      r"(\d{4}-\d{2}-\d{2}|0d)$")  # fmt: skip
    for line in block[2:-1]:
        if line.startswith(("    title ", "    dateFormat ", "    axisFormat ", "    section ")):
            continue
        assert task.match(line), line
    assert "    · section click call :milestone, g1, 2026-12-05, 0d" in block


def test_mermaid_label_and_md_helpers() -> None:
    assert mermaid_label("Task : crit; #x <b>") == "Task crit x b"
    assert mermaid_label("click here") == "· click here"
    assert mermaid_label("") == "-"
    assert md("1. x") == "1\\. x" and md("- x") == "\\- x" and md("a|b") == "a\\|b"
    assert plain("a\n\tb\x00c\u202e", 10) == "a bc"
    assert plain("x" * 20, 10) == "x" * 9 + "…"


@pytest.mark.parametrize(
    ("url", "safe"),
    [("https://ok.example/a b", None), ("javascript:alert(1)", None), ("JAVASCRIPT:x", None),
     ("data:text/html,x", None), ("//host/x", None), ("https://", None), (None, None),
     ("https://ok.example/(a)|b<c>\"", "https://ok.example/%28a%29%7Cb%3Cc%3E%22"),
     ("http://ok.example/p?q=1&r=%20#f", "http://ok.example/p?q=1&r=%20#f")],
)  # fmt: skip
def test_safe_url(url: str | None, safe: str | None) -> None:
    assert safe_url(url) == safe


# -- JSON and ADF -----------------------------------------------------------------------------


def test_json_keeps_every_title_exactly() -> None:
    report = hostile_report()
    data = json.loads(to_json(report))
    titles = {i["title"] for i in data["completed"]}
    assert titles == set(HOSTILE)
    assert data == json.loads(render(report, "json"))


_INLINE = {"$ref": "#/definitions/text"}
_BLOCK = {"anyOf": [{"$ref": f"#/definitions/{n}"}
                    for n in ("paragraph", "heading", "bulletList", "table", "rule")]}  # fmt: skip
ADF_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["type", "version", "content"],
    "additionalProperties": False,
    "properties": {"type": {"const": "doc"}, "version": {"const": 1},
                   "content": {"type": "array", "items": _BLOCK}},
    "definitions": {
        "text": {
            "type": "object", "required": ["type", "text"], "additionalProperties": False,
            "properties": {
                "type": {"const": "text"}, "text": {"type": "string", "minLength": 1},
                "marks": {"type": "array", "items": {"anyOf": [
                    {"type": "object", "additionalProperties": False,
                     "properties": {"type": {"enum": ["strong", "em", "code"]}}, "required": ["type"]},
                    {"type": "object", "additionalProperties": False, "required": ["type", "attrs"],
                     "properties": {"type": {"const": "link"}, "attrs": {
                         "type": "object", "required": ["href"], "additionalProperties": False,
                         "properties": {"href": {"type": "string", "pattern": "^https?://"}}}}},
                ]}},
            },
        },
        "paragraph": {"type": "object", "required": ["type"], "additionalProperties": False,
                      "properties": {"type": {"const": "paragraph"},
                                     "content": {"type": "array", "items": _INLINE}}},
        "heading": {"type": "object", "required": ["type", "attrs"], "additionalProperties": False,
                    "properties": {"type": {"const": "heading"},
                                   "attrs": {"type": "object", "required": ["level"],
                                             "properties": {"level": {"type": "integer", "minimum": 1,
                                                                      "maximum": 6}}},
                                   "content": {"type": "array", "items": _INLINE}}},
        "bulletList": {"type": "object", "required": ["type", "content"], "additionalProperties": False,
                       "properties": {"type": {"const": "bulletList"},
                                      "content": {"type": "array", "minItems": 1,
                                                  "items": {"$ref": "#/definitions/listItem"}}}},
        "listItem": {"type": "object", "required": ["type", "content"], "additionalProperties": False,
                     "properties": {"type": {"const": "listItem"},
                                    "content": {"type": "array", "minItems": 1,
                                                "items": [{"$ref": "#/definitions/paragraph"}],
                                                "additionalItems": _BLOCK}}},
        "table": {"type": "object", "required": ["type", "content"], "additionalProperties": False,
                  "properties": {"type": {"const": "table"},
                                 "attrs": {"type": "object", "additionalProperties": False,
                                           "properties": {"isNumberColumnEnabled": {"type": "boolean"},
                                                          "layout": {"enum": ["default", "center", "wide", "full-width", "align-start"]}}},
                                 "content": {"type": "array", "minItems": 1,
                                             "items": {"$ref": "#/definitions/tableRow"}}}},
        "tableRow": {"type": "object", "required": ["type", "content"], "additionalProperties": False,
                     "properties": {"type": {"const": "tableRow"},
                                    "content": {"type": "array", "minItems": 1,
                                                "items": {"$ref": "#/definitions/cell"}}}},
        "cell": {"type": "object", "required": ["type", "content"], "additionalProperties": False,
                 "properties": {"type": {"enum": ["tableCell", "tableHeader"]},
                                "attrs": {"type": "object"},
                                "content": {"type": "array", "minItems": 1, "items": _BLOCK}}},
        "rule": {"type": "object", "required": ["type"], "additionalProperties": False,
                 "properties": {"type": {"const": "rule"}}},
    },
}  # fmt: skip


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "text" else []
        return own + [t for c in node.get("content", ()) for t in _texts(c)]
    return []


def test_adf_validates_and_keeps_hostile_text_inert() -> None:
    for language in ("en", "zh-CN"):
        adf = to_adf(hostile_report(language))
        jsonschema.validate(adf, ADF_SCHEMA)
        texts = _texts(adf)
        assert all(texts) and all("\n" not in t and "\u202e" not in t for t in texts)
        assert "<script>alert(1)</script>" in texts
        assert text_length(adf) < 32_767
    assert json.loads(render(hostile_report(), "adf")) == to_adf(hostile_report())


def test_adf_shrinks_a_huge_report_under_jiras_limit() -> None:
    items = [item(f"B-{n}", C.DONE, title=f"{n} " + "x" * 300, completed_at=at(END))
             for n in range(400)]  # fmt: skip
    items += [item(f"O-{n}", C.TODO, title="y" * 300, due_date=END - timedelta(days=3))
              for n in range(400)]  # fmt: skip
    report = build(store_with(items), config())
    adf = to_adf(report)
    jsonschema.validate(adf, ADF_SCHEMA)
    assert text_length(adf) <= 30_000
    texts = _texts(adf)
    assert any(t.startswith("and ") and t.endswith(" more") for t in texts)


# -- truncation, languages, dispatch ----------------------------------------------------------


def long_report() -> Report:
    items = [item(f"L-{n}", C.DONE, completed_at=at(END)) for n in range(60)]
    return build(store_with(items), config())


def test_long_lists_say_how_many_more_and_link_when_they_can() -> None:
    report = long_report()
    out = to_markdown(report)
    assert "_and 35 more_" in out
    linked = to_markdown(report.with_more_url("https://reports.example/acme?x=(1)"))
    assert "_and 35 more ([full list](https://reports.example/acme?x=%281%29))_" in linked
    html = to_html(report.with_more_url("https://reports.example/acme"))
    assert html.count("<tr>") >= 60  # HTML shows up to 200 rows
    adf = to_adf(report.with_more_url("https://reports.example/acme"))
    paras = [n for n in adf["content"] if n["type"] == "paragraph"]
    more = [p for p in paras if p.get("content") and p["content"][0]["text"] == "and 40 more"]
    assert more and more[0]["content"][2]["marks"] == [
        {"type": "link", "attrs": {"href": "https://reports.example/acme"}}
    ]
    assert report.more_url is None  # with_more_url returns a copy


def test_message_catalogues_match() -> None:
    en, zh = i18n.MESSAGES["en"], i18n.MESSAGES["zh-CN"]
    assert set(en) == set(zh)
    fields = re.compile(r"{(\w+)}")
    for key in en:
        assert sorted(fields.findall(en[key])) == sorted(fields.findall(zh[key])), key
    assert i18n.fmt_date("en", date(2026, 11, 26)) == "26 Nov 2026"
    assert i18n.fmt_date("zh-CN", date(2026, 11, 26)) == "2026年11月26日"
    assert i18n.fmt_days("en", 1) == "1 day" and i18n.fmt_days("zh-CN", 3) == "3 天"
    assert [i18n.fmt_signed(v) for v in (2, 0, -1.5, None)] == ["+2", "±0", "-1.5", "–"]


@pytest.mark.parametrize("fmt", ["md", "html", "adf"])
def test_chinese_report_in_every_format(fmt: str) -> None:
    out = render(hostile_report("zh-CN"), fmt)  # type: ignore[arg-type]
    for word in ("项目状态报告", "健康状况", "本期完成", "里程碑", "预测", "数据来源"):
        assert word in out, word
    assert "2026年11月" in out
    assert "Status report" not in out and "Completed this period" not in out


def test_every_heading_is_translated_in_markdown() -> None:
    report = hostile_report("zh-CN")
    out = to_markdown(report)
    for key in ("progress", "completed", "in_progress", "upcoming", "overdue", "blocked",
                "needs_client_input", "change_requests", "scope_change", "milestones",
                "forecast", "gantt", "changes", "sources"):  # fmt: skip
        assert f"## {i18n.t('zh-CN', key)}" in out, key


def test_closing_sections_render(tmp_path: Any) -> None:
    from tests.test_report import Config, SourceSettings

    (tmp_path / "lessons.md").write_text("Keep **scope** small.\n<script>x</script>", "utf-8")
    store = store_with([item("A-1", C.DONE, completed_at=at(END))])
    store.add_feedback("p", END, 5, "Great <b>work</b>")
    cfg = Config(sources={"src": SourceSettings(kind="csv")},
                 projects={"p": project(lessons_learned="lessons.md")}, base_dir=tmp_path)  # fmt: skip
    report = build(store, cfg, closing=True)
    md_out = to_markdown(report)
    assert "# Closing report: Relaunch" in md_out
    assert "## Outcome" in md_out and "### Lessons learned" in md_out
    assert "Keep **scope** small." in md_out  # the project manager's own Markdown
    assert "Great \\<b\\>work\\</b\\>" in md_out
    html = to_html(report)
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "Great &lt;b&gt;work" in html
    jsonschema.validate(to_adf(report), ADF_SCHEMA)


def test_unknown_format() -> None:
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        render(long_report(), "pdf")  # type: ignore[arg-type]


def test_html_rows_escape_exactly_as_the_template_did() -> None:
    title = 'Tom & Jerry\'s "<b>best</b>"'
    store = store_with(
        [
            item("X-1", C.IN_PROGRESS, title=title, status="a<b", assignee="O'Neil"),
            item("X-2", C.IN_PROGRESS, created_at=at("2026-11-10"), url="javascript:alert(1)"),
        ]
    )
    out = to_html(build(store, config(project(start_date=date(2026, 10, 1)))))
    escaped = "Tom &amp; Jerry&#39;s &#34;&lt;b&gt;best&lt;/b&gt;&#34;"
    link = '<td class="key"><a href="https://tracker.example/X-1" rel="noopener noreferrer">X-1</a></td>'
    # In progress: key, title, status, assignee, due.
    assert f"<tr>{link}<td>{escaped}</td><td>a&lt;b</td><td>O&#39;Neil</td><td></td></tr>" in out
    # Scope change: no link for an unsafe URL, the title as text.
    assert (
        '<tr><td>added</td><td class="key">X-2</td><td>Title of X-2</td><td>Doing</td></tr>' in out
    )


def test_gantt_names_every_row_in_order() -> None:
    report = hostile_report()
    svg = charts.gantt_svg(report)
    assert svg is not None
    names = re.findall(r"<text[^>]*>(.*?)</text>", svg, re.S)
    expected = [
        plain(b.name if b.kind == "milestone" else f"{b.key} {b.name}", 48)
        for b in report.charts.gantt
    ]
    shown = [html.unescape(n.strip()) for n in names if html.unescape(n.strip()) in expected]
    assert shown == expected

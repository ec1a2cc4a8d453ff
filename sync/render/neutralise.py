"""Make source text inert in each output format: titles come from tools anyone can write to.

GitHub @mention and #reference neutralising is the GitHub connector's job; this module only
makes sure a title cannot become Markdown/HTML structure, a link, or a Mermaid statement.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, urlsplit

# C0/C1 controls and the bidirectional overrides that can reorder what a reader sees.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
# Characters with a meaning anywhere in a line of GitHub-flavoured Markdown, including `$`
# (GitHub math) and `|` (table cells); a backslash makes each one literal. `(` needs no
# escape once `[` and `]` have one: no link can start.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&$])")
# At the start of a line these open a list, a heading underline or an ordered list.
_MD_LEADING = re.compile(r"^(?:([-+=])|(\d+)([.)]))")
_MERMAID_KEYWORDS = {
    "title", "dateformat", "axisformat", "tickinterval", "excludes", "includes",
    "todaymarker", "section", "click", "weekday", "inclusiveenddates", "topaxis",
    "displaymode", "acctitle", "accdescr", "gantt", "call", "href",
}  # fmt: skip


def plain(text: str | None, limit: int | None = None) -> str:
    """Return `text` on one line, without control characters, clipped to `limit` characters."""
    if not text:
        return ""
    text = _SPACES.sub(" ", _INVISIBLE.sub("", text)).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def md(text: str | None, limit: int | None = None) -> str:
    """Return `text` as literal Markdown inline text (one line, every special escaped)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", plain(text, limit))
    return _MD_LEADING.sub(_escape_leading, escaped)


def _escape_leading(m: re.Match[str]) -> str:
    if m.group(1):
        return "\\" + m.group(1)
    return m.group(2) + "\\" + m.group(3)


def safe_url(url: str | None) -> str | None:
    """Return an http(s) URL with the characters that could end a link percent-encoded.

    Anything else (javascript:, data:, relative or malformed URLs) gives None: no link.
    """
    if not url:
        return None
    url = url.strip()
    if _INVISIBLE.search(url) or _SPACES.search(url):  # `\s` is exactly str.isspace()
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # Keep the URL's own structure; encode what could close a Markdown link or an attribute.
    return quote(url, safe="/:?#[]@!$&*+,;=%-._~")


def md_link(text: str, url: str | None) -> str:
    """Return `[text](url)` for a safe URL, else the escaped text alone."""
    label = md(text, 120)
    href = safe_url(url)
    if href is None or not label:
        return label
    return f"[{label}]({href})"


def mermaid_label(text: str | None, limit: int = 60) -> str:
    """Return text that Mermaid's gantt parser reads as a plain task name, never a statement."""
    cleaned = "".join(
        c if c.isalnum() or c in " -_.,/+'()" or unicodedata.category(c).startswith("L") else " "
        for c in plain(text)
    )
    cleaned = _SPACES.sub(" ", cleaned).strip() or "-"
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    first = cleaned.split(" ", 1)[0].casefold()
    if first in _MERMAID_KEYWORDS:
        cleaned = "· " + cleaned
    return cleaned

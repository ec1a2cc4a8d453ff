"""Logging: human lines (default) or one JSON object per line (`--log-format json`).

Levels: warnings and errors by default (cron mails any output, so a healthy run says
nothing); `--log-format json` adds the info lines a log shipper wants (each run, source and
publication with counts and durations); `-v` adds debug lines. Every record passes a filter
that replaces each configured secret (`Config.secrets`) with `***` in its message, its
arguments, its extra fields and its traceback, so no secret reaches a log.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
_HANDLER_NAME = "pmsync"
# Attributes every LogRecord has: anything else came in through `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class RedactSecrets(logging.Filter):
    """Replace every secret in a record with `***` (the secrets are read at each record)."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self.secrets = secrets

    def _redact(self, text: str, secrets: list[str]) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = sorted({s for s in self.secrets() if s}, key=len, reverse=True)
        if not secrets:
            return True
        record.msg = self._redact(record.getMessage(), secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text, secrets)
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._redact(value, secrets))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever `sys.stderr` is when a record is emitted."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(
    fmt: LogFormat = "text",
    *,
    verbose: bool = False,
    secrets: Callable[[], Iterable[str]] = tuple,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Log to stderr (or `stream`) in `fmt`, replacing an earlier setup; return the handler.

    The handler does the level filtering; the root logger is only lowered when needed, so
    a level set elsewhere (a test's log capture) is kept.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(stream) if stream else _Stderr()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactSecrets(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = logging.DEBUG if verbose else logging.INFO if fmt == "json" else logging.WARNING
    handler.setLevel(level)
    previous = root.level
    if root.getEffectiveLevel() > level:
        root.setLevel(level)
    root.addHandler(handler)
    handler._pmsync_previous_level = previous  # type: ignore[attr-defined]
    return handler


def teardown_logging(handler: logging.Handler) -> None:
    """Undo `setup_logging` (a command run in-process, e.g. by a test, leaves nothing behind)."""
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(getattr(handler, "_pmsync_previous_level", root.level))

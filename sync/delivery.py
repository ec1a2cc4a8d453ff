"""Delivery targets that are not source tools: `email` (SMTP) and `file` (a directory).

A `[[projects.X.publish]]` entry whose `to` is `email` or `file` is delivered by pmsync
itself. Each delivery has the same two methods as a connector: `render(target, report)`
returns exactly what `publish` sends (for --dry-run), `publish(target, report, previous)`
sends it and returns where it went.

- email: one message per report, multipart/alternative (a plain-text body and an HTML
  body), the charts as inline PNG images (`cid:`; mail clients do not show inline SVG), the
  Markdown report attached. The subject names the client, the project and the period. Mail
  cannot be edited once sent: a changed report for an already-mailed period goes out again
  with "Updated:" in the subject and `In-Reply-To` the first message, so it threads.
- file: the report written as HTML, Markdown and/or JSON under stable names per period
  (`<project>-<start>_<end>.<ext>`, rewritten in place when the report changes), atomically;
  with `latest = true` also as `<project>-latest.<ext>` (for a static site).

Every option is validated by the pydantic model of its kind (`EmailTarget`, `FileTarget`);
both also take the options every target takes: `audience` and `language`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import smtplib
import ssl
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import Publication, PublishTarget
from sync.errors import PublishError
from sync.model import RemoteRef

if TYPE_CHECKING:
    from sync.report import Report

log = logging.getLogger("pmsync.publish")

# Options every publish target accepts; pmsync consumes them (a connector never sees them).
COMMON_OPTIONS = ("audience", "language")
# An address as people write it in config: no display name, no spaces, no header breaks.
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()<>#+\-!|~&$=^:])")
_BOLD = re.compile(r"(?<!\\)\*\*")
_MERMAID = re.compile(r"```mermaid\n.*?```\n?", re.S)


class DeliveryTarget(BaseModel):
    """Options shared by the delivery kinds."""

    model_config = ConfigDict(extra="forbid")

    audience: Literal["client", "internal"] = "client"
    language: Literal["en", "zh-CN"] | None = None


def _address(value: str) -> str:
    value = value.strip()
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not an email address: {value!r} (write it as name@example.com)")
    return value


class EmailTarget(DeliveryTarget):
    """`to = "email"`: send the report by SMTP to the project's recipients."""

    recipients: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    sender: str
    reply_to: str | None = None
    smtp_host: str = Field(min_length=1)
    # Default: 587 for starttls, 465 for ssl, 25 for none.
    smtp_port: int | None = Field(default=None, gt=0, lt=65536)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    # A CA bundle to trust for a relay with a private certificate authority.
    ca_file: Path | None = None
    timeout: float = Field(default=30, gt=0)

    @field_validator("recipients", "cc")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        return [_address(v) for v in values]

    @field_validator("sender", "reply_to")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @model_validator(mode="after")
    def _login_pair(self) -> EmailTarget:
        if self.password is not None and not self.username:
            raise ValueError("password is set but username is not")
        return self

    @property
    def port(self) -> int:
        return self.smtp_port or {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class FileTarget(DeliveryTarget):
    """`to = "file"`: write the report into a directory, one stable name per period."""

    directory: Path
    formats: list[Literal["html", "md", "json"]] = Field(
        default_factory=lambda: ["html", "md", "json"], min_length=1
    )
    # Also write <project>-latest.<ext>, overwritten by each newer period.
    latest: bool = False

    @field_validator("formats")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


# -- the deliveries ---------------------------------------------------------------------------


class Delivery(ABC):
    """A publish target handled by pmsync itself; the same render/publish pair as a connector."""

    kind: ClassVar[str]
    Target: ClassVar[type[DeliveryTarget]]

    def __init__(self, base_dir: Path = Path("."), *, now: datetime | None = None) -> None:
        self.base_dir = base_dir
        self.now = now

    def options(self, target: PublishTarget) -> Any:
        try:
            return self.Target.model_validate(target.options)
        except ValueError as exc:
            first = str(exc).splitlines()
            raise PublishError(
                f"{self.kind}: invalid publish target options: {' '.join(first[:3])}"
            ) from None

    def resolve(self, path: Path) -> Path:
        p = path.expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @abstractmethod
    def render(self, target: PublishTarget, report: Report) -> str:
        """Return exactly what `publish` would send."""

    @abstractmethod
    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        """Deliver the report; return where it went."""

    def close(self) -> None:  # noqa: B027 - a hook; deliveries hold no connection
        """Release resources (none by default)."""


def file_stem(report: Report) -> str:
    """`<project>-<start>_<end>`: the stable file name of a report's period."""
    project = _UNSAFE_NAME.sub("-", report.project.id).strip("-.") or "project"
    return f"{project}-{report.period.start.isoformat()}_{report.period.end.isoformat()}"


class FileDelivery(Delivery):
    kind = "file"
    Target = FileTarget

    def files(self, target: PublishTarget, report: Report) -> list[tuple[Path, str]]:
        """Return (path, content) for every file this target writes."""
        from sync.render import render

        options: FileTarget = self.options(target)
        directory = self.resolve(options.directory)
        stem = file_stem(report)
        project = stem[: -len("-YYYY-MM-DD_YYYY-MM-DD")]
        out = []
        for fmt in options.formats:
            text = render(report, fmt)
            out.append((directory / f"{stem}.{fmt}", text))
            if options.latest and not _newer_period_exists(directory, project, report, fmt):
                out.append((directory / f"{project}-latest.{fmt}", text))
        return out

    def render(self, target: PublishTarget, report: Report) -> str:
        return "".join(f"==> {path} <==\n{text}\n" for path, text in self.files(target, report))

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        files = self.files(target, report)
        changed = False
        for path, text in files:
            data = text.encode("utf-8")
            try:
                if path.is_file() and path.read_bytes() == data:
                    continue
                _write_atomic(path, data)
            except OSError as exc:
                raise PublishError(
                    f"file: cannot write {path}: {exc.strerror or exc}; check `directory`"
                    " exists and is writable"
                ) from None
            changed = True
        first = files[0][0].resolve()
        return RemoteRef(id=str(first), url=first.as_uri(), changed=changed)


def _newer_period_exists(directory: Path, project: str, report: Report, fmt: str) -> bool:
    """True when the directory holds this project's report of a later period (keep `latest`)."""
    end = report.period.end.isoformat()
    pattern = re.compile(rf"{re.escape(project)}-\d{{4}}-\d\d-\d\d_(\d{{4}}-\d\d-\d\d)\.{fmt}")
    if not directory.is_dir():
        return False
    for path in directory.iterdir():
        m = pattern.fullmatch(path.name)
        if m and m.group(1) > end:
            return True
    return False


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EmailDelivery(Delivery):
    kind = "email"
    Target = EmailTarget

    def message(
        self, target: PublishTarget, report: Report, previous: Publication | None = None
    ) -> EmailMessage:
        """Build the message: text and HTML alternatives, inline PNG charts, Markdown attached."""
        from sync.render import to_markdown

        options: EmailTarget = self.options(target)
        markdown = to_markdown(report)
        html, images = html_with_png_charts(report)
        text = plain_text(markdown)
        digest = hashlib.sha256(f"{text}\0{html}".encode()).hexdigest()[:24]
        domain = options.sender.rsplit("@", 1)[1]
        msg = EmailMessage()
        subject = email_subject(report)
        if previous is not None:
            subject = f"{_updated_word(report.language)}: {subject}"
            msg["In-Reply-To"] = previous.remote_id
            msg["References"] = previous.remote_id
        msg["Subject"] = subject
        msg["From"] = options.sender
        msg["To"] = ", ".join(options.recipients)
        if options.cc:
            msg["Cc"] = ", ".join(options.cc)
        if options.reply_to:
            msg["Reply-To"] = options.reply_to
        msg["Date"] = format_datetime(self.now or datetime.now(UTC))
        msg["Message-ID"] = f"<pmsync.{digest}.{report.period.end:%Y%m%d}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text, subtype="plain", charset="utf-8")
        msg.add_alternative(html, subtype="html", charset="utf-8")
        html_part = msg.get_payload()[1]  # type: ignore[index]
        for cid, png, name in images:
            html_part.add_related(
                png, "image", "png", cid=f"<{cid}>", disposition="inline", filename=f"{name}.png"
            )
        # As base64 bytes: the file arrives exactly as written (LF line ends, UTF-8).
        msg.add_attachment(
            markdown.encode("utf-8"),
            maintype="text",
            subtype="markdown",
            params={"charset": "utf-8"},
            filename=f"{file_stem(report)}.md",
        )
        # Fixed boundaries: --dry-run shows the very bytes that are sent.
        multiparts = [p for p in msg.walk() if p.is_multipart()]
        for n, part in enumerate(multiparts):
            part.set_boundary(f"=_pmsync_{digest}_{n}")
        return msg

    def render(self, target: PublishTarget, report: Report) -> str:
        """The message as a person reads it: headers, each text body, the other parts listed.

        The bytes on the wire are this message MIME-encoded (base64 bodies, RFC 2047
        headers), which no one can proofread; every header and body here is sent as shown.
        """
        return describe(self.message(target, report))

    def publish(
        self, target: PublishTarget, report: Report, previous: Publication | None
    ) -> RemoteRef:
        options: EmailTarget = self.options(target)
        msg = self.message(target, report, previous)
        send(options, msg)
        return RemoteRef(id=str(msg["Message-ID"]), url=None)


def describe(msg: EmailMessage) -> str:
    """Return `msg` decoded for reading (see EmailDelivery.render)."""
    lines = [f"{name}: {value}" for name, value in msg.items() if name.lower() != "mime-version"]
    for part in msg.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        name = part.get_filename()
        if part.get_content_disposition() != "attachment" and kind in ("text/plain", "text/html"):
            lines += ["", f"--- {kind} ---", part.get_content().rstrip("\n")]
            continue
        size = len(part.get_payload(decode=True) or b"")
        cid = f" {part['Content-ID']}" if part["Content-ID"] else ""
        role = "attachment" if part.get_content_disposition() == "attachment" else "inline"
        lines += ["", f"--- {role} {kind}: {name}{cid}, {size:,} bytes ---"]
    return "\n".join(lines) + "\n"


def send(options: EmailTarget, msg: EmailMessage) -> None:
    """Send `msg` through the target's SMTP server; raise PublishError in one line."""
    where = f"{options.smtp_host}:{options.port}"
    try:
        context = ssl.create_default_context(
            cafile=str(options.ca_file) if options.ca_file else None
        )
        smtp: smtplib.SMTP
        if options.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                options.smtp_host, options.port, timeout=options.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(options.smtp_host, options.port, timeout=options.timeout)
        with smtp:
            if options.security == "starttls":
                smtp.starttls(context=context)
            if options.username:
                password = options.password.get_secret_value() if options.password else ""
                smtp.login(options.username, password)
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError:
        raise PublishError(
            f"email: {where} refused the login of {options.username!r}; check `username` and"
            " the password's environment variable"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise PublishError(
            f"email: {where} does not support what `security = {options.security!r}` needs"
            f" ({_reason(exc)}); check `security` and `smtp_port`"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise PublishError(
            f"email: {where} refused every recipient ({', '.join(sorted(exc.recipients))});"
            " check `recipients`"
        ) from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise PublishError(
            f"email: cannot send through {where}: {_reason(exc)}; check `smtp_host`,"
            " `smtp_port` and `security`"
        ) from None
    if refused:
        # Sent to the others: failing would make the next run mail them a second time.
        log.warning(
            "email: %s refused %s; the others received the report", where, ", ".join(refused)
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{exc.smtp_code} {' '.join(text.split())}"[:200]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# -- email parts ------------------------------------------------------------------------------


def email_subject(report: Report) -> str:
    """`<client> · <project> · <Status report> <start> – <end>` on one line."""
    from sync import i18n
    from sync.render.neutralise import plain

    lang = report.language
    key = "closing_title" if report.closing is not None else "title"
    period = (
        f"{i18n.fmt_date(lang, report.period.start)} – {i18n.fmt_date(lang, report.period.end)}"
    )
    parts = [report.project.client, report.project.name, f"{i18n.t(lang, key)} {period}"]
    return plain(" · ".join(p for p in parts if p), 250)


def _updated_word(lang: str) -> str:
    return "更新" if lang == "zh-CN" else "Updated"


def plain_text(markdown: str) -> str:
    """The Markdown report as readable plain text: no bold marks, escapes or Mermaid source."""
    text = _BOLD.sub("", _MERMAID.sub("", markdown))
    return _MD_ESCAPE.sub(r"\1", text)


@contextmanager
def _png_charts(images: list[tuple[str, bytes, str]], tag: str) -> Iterator[None]:
    """Make the HTML renderer's charts inline PNG `cid:` images (collected into `images`).

    The charts module turns each matplotlib figure into markup with `_svg(fig, prefix)`;
    for mail that step writes a PNG instead (mail clients do not show inline SVG).
    """
    from sync.render import charts

    original = charts._svg

    def png(fig: Any, prefix: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, metadata={"Software": None})
        cid = f"{prefix}.{tag}@pmsync"
        images.append((cid, buf.getvalue(), prefix))
        style = "width:100%;max-width:800px;height:auto"
        return f'<img src="cid:{cid}" alt="{prefix}" style="{style}">'

    charts._svg = png  # type: ignore[assignment]
    try:
        yield
    finally:
        charts._svg = original  # type: ignore[assignment]


def html_with_png_charts(report: Report) -> tuple[str, list[tuple[str, bytes, str]]]:
    """Return the HTML report whose charts are `cid:` images, and those (cid, png, name).

    Without the charts hook (a renderer change), the mail goes out without charts rather
    than with SVG most mail clients would drop.
    """
    from sync.render import charts
    from sync.render.html import to_html

    images: list[tuple[str, bytes, str]] = []
    if not callable(getattr(charts, "_svg", None)):
        log.warning("email: the charts cannot be drawn as images; sending the report without them")
        return to_html(report, charts=False), []
    with _png_charts(images, f"{report.period.end:%Y%m%d}"):
        html = to_html(report)
    if "<svg" in html:  # a chart drawn some other way: keep mail free of inline SVG
        html = re.sub(r"<svg\b.*?</svg>", "", html, flags=re.S)
    return html, images


DELIVERIES: dict[str, type[Delivery]] = {"email": EmailDelivery, "file": FileDelivery}
# What config/loader.py validates `to = "email"` / `to = "file"` options with.
DELIVERY_MODELS: dict[str, type[BaseModel]] = {k: v.Target for k, v in DELIVERIES.items()}

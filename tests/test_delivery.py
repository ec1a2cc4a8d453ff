"""Delivery targets (file, email options) and logging (text, JSON, redaction)."""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.loader import parse_config
from config.schema import Config
from connectors.base import PublishTarget
from sync.delivery import (
    EmailDelivery,
    EmailTarget,
    FileDelivery,
    FileTarget,
    html_with_png_charts,
    plain_text,
)
from sync.demo import write_shifted_export
from sync.engine import run_sync
from sync.errors import PublishError
from sync.logs import RedactSecrets, setup_logging
from sync.publish import publish_project
from sync.render import render
from sync.report import Report, build_report
from sync.store import Store

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
CSV = (
    "key,title,status,created,resolved\n"
    "A-1,Home page,Done,2026-11-02T09:00:00Z,2026-11-24T10:00:00Z\n"
    "A-2,Search <script>alert(1)</script>,In Progress,2026-11-02T09:00:00Z,\n"
)


def make(tmp_path: Path, publish: list[dict[str, Any]]) -> tuple[Config, Store]:
    (tmp_path / "a.csv").write_text(CSV)
    raw = {
        "sources": {"export": {"kind": "csv", "path": "a.csv"}},
        "projects": {
            "web site": {
                "name": "Web",
                "client": "ACME",
                "sources": ["export"],
                "schedule": "0 9 * * MON",
                "timezone": "Europe/Berlin",
                "publish": publish,
            }
        },
    }
    config = parse_config(raw, label="t.toml", base_dir=tmp_path)
    store = Store.memory()
    run_sync(config, store, now=NOW)
    return config, store


def report_for(config: Config, store: Store, start: date, end: date) -> Report:
    return build_report(store, config, "web site", start=start, end=end, now=NOW)


# -- file -------------------------------------------------------------------------------------


def test_file_target_writes_stable_names_per_period_and_rewrites_in_place(tmp_path: Path) -> None:
    config, store = make(tmp_path, [{"to": "file", "directory": "site", "latest": True}])
    start, end = date(2026, 11, 23), date(2026, 11, 29)
    [result] = publish_project(store, config, "web site", start=start, end=end, now=NOW)
    site = tmp_path / "site"
    stem = "web-site-2026-11-23_2026-11-29"
    assert sorted(p.name for p in site.iterdir()) == sorted(
        [f"{stem}.{ext}" for ext in ("html", "md", "json")]
        + [f"web-site-latest.{ext}" for ext in ("html", "md", "json")]
    )
    report = report_for(config, store, start, end)
    for ext in ("html", "md", "json"):
        assert (site / f"{stem}.{ext}").read_text(encoding="utf-8") == render(report, ext)  # type: ignore[arg-type]
        assert (site / f"web-site-latest.{ext}").read_text() == (site / f"{stem}.{ext}").read_text()
    assert (result.status, result.remote_id) == (
        "published",
        str((site / f"{stem}.html").resolve()),
    )
    assert result.url == (site / f"{stem}.html").resolve().as_uri()
    assert json.loads((site / f"{stem}.json").read_text())["period"] == {
        "start": "2026-11-23",
        "end": "2026-11-29",
    }
    assert "<script>alert" not in (site / f"{stem}.html").read_text()
    assert not [p for p in site.iterdir() if p.name.startswith(".")]  # no temp files left
    # A new period gets its own files; `latest` follows it.
    publish_project(
        store, config, "web site", start=date(2026, 11, 30), end=date(2026, 12, 6), now=NOW
    )
    assert "2026-11-30" in (site / "web-site-latest.json").read_text()
    # Re-publishing an older period leaves `latest` alone.
    (site / f"{stem}.md").write_text("edited by hand")
    delivery = FileDelivery(tmp_path)
    target = PublishTarget(to="file", directory="site", latest=True)
    ref = delivery.publish(target, report.model_copy(update={"generated_at": NOW}), None)
    assert ref.changed is True
    assert (site / f"{stem}.md").read_text() == render(report, "md")
    assert "2026-11-30" in (site / "web-site-latest.json").read_text()


def test_file_target_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    config, store = make(tmp_path, [{"to": "file", "directory": "site", "formats": ["md"]}])
    report = report_for(config, store, date(2026, 11, 23), date(2026, 11, 29))
    delivery = FileDelivery(tmp_path)
    target = PublishTarget(to="file", directory="site", formats=["md"])
    assert delivery.publish(target, report, None).changed is True
    path = tmp_path / "site" / "web-site-2026-11-23_2026-11-29.md"
    os.utime(path, ns=(1, 1))
    assert delivery.publish(target, report, None).changed is False
    assert path.stat().st_mtime_ns == 1
    assert delivery.render(target, report) == f"==> {path} <==\n{render(report, 'md')}\n"


def test_file_target_absolute_directory_and_unwritable_directory(tmp_path: Path) -> None:
    config, store = make(tmp_path, [])
    report = report_for(config, store, date(2026, 11, 23), date(2026, 11, 29))
    elsewhere = tmp_path / "abs"
    target = PublishTarget(to="file", directory=str(elsewhere), formats=["json"])
    FileDelivery(Path("/nonexistent")).publish(target, report, None)
    assert (elsewhere / "web-site-2026-11-23_2026-11-29.json").is_file()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    bad = PublishTarget(to="file", directory=str(blocker / "sub"), formats=["md"])
    with pytest.raises(PublishError) as err:
        FileDelivery(tmp_path).publish(bad, report, None)
    assert str(err.value) == (
        f"file: cannot write {blocker / 'sub' / 'web-site-2026-11-23_2026-11-29.md'}: Not a"
        " directory; check `directory` exists and is writable"
    )


def test_file_target_options_are_validated() -> None:
    assert FileTarget.model_validate(
        {"directory": "x", "formats": ["md", "md", "json"]}
    ).formats == [
        "md",
        "json",
    ]
    with pytest.raises(ValidationError):
        FileTarget.model_validate({"directory": "x", "formats": ["pdf"]})
    with pytest.raises(ValidationError):
        FileTarget.model_validate({"directory": "x", "formats": []})
    with pytest.raises(ValidationError):
        FileTarget.model_validate({"directory": "x", "colour": "red"})
    with pytest.raises(PublishError, match="file: invalid publish target options"):
        FileDelivery().options(PublishTarget(to="file"))


# -- email options and parts ------------------------------------------------------------------

EMAIL = {"recipients": ["a@acme.example"], "sender": "pm@agency.example", "smtp_host": "mail"}


def test_email_target_defaults_and_validation() -> None:
    target = EmailTarget.model_validate(EMAIL)
    assert (target.security, target.port, target.audience, target.language) == (
        "starttls",
        587,
        "client",
        None,
    )
    assert EmailTarget.model_validate({**EMAIL, "security": "ssl"}).port == 465
    assert EmailTarget.model_validate({**EMAIL, "security": "none"}).port == 25
    assert EmailTarget.model_validate({**EMAIL, "smtp_port": 2525}).port == 2525
    bad = [
        {**EMAIL, "recipients": []},
        {**EMAIL, "recipients": ["not-an-address"]},
        {**EMAIL, "recipients": ["a@acme.example\r\nBcc: x@evil.example"]},
        {**EMAIL, "sender": "Agency <pm@agency.example>"},
        {**EMAIL, "password": "x"},
        {**EMAIL, "security": "tls"},
        {**EMAIL, "smtp_port": 70000},
    ]
    for options in bad:
        with pytest.raises(ValidationError):
            EmailTarget.model_validate(options)
    shown = repr(EmailTarget.model_validate({**EMAIL, "username": "u", "password": "pw-123"}))
    assert "pw-123" not in shown


def test_plain_text_drops_markdown_escapes_bold_and_mermaid() -> None:
    md = "# T\n\n**Client:** A\\-1 \\*x\\*\n\n```mermaid\ngantt\n  a: 1\n```\n\nend\n"
    assert plain_text(md) == "# T\n\nClient: A-1 *x*\n\n\nend\n"


def test_email_render_shows_the_message_decoded(tmp_path: Path) -> None:
    config, store = make(tmp_path, [])
    report = report_for(config, store, date(2026, 11, 23), date(2026, 11, 29))
    delivery = EmailDelivery(tmp_path, now=NOW)
    target = PublishTarget(to="email", **EMAIL)
    msg = delivery.message(target, report)
    text = delivery.render(target, report)
    assert text == delivery.render(target, report)  # the same every time
    head, _, rest = text.partition("\n\n--- text/plain ---\n")
    assert head.splitlines() == [
        "Subject: ACME · Web · Status report 23 Nov 2026 – 29 Nov 2026",
        "From: pm@agency.example",
        "To: a@acme.example",
        "Date: Mon, 30 Nov 2026 09:30:00 +0000",
        f"Message-ID: {msg['Message-ID']}",
        "Auto-Submitted: auto-generated",
        'Content-Type: multipart/mixed; boundary="' + msg.get_boundary() + '"',
    ]
    plain = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [png] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert png.get_content_disposition() == "inline"
    size = len(png.get_content())
    md_size = len(render(report, "md").encode())
    assert rest == (
        f"{plain.rstrip()}\n\n--- text/html ---\n{html.rstrip()}\n\n"
        f"--- inline image/png: burnup.png <burnup.20261129@pmsync>, {size:,} bytes ---\n\n"
        f"--- attachment text/markdown: web-site-2026-11-23_2026-11-29.md, {md_size:,} bytes ---\n"
    )
    assert "Search <script>" not in html


def test_email_without_the_charts_hook_sends_no_svg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sync.render import charts

    write_shifted_export(tmp_path / "a.csv", date(2026, 11, 27))
    raw = {
        "sources": {"export": {"kind": "csv", "path": "a.csv"}},
        "projects": {
            "web site": {"name": "Web", "sources": ["export"], "start_date": date(2026, 9, 4)}
        },
    }
    config = parse_config(raw, label="t.toml", base_dir=tmp_path)
    store = Store.memory()
    run_sync(config, store, now=NOW)
    report = report_for(config, store, date(2026, 11, 23), date(2026, 11, 29))
    html, images = html_with_png_charts(report)
    assert [name for _, _, name in images] == ["burnup", "gantt"]
    monkeypatch.delattr(charts, "_svg")
    with caplog.at_level(logging.WARNING, logger="pmsync.publish"):
        html, images = html_with_png_charts(report)
    assert images == [] and "<svg" not in html and "cid:" not in html
    assert "the charts cannot be drawn as images" in caplog.text


# -- logging ----------------------------------------------------------------------------------


def test_json_logs_carry_extra_fields_and_no_secrets() -> None:
    out = io.StringIO()
    setup_logging("json", secrets=lambda: ["tok-123", ""], stream=out)
    log = logging.getLogger("pmsync.test")
    log.info(
        "sent with %s",
        "tok-123",
        extra={"event": "publication", "seconds": 0.5, "note": "x tok-123"},
    )
    try:
        raise RuntimeError("auth tok-123 refused")
    except RuntimeError:
        log.exception("failed")
    log.debug("hidden at info level")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert set(first) == {"ts", "level", "logger", "msg", "event", "seconds", "note"}
    assert (first["level"], first["logger"], first["msg"]) == (
        "info",
        "pmsync.test",
        "sent with ***",
    )
    assert (first["event"], first["seconds"], first["note"]) == ("publication", 0.5, "x ***")
    assert second["msg"] == "failed" and second["exc"].endswith("RuntimeError: auth *** refused")
    assert "tok-123" not in out.getvalue()


def test_text_logs_warn_by_default_and_debug_when_verbose() -> None:
    out = io.StringIO()
    setup_logging("text", secrets=lambda: ["pw"], stream=out)
    log = logging.getLogger("pmsync.test")
    log.info("quiet")
    log.warning("the pw leaked?")
    assert out.getvalue() == "WARNING pmsync.test: the *** leaked?\n"
    out = io.StringIO()
    setup_logging("text", verbose=True, stream=out)
    log.debug("detail")
    assert out.getvalue() == "DEBUG pmsync.test: detail\n"
    # Setting up again replaces the handler instead of adding one.
    assert sum(1 for h in logging.getLogger().handlers if h.get_name() == "pmsync") == 1


def test_redaction_reads_secrets_when_a_record_is_logged() -> None:
    secrets: list[str] = []
    record = logging.LogRecord("pmsync", logging.INFO, "f", 1, "token %s", ("abc",), None)
    flt = RedactSecrets(lambda: secrets)
    secrets.append("abc")
    assert flt.filter(record) is True
    assert record.getMessage() == "token ***"


def test_teardown_restores_the_root_logger() -> None:
    from sync.logs import teardown_logging

    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    before = list(root.handlers)
    handler = setup_logging("json", stream=io.StringIO())
    assert root.level == logging.INFO and handler in root.handlers
    teardown_logging(handler)
    assert root.level == logging.WARNING and root.handlers == before

"""Email delivery against a real SMTP server (aiosmtpd on 127.0.0.1) started in the test."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from config.loader import parse_config
from config.schema import Config
from sync.demo import write_shifted_export
from sync.engine import run_sync
from sync.publish import publish_project, run
from sync.render import to_markdown
from sync.report import build_report
from sync.store import Store

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)  # the Monday 09:00 Berlin slot has passed
START, END = date(2026, 11, 23), date(2026, 11, 29)
PERIOD = "2026-11-23..2026-11-29"
PASSWORD = "smtp-pa55word-from-env"


class Inbox:
    """The aiosmtpd handler: keeps every message it accepts."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.envelopes: list[Any] = []
        self.refuse = refuse

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or e.content, policy=email.policy.default)  # type: ignore[misc]
            for e in self.envelopes
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[Callable[..., tuple[int, Inbox]]]:
    """Start an SMTP server: smtp(port=None, refuse=(), **aiosmtpd options) -> (port, inbox)."""
    started: list[Controller] = []

    def start(
        port: int | None = None, refuse: tuple[str, ...] = (), **kw: Any
    ) -> tuple[int, Inbox]:
        inbox = Inbox(refuse)
        controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port(), **kw)
        controller.start()
        started.append(controller)
        return controller.port, inbox

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            *subj,
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def make_config(tmp_path: Path, port: int, *, small: bool = True, **email_options: Any) -> Config:
    """The project on the demo export (charts and all), or on three items when `small`."""
    if small:
        (tmp_path / "acme.csv").write_text(
            "key,title,status,created,resolved\n"
            "A-1,Home page,Done,2026-11-02T09:00:00Z,2026-11-24T10:00:00Z\n"
            "A-2,Search,In Progress,2026-11-02T09:00:00Z,\n"
            "A-3,Checkout,Open,2026-11-03T09:00:00Z,\n"
        )
    else:
        write_shifted_export(tmp_path / "acme.csv", date(2026, 11, 27))
    target = {
        "to": "email",
        "recipients": ["cto@acme.example", "pm@acme.example"],
        "cc": ["lead@agency.example"],
        "sender": "reports@agency.example",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        **email_options,
    }
    raw = {
        "sources": {"export": {"kind": "csv", "path": "acme.csv"}},
        "projects": {
            "acme": {
                "name": "ACME Website Relaunch",
                "client": "ACME Corp",
                "sources": ["export"],
                "start_date": date(2026, 9, 4),
                "target_date": date(2027, 1, 8),
                "schedule": "0 9 * * MON",
                "timezone": "Europe/Berlin",
                "publish": [target],
            }
        },
    }
    return parse_config(raw, label="t.toml", base_dir=tmp_path)


def test_the_report_arrives_once_with_text_html_inline_charts_and_markdown(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]]
) -> None:
    port, inbox = smtp()
    config = make_config(tmp_path, port, small=False)
    store = Store.memory()
    first = run(config, store, now=NOW)
    assert first.ok, first.as_dict()
    assert [(p.target, p.period, p.status) for p in first.publications] == [
        ("email", PERIOD, "published")
    ]
    assert run(config, store, now=NOW + timedelta(minutes=10)).publications == []
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "reports@agency.example"
    assert envelope.rcpt_tos == ["cto@acme.example", "pm@acme.example", "lead@agency.example"]
    [msg] = inbox.messages()
    assert msg["Subject"] == (
        "ACME Corp · ACME Website Relaunch · Status report 23 Nov 2026 – 29 Nov 2026"
    )
    assert msg["To"] == "cto@acme.example, pm@acme.example"
    assert msg["Cc"] == "lead@agency.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert store.publication("acme", "email", PERIOD)["remote_id"] == msg["Message-ID"]
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "image/png",
        "text/markdown",
    ]
    # SMTP carries lines ending in CRLF.
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("# Status report: ACME Website Relaunch\n\nClient: ACME Corp")
    assert "```mermaid" not in text and "\\-" not in text
    assert "<svg" not in html
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert [p["Content-ID"] for p in images] == [
        "<burnup.20261129@pmsync>",
        "<gantt.20261129@pmsync>",
    ]
    for part in images:
        assert part.get_content().startswith(b"\x89PNG\r\n")
        assert f'src="cid:{part["Content-ID"][1:-1]}"' in html
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "acme-2026-11-23_2026-11-29.md"
    report = build_report(store, config, "acme", start=START, end=END, now=NOW)
    assert attachment.get_content() == to_markdown(report)


def test_a_changed_report_for_a_mailed_period_goes_out_as_an_update(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]]
) -> None:
    port, inbox = smtp()
    config = make_config(tmp_path, port, small=False)
    store = Store.memory()
    run(config, store, now=NOW)
    later = NOW + timedelta(hours=2)
    with (tmp_path / "acme.csv").open("a", encoding="utf-8") as fh:
        when = "2026-11-25T10:00:00Z"
        fh.write(f"ACME-999,Extra page requested,story,Open,,,,{when},{when},,,,,,,,\n")
    run_sync(config, store, now=later)
    [result] = publish_project(store, config, "acme", start=START, end=END, now=later)
    assert result.status == "updated"
    first, second = inbox.messages()
    assert second["Subject"] == "Updated: " + first["Subject"]
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["Message-ID"] != first["Message-ID"]
    assert store.publication("acme", "email", PERIOD)["remote_id"] == second["Message-ID"]
    # Publishing the same content again sends nothing.
    [again] = publish_project(store, config, "acme", start=START, end=END, now=later)
    assert again.status == "unchanged" and len(inbox.envelopes) == 2


def test_login_uses_the_password_from_the_environment(
    tmp_path: Path,
    smtp: Callable[..., tuple[int, Inbox]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    logins: list[tuple[str, str]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        # handled=False: the server answers 535 itself on failure.
        return AuthResult(success=data.password.decode() == PASSWORD, handled=False)

    port, inbox = smtp(authenticator=authenticator, auth_require_tls=False)
    monkeypatch.setenv("SMTP_PASSWORD", "wrong-" + PASSWORD)
    options = {"username": "reports", "password": "${SMTP_PASSWORD}"}
    config = make_config(tmp_path, port, **options)
    store = Store.memory()
    with caplog.at_level(logging.DEBUG):
        [failed] = run(config, store, now=NOW).publications
    assert failed.status == "failed"
    assert failed.error == (
        f"email: 127.0.0.1:{port} refused the login of 'reports'; check `username` and the"
        " password's environment variable"
    )
    assert PASSWORD not in caplog.text and inbox.envelopes == []
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    config = make_config(tmp_path, port, **options)
    [sent] = run(config, store, now=NOW + timedelta(minutes=5)).publications
    assert sent.status == "published"
    assert logins[-1] == ("reports", PASSWORD)
    assert len(inbox.envelopes) == 1
    assert PASSWORD not in store.publication("acme", "email", PERIOD)["content_hash"]


def test_starttls_with_a_private_ca(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]], tls_cert: tuple[Path, Path]
) -> None:
    port, inbox = smtp(tls_context=server_tls(tls_cert), require_starttls=True)
    config = make_config(tmp_path, port, security="starttls", ca_file=str(tls_cert[0]))
    [result] = run(config, Store.memory(), now=NOW).publications
    assert result.status == "published", result.error
    assert len(inbox.envelopes) == 1
    # Without trusting the CA, the certificate is refused and nothing is sent.
    config = make_config(tmp_path, port, security="starttls")
    [result] = run(config, Store.memory(), now=NOW).publications
    assert result.status == "failed"
    assert result.error is not None and "CERTIFICATE_VERIFY_FAILED" in result.error
    assert len(inbox.envelopes) == 1


def test_implicit_tls(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]], tls_cert: tuple[Path, Path]
) -> None:
    port, inbox = smtp(ssl_context=server_tls(tls_cert))
    config = make_config(tmp_path, port, security="ssl", ca_file=str(tls_cert[0]))
    [result] = run(config, Store.memory(), now=NOW).publications
    assert result.status == "published", result.error
    assert len(inbox.envelopes) == 1


def test_a_server_that_requires_starttls_refuses_a_plain_session(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]], tls_cert: tuple[Path, Path]
) -> None:
    port, inbox = smtp(tls_context=server_tls(tls_cert), require_starttls=True)
    config = make_config(tmp_path, port, security="none")
    [result] = run(config, Store.memory(), now=NOW).publications
    assert result.status == "failed"
    assert result.error == (
        f"email: cannot send through 127.0.0.1:{port}: 530 Must issue a STARTTLS command first;"
        " check `smtp_host`, `smtp_port` and `security`"
    )
    assert inbox.envelopes == []


def test_an_unreachable_server_fails_then_the_next_run_sends_once(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]]
) -> None:
    port = free_port()
    config = make_config(tmp_path, port)
    store = Store.memory()
    first = run(config, store, now=NOW)
    assert not first.ok
    assert first.publications[0].error == (
        f"email: cannot send through 127.0.0.1:{port}: Connection refused; check `smtp_host`,"
        " `smtp_port` and `security`"
    )
    assert store.publications() == []
    _, inbox = smtp(port=port)
    second = run(config, store, now=NOW + timedelta(minutes=5))
    assert second.ok and [p.status for p in second.publications] == ["published"]
    assert run(config, store, now=NOW + timedelta(minutes=10)).publications == []
    assert len(inbox.envelopes) == 1


def test_a_refused_recipient_does_not_resend_to_the_others(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]], caplog: pytest.LogCaptureFixture
) -> None:
    port, inbox = smtp(refuse=("pm@acme.example",))
    config = make_config(tmp_path, port)
    store = Store.memory()
    with caplog.at_level(logging.WARNING, logger="pmsync.publish"):
        [result] = run(config, store, now=NOW).publications
    assert result.status == "published"
    assert inbox.envelopes[0].rcpt_tos == ["cto@acme.example", "lead@agency.example"]
    assert f"email: 127.0.0.1:{port} refused pm@acme.example; the others received the report" in (
        caplog.text
    )
    assert run(config, store, now=NOW + timedelta(minutes=5)).publications == []
    assert len(inbox.envelopes) == 1


def test_every_recipient_refused_is_a_failure(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]]
) -> None:
    port, _ = smtp(refuse=("cto@acme.example", "pm@acme.example", "lead@agency.example"))
    config = make_config(tmp_path, port)
    [result] = run(config, Store.memory(), now=NOW).publications
    assert result.status == "failed"
    assert result.error == (
        f"email: 127.0.0.1:{port} refused every recipient (cto@acme.example,"
        " lead@agency.example, pm@acme.example); check `recipients`"
    )


def test_hostile_project_names_cannot_add_headers(
    tmp_path: Path, smtp: Callable[..., tuple[int, Inbox]]
) -> None:
    port, inbox = smtp()
    config = make_config(tmp_path, port)
    project = config.projects["acme"]
    config.projects["acme"] = project.model_copy(
        update={"name": "Relaunch\r\nBcc: thief@evil.example", "client": "ACME\nX-Evil: 1"}
    )
    [result] = run(config, Store.memory(), now=NOW).publications
    assert result.status == "published", result.error
    [msg] = inbox.messages()
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg["Subject"] == (
        "ACME X-Evil: 1 · Relaunch Bcc: thief@evil.example · Status report 23 Nov 2026 – 29 Nov 2026"
    )
    assert inbox.envelopes[0].rcpt_tos == [
        "cto@acme.example",
        "pm@acme.example",
        "lead@agency.example",
    ]

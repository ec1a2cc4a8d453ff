"""The one HTTP client every connector uses (DESIGN §5).

A `requests.Session` with a timeout on every call, tenacity retries on 429/502/503/504 and
connection errors that honour `Retry-After` and the tools' reset headers, jittered
exponential backoff otherwise, a cap on total wait, counters for `sync_runs`, and redaction
of every secret from what it logs and raises.
"""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import random
import re
import time
import weakref
from collections.abc import Callable, Container, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import orjson
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from sync.errors import SourceError

log = logging.getLogger("pmsync.http")


class _RedactUrllib3(logging.Filter):
    """urllib3 logs every request line, query string included, at DEBUG (`-v`): redact it."""

    def __init__(self) -> None:
        super().__init__()
        self.clients: weakref.WeakSet[HttpClient] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for client in list(self.clients):
            message = client.redact(message)
        record.msg, record.args = message, None
        return True


_URLLIB3_REDACTION = _RedactUrllib3()
logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_REDACTION)

USER_AGENT = "pmsync/0.1 (+https://github.com/pmsync/pmsync)"
RETRY_STATUS = frozenset({429, 502, 503, 504})
# Headers that carry a wait hint, in the order they are trusted (each tool's own first).
RESET_HEADERS = ("x-pc-retry-after", "x-ratelimit-retry-after", "x-ratelimit-reset")
SENSITIVE_HEADERS = ("authorization", "x-redmine-api-key", "cookie", "x-api-key")

# `token=…`, `"api_key": "…"`, `Authorization: Bearer …`: a credential-shaped pair, redacted
# even when the value was never registered as a secret.
_CREDENTIAL = re.compile(
    r"(?i)\b(authorization|api[-_]?key|access[-_]?token|token|password|secret)"
    r"(\"?\s*[:=]\s*\"?)(bearer |basic |token )?[^\s\"',&]+"
)
STATUS_HINTS = {
    401: "authentication failed: check the credentials in the config and environment",
    403: "permission denied: check that the account may read this project",
    404: "not found: check the URL, project or issue in the config",
    410: "the vendor removed this endpoint: upgrade pmsync",
}


class HttpError(SourceError):
    """A response outside the accepted statuses, after any retries."""

    def __init__(self, source: str, method: str, url: str, status: int, body: str) -> None:
        self.source, self.method, self.url, self.status, self.body = (
            source,
            method,
            url,
            status,
            body,
        )
        hint = STATUS_HINTS.get(status) or (
            "still rate limited after retries: try again later"
            if status == 429
            else "the server kept failing after retries: try again later"
            if status in RETRY_STATUS
            else "a server error: try again later, or tell the tool's administrator"
            if status >= 500
            else ""
        )
        detail = f": {body}" if body else ""
        super().__init__(
            f"{source}: HTTP {status} from {method} {url}{detail}" + (f" ({hint})" if hint else "")
        )


class _RetryableResponse(Exception):
    def __init__(self, response: requests.Response) -> None:
        self.response = response


class HttpClient:
    """Session-reusing client with retries, counters and redaction."""

    def __init__(
        self,
        base_url: str,
        *,
        source: str,
        auth: tuple[str, str] | None = None,
        bearer: str | None = None,
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeout: float = 30,
        max_wait: float = 300,
        max_attempts: int = 8,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.source = source
        self.timeout = timeout
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        self.waited = 0.0
        self._request_waited = 0.0
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if headers:
            self.session.headers.update(headers)
        self.session.auth = auth
        if bearer:
            self.session.headers["Authorization"] = f"Bearer {bearer}"
        secret_values = [s for s in secrets if s]
        if auth:
            secret_values.append(auth[1])
            # A server may echo the Authorization header: its Basic value is the password too.
            secret_values.append(base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        if bearer:
            secret_values.append(bearer)
        self._secrets = sorted({s for s in secret_values if len(s) >= 4}, key=len, reverse=True)
        _URLLIB3_REDACTION.clients.add(self)

    # -- redaction ------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """Return `text` with every secret (and anything that looks like an auth header) removed."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _CREDENTIAL.sub(r"\1\2\3***", text)

    def add_secret(self, secret: str) -> None:
        """Register a value obtained at run time (an OAuth access token) for redaction."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    # -- retry policy (override per tool) -------------------------------------------------

    def should_retry(self, response: requests.Response) -> bool:
        """Return True if the response is a transient failure worth waiting for."""
        return response.status_code in RETRY_STATUS

    def retry_delay(self, response: requests.Response) -> float | None:
        """Return the server's requested wait in seconds, if it gave one."""
        value = response.headers.get("Retry-After")
        if value:
            delay = _parse_wait(value, header="retry-after")
            if delay is not None:
                return delay
        for name in RESET_HEADERS:
            value = response.headers.get(name)
            if value:
                delay = _parse_wait(value, header=name)
                if delay is not None:
                    return delay
        return None

    def _backoff(self, attempt: int) -> float:
        # Full jitter: a random wait up to the exponential bound.
        return random.uniform(0, self.backoff_base * (2 ** (attempt - 1)))

    def _wait(self, state: RetryCallState) -> float:
        hinted: float | None = None
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            hinted = self.retry_delay(outcome.result())
        elif outcome is not None and isinstance(outcome.exception(), _RetryableResponse):
            hinted = self.retry_delay(outcome.exception().response)  # type: ignore[union-attr]
        delay = hinted if hinted is not None else self._backoff(state.attempt_number)
        delay = max(0.0, delay)
        if self._request_waited + delay > self.max_wait:
            raise _WaitCapExceeded(delay)
        self._request_waited += delay
        return delay

    # -- requests -------------------------------------------------------------------------

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        ok: Container[int] = range(200, 300),
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one request, retrying transient failures; raise HttpError outside `ok`.

        A lost connection or a read timeout is retried only for idempotent requests (GET,
        PUT, DELETE, or `idempotent=True`): a POST may have been applied before the line broke.
        """
        url = self.url(path)
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        network_errors: tuple[type[Exception], ...] = (
            (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
            if idempotent
            else (requests.exceptions.ConnectTimeout,)
        )
        self._request_waited = 0.0

        def attempt() -> requests.Response:
            self.requests += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    timeout=timeout or self.timeout,
                )
            except requests.RequestException as exc:
                log.warning(
                    "%s: %s %s failed: %s",
                    self.source,
                    method,
                    self._show(url),
                    self.redact(type(exc).__name__ + ": " + str(exc)),
                )
                raise
            if response.status_code not in ok and self.should_retry(response):
                log.warning(
                    "%s: %s %s -> %s, will retry",
                    self.source,
                    method,
                    self._show(url),
                    response.status_code,
                )
                raise _RetryableResponse(response)
            return response

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            delay = state.next_action.sleep if state.next_action else 0
            self.waited += delay

        retrying = Retrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, (_RetryableResponse, *network_errors))
            ),
            wait=self._wait,
            stop=stop_after_attempt(self.max_attempts),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except _RetryableResponse as exc:
            response = exc.response
        except _WaitCapExceeded as cap:
            raise SourceError(
                f"{self.source}: gave up on {method} {self._show(url)}: the server asked to wait"
                f" {cap.delay:g}s more after {self._request_waited:g}s, beyond the"
                f" {self.max_wait:g}s cap (still rate limiting or failing; try again later)"
            ) from None
        except requests.Timeout:
            raise SourceError(
                f"{self.source}: {method} {self._show(url)} timed out after"
                f" {timeout or self.timeout:g}s ({self.max_attempts} attempts); is the server up?"
            ) from None
        except requests.RequestException as exc:
            raise SourceError(
                f"{self.source}: cannot reach {self._show(url)}:"
                f" {self.redact(_short_reason(exc))}; check the url and network"
            ) from None
        if response.status_code not in ok:
            raise HttpError(
                self.source,
                method,
                self._show(url),
                response.status_code,
                self.redact(_error_text(response)),
            )
        return response

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def get_json(self, path: str, **kw: Any) -> Any:
        """GET `path` and return its parsed JSON body."""
        return self.parse_json(self.request("GET", path, **kw))

    def send_json(self, method: str, path: str, **kw: Any) -> Any:
        """Send a request and return its parsed JSON body (None for an empty body)."""
        response = self.request(method, path, **kw)
        if not response.content:
            return None
        return self.parse_json(response)

    def parse_json(self, response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass  # orjson is strict (lone surrogate escapes); the standard parser is not
        try:
            return jsonlib.loads(response.content)
        except ValueError:
            raise SourceError(
                f"{self.source}: invalid or truncated JSON from {response.request.method}"
                f" {self._show(response.url)} ({len(response.content)} bytes); try again later"
            ) from None

    def _show(self, url: str) -> str:
        """The URL as it may appear in logs: no query string secrets."""
        return self.redact(url)

    def close(self) -> None:
        self.session.close()


class _WaitCapExceeded(Exception):
    def __init__(self, delay: float) -> None:
        self.delay = delay


def _parse_wait(value: str, *, header: str) -> float | None:
    """Turn a header value into seconds to wait: seconds, epoch seconds/ms, HTTP or ISO date."""
    value = value.strip()
    now = time.time()
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if header == "retry-after" or number < 1e9:
            return number
        if number > 1e12:  # epoch milliseconds
            number /= 1000
        return max(0.0, number - now)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _error_text(response: requests.Response) -> str:
    """A short, one-line description of an error body (JSON message fields preferred)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text or ""
        if "<html" in text[:200].lower():
            return ""
        return " ".join(text.split())[:200]
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("errorMessages", "errors", "message", "error", "error_description", "msg"):
            value = body.get(key)
            if isinstance(value, list):
                parts.extend(
                    str(v if not isinstance(v, dict) else v.get("message", v)) for v in value
                )
            elif isinstance(value, dict):
                parts.extend(f"{k}: {v}" for k, v in value.items())
            elif value:
                parts.append(str(value))
    text = "; ".join(parts) if parts else jsonlib.dumps(body)[:200]
    return " ".join(text.split())[:300]


def _short_reason(exc: requests.RequestException) -> str:
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"(Connection \w+)", text)
    return match.group(1) if match else type(exc).__name__

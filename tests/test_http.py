"""connectors/http.py: retries, wait hints, the wait cap, no retry on 4xx, counters, redaction."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses

from connectors.http import HttpClient, HttpError
from sync.errors import SourceError
from tests.fakes.server import FakeServer, Reply

BASE = "https://pm.example.test"
TOKEN = "tok-SECRET-7f3a9c21"
PASSWORD = "pw-SECRET-55e1b0"
CLIENT_SECRET = "cs-SECRET-0d9e8f"


class Sleeps(list[float]):
    """An injected `sleep` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(sleep: Sleeps, **kw) -> HttpClient:
    kw.setdefault("source", "acme")
    return HttpClient(BASE, sleep=sleep, **kw)


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


# -- wait hints -------------------------------------------------------------------------------


@responses.activate
def test_429_with_retry_after_seconds_then_success() -> None:
    responses.get(f"{BASE}/search", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/search", json={"ok": True})
    sleeps = Sleeps()
    http = client(sleeps)

    assert http.get_json("search") == {"ok": True}

    assert sleeps == [7.0]
    assert http.requests == 2
    assert http.retries == 1
    assert http.waited == 7.0
    assert len(responses.calls) == 2


@responses.activate
def test_retry_after_as_http_date() -> None:
    when = datetime.fromtimestamp(int(time.time()) + 30, UTC)
    responses.get(
        f"{BASE}/x", status=503, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    responses.get(f"{BASE}/x", json=[1])
    sleeps = Sleeps()
    http = client(sleeps)

    assert http.get_json("x") == [1]

    assert len(sleeps) == 1
    assert 28 < sleeps[0] <= 30
    assert (http.requests, http.retries) == (2, 1)


@responses.activate
def test_retry_after_http_date_in_the_past_waits_zero() -> None:
    when = datetime.now(UTC) - timedelta(minutes=5)
    responses.get(
        f"{BASE}/x", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    responses.get(f"{BASE}/x", json=[])
    sleeps = Sleeps()

    assert client(sleeps).get_json("x") == []
    assert sleeps == [0.0]


@responses.activate
def test_ratelimit_reset_as_iso_timestamp() -> None:
    when = datetime.fromtimestamp(int(time.time()) + 20, UTC)
    responses.get(f"{BASE}/x", status=429, headers={"X-RateLimit-Reset": when.isoformat()})
    responses.get(f"{BASE}/x", json={})
    sleeps = Sleeps()
    http = client(sleeps)

    http.get_json("x")

    assert len(sleeps) == 1
    assert 18 < sleeps[0] <= 20
    assert http.retries == 1


@responses.activate
def test_ratelimit_reset_as_iso_timestamp_with_z() -> None:
    when = datetime.fromtimestamp(int(time.time()) + 20, UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    responses.get(f"{BASE}/x", status=429, headers={"X-RateLimit-Reset": stamp})
    responses.get(f"{BASE}/x", json={})
    sleeps = Sleeps()

    client(sleeps).get_json("x")

    assert len(sleeps) == 1
    assert 18 < sleeps[0] <= 20


@responses.activate
def test_ratelimit_reset_as_epoch_seconds() -> None:
    reset = int(time.time()) + 15
    responses.get(f"{BASE}/x", status=429, headers={"X-RateLimit-Reset": str(reset)})
    responses.get(f"{BASE}/x", json={})
    sleeps = Sleeps()
    http = client(sleeps)

    http.get_json("x")

    assert len(sleeps) == 1
    assert 13 < sleeps[0] <= 15
    assert (http.requests, http.retries) == (2, 1)


@responses.activate
def test_ratelimit_reset_as_epoch_milliseconds() -> None:
    reset_ms = (int(time.time()) + 12) * 1000
    responses.get(f"{BASE}/x", status=429, headers={"x-ratelimit-reset": str(reset_ms)})
    responses.get(f"{BASE}/x", json={})
    sleeps = Sleeps()

    client(sleeps).get_json("x")

    assert len(sleeps) == 1
    assert 10 < sleeps[0] <= 12


@responses.activate
def test_tool_specific_retry_after_headers_are_seconds() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"x-pc-retry-after": "3"})
    responses.get(f"{BASE}/x", status=429, headers={"X-RateLimit-Retry-After": "4"})
    responses.get(f"{BASE}/x", json={})
    sleeps = Sleeps()
    http = client(sleeps)

    http.get_json("x")

    assert sleeps == [3.0, 4.0]
    assert (http.requests, http.retries, http.waited) == (3, 2, 7.0)


@responses.activate
def test_backoff_without_hint_is_jittered_exponential() -> None:
    for _ in range(4):
        responses.get(f"{BASE}/x", status=502)
    responses.get(f"{BASE}/x", json={})
    sleeps = Sleeps()
    http = client(sleeps, backoff_base=2.0)

    http.get_json("x")

    assert len(sleeps) == 4
    for n, wait in enumerate(sleeps, start=1):
        assert 0 <= wait <= 2.0 * 2 ** (n - 1)
    assert http.retries == 4
    assert http.waited == pytest.approx(sum(sleeps))


@responses.activate
@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_each_transient_status_is_retried(status: int) -> None:
    responses.get(f"{BASE}/x", status=status, headers={"Retry-After": "1"})
    responses.get(f"{BASE}/x", json={"n": 1})
    sleeps = Sleeps()

    assert client(sleeps).get_json("x") == {"n": 1}
    assert sleeps == [1.0]


# -- giving up --------------------------------------------------------------------------------


@responses.activate
def test_503_until_the_wait_cap_then_one_clear_error() -> None:
    responses.get(f"{BASE}/search", status=503, headers={"Retry-After": "4"})
    sleeps = Sleeps()
    http = client(sleeps, max_wait=10)

    with pytest.raises(SourceError) as info:
        http.get_json("search")

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("acme: ")
    assert "GET https://pm.example.test/search" in message
    assert "try again later" in message
    # 4 + 4 fit under the 10 s cap; a third wait of 4 would not.
    assert sleeps == [4.0, 4.0]
    assert http.requests == 3
    assert http.retries == 2
    assert http.waited == 8.0


@responses.activate
def test_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "3600"})
    sleeps = Sleeps()
    http = client(sleeps, max_wait=300)

    with pytest.raises(SourceError) as info:
        http.get("x")

    assert sleeps == []
    assert (http.requests, http.retries) == (1, 0)
    assert str(info.value) == (
        f"acme: gave up on GET {BASE}/x: the server asked to wait 3600s more after 0s,"
        " beyond the 300s cap (still rate limiting or failing; try again later)"
    )


@responses.activate
def test_503_until_max_attempts_raises_http_error() -> None:
    responses.get(f"{BASE}/search", status=503, json={"message": "maintenance"})
    sleeps = Sleeps()
    http = client(sleeps, max_attempts=3, backoff_base=0.01)

    with pytest.raises(HttpError) as info:
        http.get_json("search")

    err = info.value
    assert err.status == 503
    assert err.method == "GET"
    assert err.url == f"{BASE}/search"
    assert err.body == "maintenance"
    assert str(err) == (
        "acme: HTTP 503 from GET https://pm.example.test/search: maintenance"
        " (the server kept failing after retries: try again later)"
    )
    assert len(sleeps) == 2
    assert (http.requests, http.retries) == (3, 2)


@responses.activate
def test_429_until_max_attempts_says_rate_limited() -> None:
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "0"})
    http = client(Sleeps(), max_attempts=2)

    with pytest.raises(HttpError) as info:
        http.get("x")

    assert info.value.status == 429
    assert "still rate limited after retries" in str(info.value)
    assert http.requests == 2


@responses.activate
def test_wait_cap_is_per_request() -> None:
    responses.get(f"{BASE}/a", status=429, headers={"Retry-After": "6"})
    responses.get(f"{BASE}/a", json={})
    responses.get(f"{BASE}/b", status=429, headers={"Retry-After": "6"})
    responses.get(f"{BASE}/b", json={})
    sleeps = Sleeps()
    http = client(sleeps, max_wait=10)

    http.get_json("a")
    http.get_json("b")

    assert sleeps == [6.0, 6.0]
    assert http.waited == 12.0


@responses.activate
@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "authentication failed: check the credentials"),
        (403, "permission denied"),
        (404, "not found: check the URL, project or issue"),
        (410, "the vendor removed this endpoint"),
    ],
)
def test_client_errors_are_not_retried(status: int, hint: str) -> None:
    responses.get(f"{BASE}/rest/issue/ACME-1", status=status, json={"errorMessages": ["nope"]})
    sleeps = Sleeps()
    http = client(sleeps)

    with pytest.raises(HttpError) as info:
        http.get_json("rest/issue/ACME-1")

    assert len(responses.calls) == 1
    assert sleeps == []
    assert (http.requests, http.retries) == (1, 0)
    err = info.value
    assert isinstance(err, SourceError)
    assert err.exit_code == 1
    assert err.status == status
    assert hint in str(err)
    assert str(err).startswith(f"acme: HTTP {status} from GET {BASE}/rest/issue/ACME-1: nope (")
    assert "\n" not in str(err)


@responses.activate
def test_other_4xx_not_retried_and_ok_statuses_accepted() -> None:
    responses.get(f"{BASE}/x", status=400, json={"errors": {"jql": "bad query"}})
    responses.get(f"{BASE}/y", status=404)
    http = client(Sleeps())

    with pytest.raises(HttpError) as info:
        http.get("x")
    assert info.value.body == "jql: bad query"
    assert len(responses.calls) == 1

    assert http.request("GET", "y", ok={200, 404}).status_code == 404
    assert http.requests == 2


@responses.activate
def test_html_error_page_is_not_copied_into_the_message() -> None:
    responses.get(f"{BASE}/x", status=404, body="<html><body>" + "x" * 5000 + "</body></html>")
    with pytest.raises(HttpError) as info:
        client(Sleeps()).get("x")
    assert info.value.body == ""
    assert len(str(info.value)) < 300


# -- connection errors and idempotency ---------------------------------------------------------


@responses.activate
def test_connection_error_retried_for_get() -> None:
    responses.get(f"{BASE}/x", body=requests.ConnectionError("Connection reset by peer"))
    responses.get(f"{BASE}/x", json={"ok": 1})
    sleeps = Sleeps()
    http = client(sleeps, backoff_base=0.5)

    assert http.get_json("x") == {"ok": 1}
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.5
    assert (http.requests, http.retries) == (2, 1)


@responses.activate
def test_connection_error_not_retried_for_post() -> None:
    responses.post(f"{BASE}/issues", body=requests.ConnectionError("Connection aborted"))
    responses.post(f"{BASE}/issues", json={"id": 1})
    sleeps = Sleeps()
    http = client(sleeps)

    with pytest.raises(SourceError) as info:
        http.send_json("POST", "issues", json={"title": "x"})

    assert len(responses.calls) == 1
    assert sleeps == []
    assert http.retries == 0
    assert str(info.value).startswith(f"acme: cannot reach {BASE}/issues")
    assert "\n" not in str(info.value)


@responses.activate
def test_connection_error_retried_for_post_marked_idempotent() -> None:
    responses.post(f"{BASE}/graphql", body=requests.ConnectionError("Connection aborted"))
    responses.post(f"{BASE}/graphql", json={"data": {}})
    http = client(Sleeps())

    assert http.send_json("POST", "graphql", json={"query": "{x}"}, idempotent=True) == {"data": {}}
    assert len(responses.calls) == 2
    assert http.retries == 1


@responses.activate
def test_timeout_retried_for_get_then_clear_error() -> None:
    responses.get(f"{BASE}/x", body=requests.ReadTimeout("read timed out"))
    sleeps = Sleeps()
    http = client(sleeps, max_attempts=3, timeout=5)

    with pytest.raises(SourceError) as info:
        http.get("x")

    assert http.requests == 3
    assert len(sleeps) == 2
    assert str(info.value) == (
        f"acme: GET {BASE}/x timed out after 5s (3 attempts); is the server up?"
    )


@responses.activate
def test_post_is_retried_on_503_status() -> None:
    # A 503 answer means the server did not apply the request, so even POST may retry.
    responses.post(f"{BASE}/x", status=503, headers={"Retry-After": "1"})
    responses.post(f"{BASE}/x", json={"id": 9})
    http = client(Sleeps())

    assert http.send_json("POST", "x", json={}) == {"id": 9}
    assert http.retries == 1


# -- bodies -----------------------------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize("body", [b'{"issues": [{"id": "1", "fie', b"<html>oops</html>", b""])
def test_truncated_or_invalid_json_is_a_source_error(body: bytes) -> None:
    responses.get(f"{BASE}/search", body=body, content_type="application/json")
    http = client(Sleeps())

    with pytest.raises(SourceError) as info:
        http.get_json("search")

    assert not isinstance(info.value, HttpError)
    assert str(info.value) == (
        f"acme: invalid or truncated JSON from GET {BASE}/search ({len(body)} bytes);"
        " try again later"
    )


@responses.activate
def test_send_json_empty_body_is_none() -> None:
    responses.delete(f"{BASE}/x/1", status=204)
    assert client(Sleeps()).send_json("DELETE", "x/1") is None


@responses.activate
def test_session_reused_user_agent_and_timeout_sent() -> None:
    seen: list[float | tuple | None] = []

    def callback(request: requests.PreparedRequest):
        seen.append(request.req_kwargs.get("timeout"))  # type: ignore[attr-defined]
        return (200, {}, "{}")

    responses.add_callback(responses.GET, f"{BASE}/x", callback=callback)
    http = client(Sleeps(), timeout=12)
    session = http.session
    http.get_json("x")
    http.get_json("x")

    assert http.session is session
    assert seen == [12, 12]
    assert responses.calls[0].request.headers["User-Agent"].startswith("pmsync/")
    assert http.requests == 2


def test_url_joins_relative_and_keeps_absolute() -> None:
    http = HttpClient("https://jira.example/base/", source="s")
    assert http.url("rest/api/3/myself") == "https://jira.example/base/rest/api/3/myself"
    assert http.url("/rest/x") == "https://jira.example/base/rest/x"
    assert http.url("https://other.example/y") == "https://other.example/y"


# -- redaction --------------------------------------------------------------------------------


@responses.activate
def test_bearer_token_never_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{BASE}/me?access_token={TOKEN}"
    responses.get(f"{BASE}/me", status=503, headers={"Retry-After": "0"})
    responses.get(
        f"{BASE}/me",
        status=401,
        json={"message": f"invalid token {TOKEN}", "error": f"Authorization: Bearer {TOKEN}"},
    )
    http = client(Sleeps(), bearer=TOKEN)

    with pytest.raises(HttpError) as info:
        http.get_json(url)

    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    err = info.value
    for text in (str(err), err.url, err.body, repr(err), all_log_text(caplog)):
        assert TOKEN not in text
    assert "401" in str(err)
    assert "will retry" in all_log_text(caplog)  # the 503 was logged, redacted


@responses.activate
def test_basic_password_never_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    encoded = base64.b64encode(f"pm@acme.example:{PASSWORD}".encode()).decode()
    responses.get(f"{BASE}/me", body=requests.ConnectionError(f"failed for {PASSWORD}"))
    responses.get(
        f"{BASE}/me",
        status=403,
        # A server that echoes the credentials it got, raw and encoded.
        json={"errorMessages": [f"user pm@acme.example password {PASSWORD}", f"got {encoded}"]},
    )
    http = client(Sleeps(), auth=("pm@acme.example", PASSWORD))

    with pytest.raises(HttpError) as info:
        http.get_json("me")

    err = info.value
    assert err.status == 403
    for text in (str(err), err.body, all_log_text(caplog)):
        assert PASSWORD not in text
        assert encoded not in text
    assert "pm@acme.example" in err.body  # only the secret is removed, not the context


@responses.activate
def test_extra_secrets_redacted_from_url_body_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(f"{BASE}/oauth/token", status=502)
    responses.post(
        f"{BASE}/oauth/token", status=400, body=f"bad client_secret={CLIENT_SECRET} given"
    )
    http = client(Sleeps(), secrets=[CLIENT_SECRET], backoff_base=0)

    with pytest.raises(HttpError) as info:
        http.send_json(
            "POST", f"oauth/token?client_secret={CLIENT_SECRET}", data={"s": CLIENT_SECRET}
        )

    for text in (str(info.value), info.value.url, info.value.body, all_log_text(caplog)):
        assert CLIENT_SECRET not in text
    assert "400" in str(info.value)


@responses.activate
def test_secret_in_url_redacted_from_give_up_and_network_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get(f"{BASE}/a", status=503, headers={"Retry-After": "5"})
    responses.get(
        f"{BASE}/b",
        body=requests.ConnectionError(f"Max retries exceeded with url: /b?key={TOKEN}"),
    )
    http = client(Sleeps(), secrets=[TOKEN], max_wait=6, max_attempts=2)

    with pytest.raises(SourceError) as gave_up:
        http.get(f"a?key={TOKEN}")
    with pytest.raises(SourceError) as unreachable:
        http.get(f"b?key={TOKEN}")

    for text in (str(gave_up.value), str(unreachable.value), all_log_text(caplog)):
        assert TOKEN not in text
    assert "gave up on GET" in str(gave_up.value)
    assert "cannot reach" in str(unreachable.value)


def test_redact_removes_secret_and_auth_looking_values() -> None:
    http = HttpClient(BASE, source="s", bearer=TOKEN, secrets=["", "abc", "longer-secret-1"])
    text = f"t={TOKEN} x=longer-secret-1 Authorization: Basic Zm9vOmJhcg== api_key=zzz9"
    out = http.redact(text)
    assert TOKEN not in out
    assert "longer-secret-1" not in out
    assert "Zm9vOmJhcg==" not in out
    assert "zzz9" not in out
    # Secrets shorter than 4 characters are not redacted (they would blank out ordinary text).
    assert http.redact("abc") == "abc"


def test_add_secret_registers_a_runtime_token() -> None:
    http = HttpClient(BASE, source="s")
    http.add_secret("oauth-access-123456")
    assert http.redact("got oauth-access-123456!") == "got ***!"


# -- against the local fake server ------------------------------------------------------------


class Echo(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/items", lambda r: {"items": [1, 2, 3]})
        self.route("POST", r"/items", lambda r: Reply(201, {"id": 7}))


@pytest.fixture(scope="module")
def echo_server() -> Iterator[Echo]:
    # One server for the module: stopping one takes half a second (serve_forever's poll).
    with Echo() as server:
        yield server


@pytest.fixture
def server(echo_server: Echo) -> Echo:
    echo_server.faults.clear()
    echo_server.log.clear()
    return echo_server


def test_fake_server_reset_is_retried_for_get(server: Echo) -> None:
    sleeps = Sleeps()
    server.faults.add("reset", path="items")
    http = HttpClient(server.url, source="fake", sleep=sleeps, timeout=2, backoff_base=0.01)
    assert http.get_json("items") == {"items": [1, 2, 3]}
    assert len(server.log) == 2
    assert (http.requests, http.retries) == (2, 1)
    assert len(sleeps) == 1


def test_fake_server_reset_not_retried_for_post(server: Echo) -> None:
    server.faults.add("reset", path="items")
    url = server.url
    http = HttpClient(url, source="fake", sleep=Sleeps(), timeout=2)
    with pytest.raises(SourceError) as info:
        http.send_json("POST", "items", json={"title": "x"})
    assert len(server.log) == 1
    assert str(info.value).startswith(f"fake: cannot reach {url}/items")
    assert "\n" not in str(info.value)


def test_fake_server_truncated_body_is_retried_then_succeeds(server: Echo) -> None:
    server.faults.add("truncate", path="items")
    http = HttpClient(server.url, source="fake", sleep=Sleeps(), timeout=2)
    assert http.get_json("items") == {"items": [1, 2, 3]}
    assert len(server.log) == 2
    assert http.retries == 1


def test_fake_server_truncated_every_time_is_one_clear_error(server: Echo) -> None:
    server.faults.add("truncate", path="items", times=3)
    http = HttpClient(server.url, source="fake", sleep=Sleeps(), timeout=2, max_attempts=3)
    with pytest.raises(SourceError) as info:
        http.get_json("items")
    assert len(server.log) == 3
    assert str(info.value).startswith("fake: ")
    assert "\n" not in str(info.value)
    assert "Traceback" not in str(info.value)


def test_fake_server_garbage_body_is_invalid_json(server: Echo) -> None:
    server.faults.add("garbage", path="items")
    http = HttpClient(server.url, source="fake", sleep=Sleeps(), timeout=2)
    with pytest.raises(SourceError) as info:
        http.get_json("items")
    assert "invalid or truncated JSON" in str(info.value)


def test_fake_server_stall_times_out_and_is_retried(server: Echo) -> None:
    sleeps = Sleeps()
    server.faults.add("stall", path="items", seconds=0.6)
    http = HttpClient(server.url, source="fake", sleep=sleeps, timeout=0.2)
    started = time.monotonic()
    assert http.get_json("items") == {"items": [1, 2, 3]}
    assert time.monotonic() - started < 2
    assert len(server.log) == 2
    assert (http.requests, http.retries) == (2, 1)


def test_fake_server_stall_every_time_gives_timeout_error(server: Echo) -> None:
    server.faults.add("stall", path="items", seconds=0.5, times=2)
    url = server.url
    http = HttpClient(url, source="fake", sleep=Sleeps(), timeout=0.2, max_attempts=2)
    with pytest.raises(SourceError) as info:
        http.get_json("items")
    message = str(info.value)
    assert message.startswith(f"fake: GET {url}/items timed out after ")
    assert message.endswith("(2 attempts); is the server up?")


def test_fake_server_429_storm_then_success_counts(server: Echo) -> None:
    sleeps = Sleeps()
    server.faults.add("status", status=429, headers={"Retry-After": "2"}, times=3, path="items")
    http = HttpClient(server.url, source="fake", sleep=sleeps, timeout=2)
    assert http.get_json("items") == {"items": [1, 2, 3]}
    assert len(server.log) == 4
    assert sleeps == [2.0, 2.0, 2.0]
    assert (http.requests, http.retries, http.waited) == (4, 3, 6.0)


def test_fake_server_token_in_url_never_logged(
    server: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    # urllib3 logs every request line at DEBUG (which `pmsync -v` turns on): the query string
    # must not carry a secret into the log.
    caplog.set_level(logging.DEBUG)
    server.faults.add("status", status=503, headers={"Retry-After": "0"}, path="items")
    http = HttpClient(server.url, source="fake", sleep=Sleeps(), timeout=2, secrets=[TOKEN])
    assert http.get_json(f"items?api_key={TOKEN}") == {"items": [1, 2, 3]}
    assert server.log[0].query["api_key"] == [TOKEN]
    assert caplog.records
    assert TOKEN not in all_log_text(caplog)

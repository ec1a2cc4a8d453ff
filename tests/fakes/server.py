"""A tiny threaded HTTP server on 127.0.0.1 that fake tools build on, with fault injection.

A fake subclasses `FakeServer` and registers routes with `self.route(method, regex, handler)`;
a handler takes a `Request` and returns a `Reply` (or a dict/list, sent as JSON 200).
Tests queue faults with `server.faults.add(...)`: each fault applies to the next matching
requests, so a test can say "the next 3 searches get 429 with Retry-After: 0".
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str] | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is (for truncated or invalid bodies)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Fault:
    """What to do instead of answering: `kind` is one of status, reset, truncate, stall, garbage."""

    kind: str
    path: str = ".*"  # regex on the path
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self.fired = 0

    def add(self, kind: str, **kw: Any) -> None:
        with self._lock:
            self._queue.append(Fault(kind, **kw))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._queue:
                if re.search(fault.path, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._queue.remove(fault)
                    self.fired += 1
                    return fault
        return None


Handler = Callable[[Request], "Reply | dict[str, Any] | list[Any]"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or gave up closes its end: not an error of the fake.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeServer:
    """Start with `with FakeX(...) as server:`; `server.url` is its base URL."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults = Faults()
        self.log: list[Request] = []
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method.upper(), re.compile(pattern + r"\Z"), handler))

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests_to(self, pattern: str, method: str | None = None) -> list[Request]:
        rx = re.compile(pattern)
        return [r for r in self.log if rx.search(r.path) and (method is None or r.method == method)]

    def start(self) -> FakeServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without this each answer waits ~40 ms
            # for a delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with server.lock:
                    server.log.append(request)
                fault = server.faults.take(parts.path)
                if fault is not None and server._apply_fault(self, fault):
                    return
                reply = server.dispatch(request)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                data = reply.encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        # A short poll interval: stop() waits for it, and every end-to-end test stops a server.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(self, request: Request) -> Reply:
        for method, rx, handler in self.routes:
            if method != request.method:
                continue
            match = rx.match(request.path)
            if match:
                request.match = match
                result = handler(request)
                return result if isinstance(result, Reply) else Reply(200, result)
        return Reply(404, {"errorMessages": [f"no route for {request.method} {request.path}"]})

    def _apply_fault(self, h: BaseHTTPRequestHandler, fault: Fault) -> bool:
        """Act out a fault; return True if the request is finished."""
        if fault.kind == "status":
            body = json.dumps(fault.body).encode() if fault.body is not None else b""
            h.send_response(fault.status)
            for k, v in {"Content-Type": "application/json", **fault.headers}.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return True
        if fault.kind == "reset":
            # Close without an answer: the client sees a connection reset / remote disconnect.
            h.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            h.close_connection = True
            h.connection.close()
            return True
        if fault.kind == "stall":
            time.sleep(fault.seconds)
            return False
        if fault.kind in ("truncate", "garbage"):
            body = (
                b'{"issues": [{"id": "1", "fields": {"summ'
                if fault.kind == "truncate"
                else b"<html>oops</html>"
            )
            declared = len(body) + (100 if fault.kind == "truncate" else 0)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(declared))
            h.end_headers()
            h.wfile.write(body)
            h.close_connection = True
            if fault.kind == "truncate":
                h.connection.shutdown(socket.SHUT_RDWR)
            return True
        raise ValueError(f"unknown fault kind {fault.kind!r}")

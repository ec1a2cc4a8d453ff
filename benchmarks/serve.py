"""Fake Jira and GitHub servers for the benchmark, run in their own process.

`python benchmarks/serve.py jira 100000` generates the data, starts the fake on 127.0.0.1 and
prints one JSON line (url, credentials, build time); it serves until its stdin closes.

Both fakes answer a repeated request from its encoded reply while the data is unchanged, so
once a run has warmed them they serve pre-built pages and the client's cost is what is
measured (a fake that re-filters the dataset per page would hide it). Control endpoints,
outside the tools' APIs:

- `GET /_bench/stats`: requests served so far (and GitHub's points);
- `GET /_bench/log?start=N`: the requests from index N (method, path, query, body), which
  the ceiling loop replays;
- `POST /_bench/touch?fraction=F&seed=S`: change that fraction of the items now.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes import github as gh  # noqa: E402
from tests.fakes.jira import WORKFLOW, FakeJira, make_issues, now_ms  # noqa: E402
from tests.fakes.server import FakeServer, Reply, Request  # noqa: E402

CONTROL = "/_bench/"


def _log_entries(server: FakeServer, start: int) -> list[dict[str, Any]]:
    with server.lock:
        entries = list(server.log[start:])
    return [
        {
            "method": r.method,
            "path": r.path,
            "query": urlencode([(k, v) for k, vs in r.query.items() for v in vs]),
            "body": r.body.decode("utf-8"),
        }
        for r in entries
    ]


def _control(server: FakeServer, request: Request, touch: Any, stats: Any) -> Reply:
    name = request.path[len(CONTROL) :]
    if name == "stats":
        return Reply(200, {"log": len(server.log), **stats()})
    if name == "log":
        return Reply(200, _log_entries(server, int(request.arg("start", "0") or 0)))
    if name == "touch":
        fraction = float(request.arg("fraction", "0.01") or 0.01)
        seed = int(request.arg("seed", "7") or 7)
        return Reply(200, {"changed": touch(fraction, random.Random(seed))})
    return Reply(404, {"message": f"no control {name!r}"})


def _cache_key(request: Request) -> tuple[str, str, str, bytes]:
    query = urlencode(sorted((k, v) for k, vs in request.query.items() for v in vs))
    return (request.method, request.path, query, request.body)


class BenchJira(FakeJira):
    """FakeJira serving repeated requests from encoded replies until the data changes."""

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(make_issues(n, seed), record=False)
        self._pages: dict[tuple[str, str, str, bytes], tuple[int, Reply]] = {}

    def dispatch(self, request: Request) -> Reply:
        if request.path.startswith(CONTROL):
            return _control(self, request, self.touch, lambda: {"search_pages": self.search_pages})
        key = _cache_key(request)
        with self.data_lock:
            hit = self._pages.get(key)
            if hit is not None and hit[0] == self._version and self._auth(request) is None:
                if "/search" in request.path:
                    self.search_pages += 1
                return hit[1]
            reply = super().dispatch(request)
            if reply.status == 200 and request.method in ("GET", "POST"):
                self._pages[key] = (self._version, Reply(200, None, reply.headers, reply.encode()))
        return reply

    def touch(self, fraction: float, rng: random.Random) -> int:
        """Move a sample of the issues one step along the workflow, now."""
        with self.data_lock:
            issues = sorted(self._issues.values(), key=lambda i: i.id)
            sample = rng.sample(issues, max(1, int(len(issues) * fraction)))
            at = now_ms()
            for issue in sample:
                step = WORKFLOW.index(issue.status_id) if issue.status_id in WORKFLOW else 0
                target = WORKFLOW[min(step + 1, len(WORKFLOW) - 1)]
                if target == issue.status_id:
                    self.update(issue.key, at_ms=at, summary=issue.fields["summary"] + " (v2)")
                else:
                    self.update(issue.key, at_ms=at, status_id=target)
            self._pages.clear()
            return len(sample)


class BenchGitHub(gh.FakeGitHub):
    """The fake GitHub with its page cache on, and the benchmark's control endpoints."""

    def dispatch(self, request: Request) -> Reply:
        if request.path.startswith(CONTROL):
            return _control(
                self,
                request,
                self.touch,
                lambda: {"graphql_requests": self.graphql_requests, "points": self.points},
            )
        return super().dispatch(request)

    def touch(self, fraction: float, rng: random.Random) -> int:
        """Move a sample of the visible board items to another column."""
        project = self.project("acme", 1)
        visible = [i for i in project["_items"] if i["type"] != "REDACTED"]
        sample = rng.sample(visible, max(1, int(len(visible) * fraction)))
        for item in sample:
            current = (item["_values"].get("Status") or {}).get("name")
            choices = [s for s in gh.STATUSES if s != current]
            self.move(item, rng.choice(choices))
        return len(sample)


def build(tool: str, n: int, seed: int) -> tuple[FakeServer, dict[str, Any]]:
    """Generate the data and return the (unstarted) fake with what a client needs to know."""
    if tool == "jira":
        jira = BenchJira(n, seed)
        return jira, {"email": jira.email, "token": jira.token, "jql": "project = ACME"}
    if tool == "github":
        gh.github_schema()
        fake = BenchGitHub()
        gh.make_board(n, seed, fake=fake)
        fake.cache_pages = True
        return fake, {"token": fake.token, "project": "acme/1"}
    raise SystemExit(f"unknown tool {tool!r}; use jira or github")


def main(argv: list[str]) -> None:
    tool, n = argv[0], int(argv[1])
    seed = int(argv[2]) if len(argv) > 2 else 1
    started = time.perf_counter()
    server, info = build(tool, n, seed)
    server.start()
    assert server._httpd is not None
    # One small write for the headers, one for the body: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK can add ~40 ms to a request.
    server._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    info.update(url=server.url, tool=tool, items=n, build_seconds=time.perf_counter() - started)
    print(json.dumps(info), flush=True)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # EOF: the benchmark is done (or died)
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

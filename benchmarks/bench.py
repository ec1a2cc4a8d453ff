"""pmsync benchmark: sync throughput, requests, incremental cost, report time, peak memory.

    python benchmarks/bench.py [--items 10000,100000] [--tools jira,github] [--repeat 1]

For each tool and size it starts a local fake (benchmarks/serve.py) in its own process with
N generated items, then runs every step in a fresh Python process of its own, so a step's
peak RSS (VmHWM) is its own and the server never competes for the client's GIL:

1. full sync (`run_sync --full`: what `pmsync sync --full` does, project snapshot included)
   into a new SQLite file; items/s and requests per 1,000 items;
2. the ceiling: the same HTTP requests replayed by a plain loop of `requests` + `json` + one
   `executemany` per page of (id, key, json text) into a fresh WAL-mode SQLite file, with no
   pmsync code; the full sync's throughput is also given as a ratio to it;
3. incremental sync with nothing changed, then with 1% of the items changed;
4. the report of the project from the store: JSON, and HTML with its charts.

Every network step first runs once untimed against a copy of the store, so the fake has
built (and caches) the pages the timed run asks for: the timed runs are served pre-built
pages. Results are printed as a Markdown table (and with --json FILE, written as JSON).
`--profile DIR` also writes a cProfile of the full sync (per tool and size) to DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN_ENV = "PMSYNC_BENCH_TOKEN"
PROJECT = "acme"
SOURCE = "bench"


# -- inside a step process ----------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_config(server: dict[str, Any], db: Path) -> Any:
    """The config a user would write for this fake: one source and one project."""
    from config.loader import parse_config

    if server["tool"] == "jira":
        source = {
            "kind": "jira",
            "url": server["url"],
            "email": server["email"],
            "token": "${" + TOKEN_ENV + "}",
            "jql": server["jql"],
        }
    else:
        source = {
            "kind": "github",
            "project": server["project"],
            "token": "${" + TOKEN_ENV + "}",
            "api_url": server["url"],
        }
    today = datetime.now(UTC).date()
    raw = {
        "store": {"path": str(db)},
        "sources": {SOURCE: source},
        "projects": {
            PROJECT: {
                "name": "Benchmark project",
                "client": "Bench Corp",
                "sources": [SOURCE],
                "start_date": today - timedelta(days=150),
                "target_date": today + timedelta(days=60),
            }
        },
    }
    os.environ[TOKEN_ENV] = server["token"]
    return parse_config(raw, label="bench", base_dir=db.parent)


def step_sync(server: dict[str, Any], db: Path, full: bool) -> dict[str, Any]:
    from sync.engine import run_sync
    from sync.store import Store

    config = bench_config(server, db)
    store = Store.open(db)
    started, cpu = time.perf_counter(), time.process_time()
    (result,) = run_sync(config, store, full=full)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "sync_seconds": result.seconds,
        "status": result.status,
        "error": result.error,
        "mode": result.mode,
        "seen": result.seen,
        "new": result.new,
        "changed": result.changed,
        "client_requests": result.requests,
    }


def _board_nodes(data: Any) -> list[dict[str, Any]] | None:
    """The `items.nodes` list of a Projects GraphQL answer, wherever it is nested."""
    if isinstance(data, dict):
        items = data.get("items")
        if isinstance(items, dict) and isinstance(items.get("nodes"), list):
            return items["nodes"]
        for value in data.values():
            found = _board_nodes(value)
            if found is not None:
                return found
    return None


def step_ceiling(server: dict[str, Any], db: Path, replay: Path) -> dict[str, Any]:
    """Replay the recorded requests with requests + json + one executemany per page."""
    entries = json.loads(replay.read_text())
    session = requests.Session()
    if server["tool"] == "jira":
        session.auth = (server["email"], server["token"])
    else:
        session.headers["Authorization"] = f"Bearer {server['token']}"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, key TEXT, raw TEXT NOT NULL)")
    sql = "INSERT OR REPLACE INTO items VALUES (?, ?, ?)"
    rows = 0
    started, cpu = time.perf_counter(), time.process_time()
    for e in entries:
        url = server["url"] + e["path"] + (f"?{e['query']}" if e["query"] else "")
        body = e["body"].encode() if e["body"] else None
        headers = {"Content-Type": "application/json"} if body else None
        response = session.request(e["method"], url, data=body, headers=headers, timeout=60)
        response.raise_for_status()
        data = json.loads(response.content)
        if server["tool"] == "jira":
            page = data.get("issues") if isinstance(data, dict) else None
            values = [(i["id"], i.get("key"), json.dumps(i)) for i in page or ()]
        else:
            nodes = _board_nodes(data) or []
            values = [(n["id"], None, json.dumps(n)) for n in nodes if n]
        if values:
            conn.execute("BEGIN")
            conn.executemany(sql, values)
            conn.execute("COMMIT")
            rows += len(values)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": rows, "status": "ok"}


def step_report(server: dict[str, Any], db: Path, fmt: str) -> dict[str, Any]:
    from sync.render import render
    from sync.report import build_report
    from sync.store import Store

    config = bench_config(server, db)
    store = Store.open(db, readonly=True)
    started = time.perf_counter()
    report = build_report(store, config, PROJECT)
    built = time.perf_counter()
    text = render(report, fmt)  # type: ignore[arg-type]
    done = time.perf_counter()
    store.close()
    return {
        "seconds": done - started,
        "build_seconds": built - started,
        "render_seconds": done - built,
        "bytes": len(text.encode()),
        "charts": text.count("<svg"),
        "status": "ok",
    }


def run_step(argv: list[str]) -> None:
    """Entry point of a step process: run one step, print its result as one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=("full", "incremental", "ceiling", "report"))
    p.add_argument("--server", required=True)
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--replay", type=Path)
    p.add_argument("--format", default="html")
    p.add_argument("--profile", type=Path)
    a = p.parse_args(argv)
    server = json.loads(a.server)
    os.environ.setdefault("MPLBACKEND", "Agg")
    baseline = peak_rss_mb()

    def work() -> dict[str, Any]:
        if a.name in ("full", "incremental"):
            return step_sync(server, a.db, full=a.name == "full")
        if a.name == "ceiling":
            return step_ceiling(server, a.db, a.replay)
        return step_report(server, a.db, a.format)

    if a.profile:
        import cProfile

        profiler = cProfile.Profile()
        out = profiler.runcall(work)
        profiler.dump_stats(a.profile)
    else:
        out = work()
    out.update(peak_rss_mb=peak_rss_mb(), start_rss_mb=baseline)
    print(json.dumps(out))


# -- the orchestrator -----------------------------------------------------------------------


class Server:
    """A fake tool server in its own process (benchmarks/serve.py)."""

    def __init__(self, tool: str, items: int, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serve.py"), tool, str(items), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the fake {tool} server did not start")
        self.info: dict[str, Any] = json.loads(line)

    def get(self, name: str, **params: Any) -> Any:
        response = requests.get(f"{self.info['url']}/_bench/{name}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def touch(self, fraction: float) -> int:
        response = requests.post(
            f"{self.info['url']}/_bench/touch", params={"fraction": fraction}, timeout=300
        )
        response.raise_for_status()
        return int(response.json()["changed"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class StepFailed(Exception):
    pass


def step(name: str, server: Server, db: Path, **kw: Any) -> dict[str, Any]:
    """Run one step in a fresh process; add the requests the server saw during it."""
    stats = server.get("stats")
    before = stats["log"]
    args = [sys.executable, __file__, "--step", name, "--server", json.dumps(server.info)]
    args += ["--db", str(db)]
    for key, value in kw.items():
        if value is not None:
            args += [f"--{key}", str(value)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise StepFailed(f"step {name} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    stats_after = server.get("stats")
    after = stats_after["log"]
    # The stats calls are logged too: `before` counts the first, `after` the second.
    out["requests"] = after - before - 1
    if "points" in stats:  # GitHub: GraphQL points as the fake counts them (rateLimit.cost)
        out["points"] = stats_after["points"] - stats["points"]
    out["log_start"] = before
    if out.get("status") != "ok":
        raise StepFailed(f"step {name} failed: {out.get('error')}")
    return out


def copy_store(src: Path, dst: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        s = Path(f"{src}{suffix}")
        if s.exists():
            shutil.copyfile(s, f"{dst}{suffix}")
    return dst


def bench_one(
    tool: str, n: int, *, seed: int, repeat: int, work: Path, profile: Path | None
) -> dict[str, Any]:
    """Every step for one tool and size; returns the measurements."""
    print(f"[{tool} {n:,}] generating and starting the fake…", file=sys.stderr, flush=True)
    server = Server(tool, n, seed)
    out: dict[str, Any] = {"tool": tool, "items": n, "build_seconds": server.info["build_seconds"]}
    try:
        print(f"[{tool} {n:,}] warm-up full sync…", file=sys.stderr, flush=True)
        out["warmup"] = step("full", server, work / f"{tool}-{n}-warm.db")
        fulls, ceilings = [], []
        for r in range(repeat):
            print(f"[{tool} {n:,}] full sync and ceiling #{r + 1}…", file=sys.stderr, flush=True)
            db = work / f"{tool}-{n}-full{r}.db"
            fulls.append(step("full", server, db))
            log = server.get("log", start=fulls[-1]["log_start"])[: fulls[-1]["requests"]]
            replay = work / f"{tool}-{n}-replay.json"
            replay.write_text(json.dumps(log))
            ceilings.append(
                step("ceiling", server, work / f"{tool}-{n}-ceiling{r}.db", replay=replay)
            )
        best = min(range(repeat), key=lambda i: fulls[i]["seconds"])
        out["full"] = fulls[best]
        out["full_db_mb"] = round(os.path.getsize(work / f"{tool}-{n}-full{best}.db") / 2**20, 1)
        out["ceiling"] = min(ceilings, key=lambda c: c["seconds"])
        full_db = work / f"{tool}-{n}-full{best}.db"
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            print(f"[{tool} {n:,}] profiling a full sync…", file=sys.stderr, flush=True)
            step(
                "full",
                server,
                work / f"{tool}-{n}-prof.db",
                profile=profile / f"{tool}-{n}-full.prof",
            )
        for label, fraction in (("inc_none", 0.0), ("inc_1pct", 0.01)):
            if fraction:
                out["touched"] = server.touch(fraction)
            print(f"[{tool} {n:,}] incremental sync ({label})…", file=sys.stderr, flush=True)
            step("incremental", server, copy_store(full_db, work / f"{tool}-{n}-{label}-w.db"))
            db = copy_store(full_db, work / f"{tool}-{n}-{label}.db")
            out[label] = step("incremental", server, db)
        report_db = work / f"{tool}-{n}-inc_1pct.db"
        for fmt in ("json", "html"):
            print(f"[{tool} {n:,}] report {fmt}…", file=sys.stderr, flush=True)
            try:
                out[f"report_{fmt}"] = step("report", server, report_db, format=fmt)
            except StepFailed as exc:  # keep the sync results; say what failed
                print(exc, file=sys.stderr)
                out[f"report_{fmt}"] = {"error": str(exc).strip().splitlines()[-1]}
    finally:
        server.stop()
    return out


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    return {
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": date.today().isoformat(),
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def rows(result: dict[str, Any]) -> Iterator[list[str]]:
    """The table rows of one tool and size."""
    n = result["items"]
    tool = result["tool"]
    full, ceiling = result["full"], result["ceiling"]
    ratio = ceiling["seconds"] / full["seconds"]
    # Client CPU time drifts less than wall time on a shared machine: show both ratios.
    cpu_ratio = ceiling["cpu_seconds"] / full["cpu_seconds"]

    def per_k(requests: int) -> str:
        return f"{1000 * requests / n:.1f}"

    def line(what: str, s: dict[str, Any], rate: str, vs: str, reqs: str) -> list[str]:
        return [
            tool,
            f"{n:,}",
            what,
            f"{s['seconds']:.2f}",
            rate,
            vs,
            reqs,
            f"{s['peak_rss_mb']:.0f}",
        ]

    points = f"; {full['points']} points ({per_k(full['points'])}/1k)" if "points" in full else ""
    yield line(
        "full sync",
        full,
        f"{n / full['seconds']:,.0f}",
        f"{ratio:.2f}× (CPU {cpu_ratio:.2f}×)",
        f"{full['requests']} ({per_k(full['requests'])}/1k){points}",
    )
    yield line(
        "ceiling (requests+json+executemany)",
        ceiling,
        f"{n / ceiling['seconds']:,.0f}",
        "1.00×",
        f"{full['requests']} (same)",
    )
    inc = result["inc_none"]
    yield line("incremental, nothing changed", inc, "", "", str(inc["requests"]))
    inc = result["inc_1pct"]
    yield line(
        f"incremental, 1% changed ({result['touched']:,})", inc, "", "", str(inc["requests"])
    )
    for fmt, label in (("json", "report JSON"), ("html", "report HTML + charts")):
        rep = result[f"report_{fmt}"]
        if "error" in rep:
            yield [tool, f"{n:,}", f"{label}: FAILED ({rep['error'][:80]})", "", "", "", "", ""]
            continue
        yield line(f"{label} (build {rep['build_seconds']:.2f} s)", rep, "", "", "0")


def budgets(results: list[dict[str, Any]]) -> Iterator[str]:
    """The request budgets the connectors promise, checked against what the fakes served."""
    for r in results:
        n = r["items"]
        full, none, inc = r["full"]["requests"], r["inc_none"]["requests"], r["inc_1pct"]
        if r["tool"] == "jira":
            k = r["touched"]
            checks = [
                ("full sync", full, -(-n // 100) + -(-n // 1000) + 5),
                (f"incremental, k={k:,}", inc["requests"], -(-k // 100) + -(-k // 1000) + 3),
                ("no change", none, 3),
            ]
        else:
            checks = [
                ("full sweep, requests per 1,000 items", round(1000 * full / n, 1), 10),
                (
                    "full sweep, points per 1,000 items",
                    round(1000 * r["full"]["points"] / n, 1),
                    40,
                ),
            ]
        for what, got, limit in checks:
            verdict = "ok" if got <= limit else "OVER"
            yield f"{r['tool']} {n:,} {what}: {got} (budget {limit}) {verdict}"


def table(results: list[dict[str, Any]]) -> str:
    head = ["tool", "items", "step", "seconds", "items/s", "vs ceiling", "requests", "peak RSS MB"]
    body = [r for result in results for r in rows(result)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--step"]:
        run_step(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", default="10000,100000", help="sizes, comma-separated")
    p.add_argument("--tools", default="jira,github", help="jira and/or github")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="full sync/ceiling pairs; best is kept")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--profile", type=Path, help="write a cProfile of each full sync here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in a.items.split(",") if s]
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    work = Path(tempfile.mkdtemp(prefix="pmsync-bench-"))
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = []
    try:
        for tool in tools:
            for n in sizes:
                results.append(
                    bench_one(tool, n, seed=a.seed, repeat=a.repeat, work=work, profile=a.profile)
                )
                if a.json:  # keep what is measured so far
                    a.json.write_text(json.dumps({"results": results}, indent=2))
                for f in work.glob(f"{tool}-{n}-*"):
                    if not a.keep:
                        f.unlink()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    info = machine()
    info["load_before"] = load_before
    print(
        f"pmsync benchmark, {info['date']}: {info['cpus']} CPUs ({info['cpu']}), {info['memory']},"
        f" Python {info['python']}, SQLite {info['sqlite']}; load average {load_before} before,"
        f" {info['load']} after"
    )
    print()
    print(table(results))
    print()
    print("Request budgets:")
    for line in budgets(results):
        print(f"- {line}")
    if a.json:
        a.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))


if __name__ == "__main__":
    main()

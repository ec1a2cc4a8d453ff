"""The demo's HTML report in a real headless browser (Debian's chromium, no network).

A copy of the page gets a small script that records script errors, console errors and the
rendered size of both charts into a <pre id="results">; chromium's --dump-dom prints the
DOM after the load event. The page also goes through "Print to PDF".
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from config.loader import load_config
from sync.demo import run_demo
from sync.render import to_html
from sync.report import build_report
from sync.store import Store

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
PROBE = """<script>
window.__problems = [];
window.addEventListener("error", (e) => window.__problems.push("error: " + (e.message ||
  (e.target && (e.target.src || e.target.href)) || "resource")), true);
window.addEventListener("securitypolicyviolation", (e) => window.__problems.push("csp: " + e.blockedURI));
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__problems.push(level + ": " + args.join(" ")); original.apply(console, args); };
}
window.addEventListener("load", () => {
  const charts = {};
  for (const id of ["burnup-chart", "gantt-chart"]) {
    const svg = document.querySelector("#" + id + " svg");
    const box = svg ? svg.getBoundingClientRect() : null;
    charts[id] = box ? [box.width, box.height] : null;
  }
  const out = document.createElement("pre");
  out.id = "results";
  out.textContent = JSON.stringify({problems: window.__problems, charts: charts,
                                    title: document.title, tables: document.querySelectorAll("table").length});
  document.body.appendChild(out);
});
</script>
"""
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--window-size=1200,900",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):  # CI installs chromium: never skip there
            pytest.fail("CI without /usr/bin/chromium: .ci/run must install it")
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    workdir = tmp_path_factory.mktemp("demo")
    run_demo(workdir)
    page = workdir / "report.html"
    if not page.exists():  # the demo writes it; build it the same way if it did not
        config = load_config(workdir / "pmsync.toml")
        store = Store.open(config.store.path, readonly=True)
        try:
            page.write_text(to_html(build_report(store, config, "acme")), encoding="utf-8")
        finally:
            store.close()
    return page


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    if profile.exists():
        shutil.rmtree(profile)
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_demo_report_loads_cleanly_and_draws_both_charts(demo_html: Path, tmp_path: Path) -> None:
    html = demo_html.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    done = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="results">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    results = json.loads(html_lib.unescape(found.group(1)))
    assert results["problems"] == []
    assert results["title"].startswith("Status report: ACME Website Relaunch")
    assert results["tables"] >= 5
    for chart in ("burnup-chart", "gantt-chart"):
        width, height = results["charts"][chart]
        assert width > 300 and height > 100, (chart, width, height)


def test_demo_report_prints_to_pdf(demo_html: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    done = chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                    demo_html.as_uri())  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 2

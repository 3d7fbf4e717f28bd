"""The dashboard on a large dynamic run: time to interactive, the browser's JS heap, and the
largest API answer the pages asked for.

A finished fan-out of N steps (`count -> N x work -> total`, default N = 10 000) is recorded
in a temporary BRANCHWORK_HOME; the real `branchwork dashboard` serves it; Debian's Chromium
(headless, driven by Playwright) opens the run page several times, each in a fresh tab.

- time to interactive: from navigation start until the run's header, its graph and its
  timeline are drawn and the page's main thread has gone idle once (a frame and a task);
- JS heap: `Runtime.getHeapUsage` after a garbage collection, once the page is loaded, and
  again after opening the fan-out's box in the graph and its group in the timeline and
  scrolling the timeline through all N rows;
- the largest number of items any API answer carried (every list is paged: at most 200).

    python benchmarks/dashboard.py            # N = 10 000
    python benchmarks/dashboard.py 1000       # another N
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BRANCHWORK = str(Path(sys.executable).parent / "branchwork")
LOADS = 5
PIPELINE = """
from branchwork import pipeline, step

@step
def count(n: int) -> int:
    return n

@step
def work(i: int) -> int:
    return i * 2

@step
def total(values: list) -> int:
    return sum(values)

@pipeline
def fan_out(n: int):
    return total([work(i) for i in range(count(n))])
"""
INTERACTIVE = """async () => {
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done)));
  return performance.now();
}"""
DRAWN = (
    "() => document.querySelector('.run-header h1') && document.querySelector('g.node') "
    "&& document.querySelector('.tl-group')"
)


def record_run(home: Path, steps: int) -> str:
    """Run the fan-out with the real CLI; the run's name."""
    source = home / "fan_out.py"
    source.write_text(PIPELINE)
    env = {**os.environ, "BRANCHWORK_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run(
        [BRANCHWORK, "run", f"{source}:fan_out", "-p", f"n={steps}", "--no-progress"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(f"recorded a {steps + 2}-step run in {time.perf_counter() - started:.1f} s")
    listed = subprocess.run(
        [BRANCHWORK, "runs", "list", "-o", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return str(json.loads(listed.stdout)[0]["name"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_dashboard(home: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    server = subprocess.Popen(
        [BRANCHWORK, "dashboard", "--port", str(port), "--no-open"],
        env={**os.environ, "BRANCHWORK_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "api/runs", timeout=2):
                return server, base
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"the dashboard did not start:\n{server.stderr.read()}") from None
            time.sleep(0.1)


class ApiLog:
    """Every API answer the pages received: its item count and how long it took."""

    def __init__(self) -> None:
        self.largest = (0, "")
        self.slowest = (0.0, "")

    def __call__(self, response: Any) -> None:
        url = response.url
        if "/api/" not in url or response.status != 200:
            return
        body = response.json()
        count = max((len(v) for v in body.values() if isinstance(v, list)), default=0)
        self.largest = max(self.largest, (count, url))
        timing = response.request.timing
        self.slowest = max(self.slowest, (timing["responseEnd"] - timing["requestStart"], url))


def heap_mb(page: Any) -> float:
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    used = cdp.send("Runtime.getHeapUsage")["usedSize"]
    cdp.detach()
    return float(used) / 2**20


def time_to_interactive(browser: Any, url: str, log: ApiLog) -> tuple[float, float]:
    """One load of the run page in a fresh tab: (ms until interactive, heap MB)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("response", log)
    page.goto(url)
    page.wait_for_function(DRAWN, polling=10, timeout=30_000)
    ready = float(page.evaluate(INTERACTIVE))
    heap = heap_mb(page)
    page.close()
    return ready, heap


def scroll_everything(browser: Any, url: str, log: ApiLog, steps: int) -> tuple[float, float]:
    """Open the fan-out everywhere and scroll its N timeline rows; (heap MB, seconds)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("response", log)
    page.goto(url)
    page.wait_for_function(DRAWN, polling=10, timeout=30_000)
    page.locator("g.node[data-step='work'] .node-head").click()
    page.wait_for_selector("a.chip")
    page.locator(".tl-group[data-step='work'] button").click()
    started = time.perf_counter()
    viewport = page.locator(".tl-viewport")
    height = int(viewport.evaluate("el => el.scrollHeight"))
    for top in range(0, height, 24 * 400):  # 400 rows a step, every page of items fetched
        viewport.evaluate(f"el => {{ el.scrollTop = {top}; }}")
        page.wait_for_function(
            "() => !document.querySelector('.tl-item.muted')", polling=20, timeout=30_000
        )
    viewport.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_selector(f".tl-item[data-invocation='work_{steps}']")
    seconds = time.perf_counter() - started
    rows = page.locator(".tl-row").count()
    heap = heap_mb(page)
    page.close()
    print(f"rows in the page while scrolling {steps} step runs: {rows}")
    return heap, seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        run = record_run(home, steps)
        server, base = start_dashboard(home)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                log = ApiLog()
                url = f"{base}#/runs/{run}"
                loads = [time_to_interactive(browser, url, log) for _ in range(LOADS)]
                scrolled_heap, scroll_seconds = scroll_everything(browser, url, log, steps)
                browser.close()
        finally:
            server.kill()
            server.wait(10)
    times = [ms for ms, _ in loads]
    print(
        f"time to interactive, ms: first {times[0]:.0f}, median {statistics.median(times):.0f}, "
        f"max {max(times):.0f} ({LOADS} loads)"
    )
    print(f"JS heap after load, MB: {max(heap for _, heap in loads):.1f} (largest of {LOADS})")
    print(
        f"JS heap after opening the fan-out and scrolling all its rows, MB: "
        f"{scrolled_heap:.1f} (scrolled in {scroll_seconds:.1f} s)"
    )
    print(f"largest API answer: {log.largest[0]} items ({log.largest[1].split('/api/')[1]})")
    print(f"slowest API answer: {log.slowest[0]:.0f} ms ({log.slowest[1].split('/api/')[1]})")


if __name__ == "__main__":
    main()

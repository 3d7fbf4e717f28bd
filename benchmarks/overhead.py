"""Per-step overhead of a dynamic fan-out on the local orchestrator.

Each run persists every step (SQLite store in a temporary BRANCHWORK_HOME) with caching on;
the figure is the run's wall time divided by its number of steps, after one warm-up run.
Each N runs in a fresh process, so the peak RSS is that of the N alone.

    python benchmarks/overhead.py            # N = 10, 100, 1000, 10000
    python benchmarks/overhead.py 100 1000   # chosen sizes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, resource, sys, time
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
    k = count(n)
    return total([work(i) for i in range(k)])

n = int(sys.argv[1])
fan_out(n=2)  # warm-up: imports, store creation and migration, thread pool
start = time.perf_counter()
result = fan_out(n=n)
elapsed = time.perf_counter() - start
assert result == n * (n - 1), result
run = fan_out.last_run
assert len(run.steps) == n + 2 and run.status == "completed"
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "seconds": elapsed, "rss_mb": rss}))
"""


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BRANCHWORK_HOME": home}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def import_time() -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import branchwork"], check=True)
        whole = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare = time.perf_counter() - start
        best = min(best, whole - bare)
    return best


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000, 10000]
    print(f"{'steps':>8} {'wall s':>8} {'ms/step':>8} {'peak RSS MB':>12}")
    for n in sizes:
        r = measure(n)
        steps = n + 2
        print(
            f"{steps:>8} {r['seconds']:>8.3f} {1000 * r['seconds'] / steps:>8.3f} "
            f"{r['rss_mb']:>12.0f}"
        )
    print(
        f"import branchwork: {1000 * import_time():.0f} ms (best of 5, interpreter start "
        "subtracted)"
    )


if __name__ == "__main__":
    main()

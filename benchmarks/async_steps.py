"""2 000 `async def` steps that each await 1 s, on the local orchestrator.

A dynamic fan-out (`count -> N x nap`), caching off, every step persisted in SQLite and its
output written to the artifact store, after one warm-up run. Each step returns when it
started and ended; the most steps running at once is computed from those records, and with
`max_concurrency=` it is asserted to equal the limit exactly (never over, and reached).
Each case runs in a fresh process with its own BRANCHWORK_HOME.

    python benchmarks/async_steps.py                 # 2000 steps: no limit, then limit 500
    python benchmarks/async_steps.py 2000 none 250   # chosen size and limits
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import asyncio, json, sys, time
from branchwork import pipeline, step

n, limit = int(sys.argv[1]), sys.argv[2]
options = {} if limit == "none" else {"max_concurrency": int(limit)}

@step
def count(n: int) -> int:
    return n

@step(enable_cache=False, **options)
async def nap(i: int) -> dict:
    started = time.time()
    await asyncio.sleep(1.0)
    return {"start": started, "end": time.time()}

@pipeline(enable_cache=False)
def naps(n: int):
    return [nap(i) for i in range(count(n))]

def most_at_once(records):
    moments = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most

naps(n=2)  # warm-up: imports, store creation and migration
cpu, start = time.process_time(), time.perf_counter()
records = naps(n=n)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
assert len(records) == n and naps.last_run.status == "completed"
most = most_at_once(records)
if limit != "none":
    assert most == int(limit), f"{most} steps ran at once, the limit is {limit}"
print(json.dumps({"seconds": elapsed, "cpu": cpu, "most": most}))
"""


def measure(n: int, limit: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), limit],
            env={**os.environ, "BRANCHWORK_HOME": home},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    limits = sys.argv[2:] or ["none", "500"]
    print(f"{'steps':>6} {'limit':>6} {'wall s':>7} {'CPU s':>6} {'most at once':>13}")
    for limit in limits:
        r = measure(n, limit)
        print(f"{n:>6} {limit:>6} {r['seconds']:>7.2f} {r['cpu']:>6.2f} {r['most']:>13.0f}")
    with open("/proc/loadavg") as load:
        print(f"load average when done: {load.read().split()[0]} (2 cores)")


if __name__ == "__main__":
    main()

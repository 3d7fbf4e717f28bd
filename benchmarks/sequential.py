"""Pipelines whose body reads step values as it goes, local orchestrator.

- `loop`: `x = inc(x).load()` N times: every step waits for the one before, through the body.
- `two_stages`: N steps, every value read, then N more steps called with those values.

Each shape and N runs in a fresh process with a fresh store (SQLite, caching on, new keys);
the figures are wall time per step and the store's size per step (database and WAL).

    python benchmarks/sequential.py            # N = 1000, 3000
    python benchmarks/sequential.py 500        # chosen sizes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import glob, json, os, sys, time
from branchwork import pipeline, step

@step
def inc(x: int) -> int:
    return x + 1

@step
def double(x: int) -> int:
    return x * 2

@pipeline
def loop(start: int, n: int):
    x = start
    for _ in range(n):
        out = inc(x)
        x = out.load()
    return out

@pipeline
def two_stages(start: int, n: int):
    values = [out.load() for out in [inc(start + i) for i in range(n)]]
    return [double(v) for v in values]

shape, n = sys.argv[1], int(sys.argv[2])
chosen = {"loop": loop, "two_stages": two_stages}[shape]
chosen(start=-10, n=3)  # warm-up: imports, store creation, thread pool
begin = time.perf_counter()
chosen(start=10**9, n=n)
elapsed = time.perf_counter() - begin
steps = n if shape == "loop" else 2 * n
files = glob.glob(os.path.join(os.environ["BRANCHWORK_HOME"], "branchwork.db*"))
size = sum(os.path.getsize(path) for path in files)
print(json.dumps({"steps": steps, "seconds": elapsed, "store_bytes": size}))
"""


def measure(shape: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, shape, str(n)],
            env={**os.environ, "BRANCHWORK_HOME": home},
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 3000]
    print(f"{'shape':>10} {'steps':>7} {'wall s':>8} {'ms/step':>8} {'store KB/step':>14}")
    for shape in ("loop", "two_stages"):
        for n in sizes:
            r = measure(shape, n)
            steps = r["steps"]
            print(
                f"{shape:>10} {steps:>7} {r['seconds']:>8.2f} "
                f"{1000 * r['seconds'] / steps:>8.2f} {r['store_bytes'] / steps / 1024:>14.1f}"
            )


if __name__ == "__main__":
    main()

"""A dynamic fan-out from a thousand to a million steps: cost per step, memory, store size, the
cached rerun, and the same fan-out as plain Python calls and plain Ray tasks (the floors).

`count -> N x work -> total` on the local orchestrator, caching on, every step recorded in a
SQLite store in a fresh BRANCHWORK_HOME and durable when the call returns. Each figure comes
from a process of its own (after a warm-up run of 10 steps in it), so peak RSS is that size's:

- `ms/step`: the first run's wall time / steps (every cache key new);
- `cached ms/step`: the same call again in a new process, every step a cache hit;
- `RSS MB`: the first run's process peak; `store B/step`: the home's bytes / steps after it;
- `python µs/step`: the same fan-out as plain function calls; `ray ms/step`: as plain Ray
  tasks of the same shape (`ray.remote`, a local 2-CPU Ray, results fetched with one
  `ray.get`), which record nothing (left out past 100 000 tasks unless --ray-all).

    python benchmarks/scale.py                    # 1 000, 10 000, 100 000 steps
    python benchmarks/scale.py 1000000            # chosen sizes (a million: ~15 min here)
    python benchmarks/scale.py --no-ray 1000      # without the Ray floor
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = r"""
import json, resource, sys, time
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

@pipeline
def warm_up():  # imports, store creation and migration, the thread pool: keys no run reuses
    return total([work(-i) for i in range(1, count(-10) + 21)])

n, warm = int(sys.argv[1]), sys.argv[2] == "warm"
if warm:
    warm_up()
start = time.perf_counter()
result = fan_out(n=n)
elapsed = time.perf_counter() - start
assert result == n * (n - 1), result
print(json.dumps({
    "seconds": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
}))
"""

PLAIN_PYTHON = r"""
import json, sys, time

def count(n): return n
def work(i): return i * 2
def total(values): return sum(values)

n = int(sys.argv[1])
start = time.perf_counter()
assert total([work(i) for i in range(count(n))]) == n * (n - 1)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

PLAIN_RAY = r"""
import json, sys, time
import ray

ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

@ray.remote(num_cpus=0.25)
def count(n): return n

@ray.remote(num_cpus=0.25)
def work(i): return i * 2

@ray.remote(num_cpus=0.25)
def total(*values): return sum(values)

def fan_out(n):
    k = ray.get(count.remote(n))
    return ray.get(total.remote(*[work.remote(i) for i in range(k)]))

fan_out(10)  # warm-up: workers started
n = int(sys.argv[1])
start = time.perf_counter()
assert fan_out(n) == n * (n - 1)
print(json.dumps({"seconds": time.perf_counter() - start}))
ray.shutdown()
"""


def _run(code: str, *args: str, home: str | None = None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCHWORK_")}
    if home is not None:
        env["BRANCHWORK_HOME"] = home
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _statuses_of_last_run(home: str) -> dict[str, int]:
    """Step runs of the newest run in the store at `home`, by status (read after the run's
    process ended: all of it durable)."""
    with sqlite3.connect(Path(home, "branchwork.db")) as db:
        rows = db.execute(
            "SELECT status, count(*) FROM step_run WHERE run_id = (SELECT id FROM pipeline_run "
            "ORDER BY created DESC LIMIT 1) GROUP BY status"
        )
        return dict(rows.fetchall())


def _bytes_under(folder: str) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def measure(n: int, with_ray: bool) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as home:
        first = _run(PIPELINE, str(n), "warm", home=home)
        assert _statuses_of_last_run(home) == {"completed": n + 2}
        store_bytes = _bytes_under(home)
        cached = _run(PIPELINE, str(n), "warm", home=home)
        assert _statuses_of_last_run(home) == {"cached": n + 2}
    python = _run(PLAIN_PYTHON, str(n))
    ray = _run(PLAIN_RAY, str(n)) if with_ray else None
    steps = n + 2
    return {
        "steps": steps,
        "seconds": first["seconds"],
        "ms_per_step": first["seconds"] * 1e3 / steps,
        "cached_ms_per_step": cached["seconds"] * 1e3 / steps,
        "rss_mb": first["rss_mb"],
        "store_bytes_per_step": store_bytes / steps,
        "python_us_per_step": python["seconds"] * 1e6 / steps,
        "ray_ms_per_step": None if ray is None else ray["seconds"] * 1e3 / steps,
    }


def main() -> None:
    args = sys.argv[1:]
    no_ray, ray_all = "--no-ray" in args, "--ray-all" in args
    sizes = [int(a) for a in args if not a.startswith("--")] or [1_000, 10_000, 100_000]
    print(
        f"{'steps':>9} {'wall s':>8} {'ms/step':>8} {'cached ms/step':>15} {'RSS MB':>7} "
        f"{'store B/step':>13} {'python µs/step':>15} {'ray ms/step':>12}"
    )
    for n in sizes:
        started = time.perf_counter()
        row = measure(n, with_ray=not no_ray and (ray_all or n <= 100_000))
        ray = row["ray_ms_per_step"]
        print(
            f"{row['steps']:>9,} {row['seconds']:>8.2f} {row['ms_per_step']:>8.3f} "
            f"{row['cached_ms_per_step']:>15.3f} {row['rss_mb']:>7.0f} "
            f"{row['store_bytes_per_step']:>13.0f} {row['python_us_per_step']:>15.3f} "
            f"{'-' if ray is None else f'{ray:.3f}':>12}",
            flush=True,
        )
        print(f"          (measured in {time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()

"""A fully cached rerun of a dynamic fan-out beside its first, uncached run.

For each N, in one temporary BRANCHWORK_HOME, each figure comes from a fresh process (as in
`overhead.py`): the first run of `count -> N x work -> total` with caching on, a rerun with
the same parameters (every step must be a cache hit, or the script fails), and a rerun with
caching off for reference. A last cached rerun, apart from the timed one, times the cache's
own work: computing the keys and looking them up in the store. It wraps the functions that
do it with timers rather than running cProfile, because the loop runs in its own thread and
a deterministic profiler inflates Python-heavy code. Each child warms up on other
parameters first (imports, store, thread pool) so no measured step was computed before.

    python benchmarks/cache_rerun.py              # N = 1000, 10000
    python benchmarks/cache_rerun.py 100 1000     # chosen sizes

Which branchwork is measured follows PYTHONPATH (its path is printed), so two source trees
can be compared with the same interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

CHILD = r"""
import json, sys, time
import branchwork
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
def fan_out(n: int, first: int):
    k = count(n)
    return total([work(first + i) for i in range(k)])

def timed(owner, name, spent):
    # Replaces owner.name by a wrapper that adds the seconds spent in it to spent[name].
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)

def time_the_cache():
    # Returns a function giving (seconds computing keys, seconds looking them up).
    spent = {}
    try:
        from branchwork.runtime import cache_keys  # since the cache work
    except ImportError:  # afaab2d: the loop computes keys and looks them up itself
        from branchwork.runtime import loop
        timed(loop, "cache_key", spent)
        timed(loop, "find_cached", spent)
        return lambda: (spent.get("cache_key", 0.0), spent.get("find_cached", 0.0))
    timed(cache_keys.CacheKeys, "compute", spent)
    timed(cache_keys, "find_cached", spent)
    lookup = lambda: spent.get("find_cached", 0.0)
    return lambda: (spent.get("compute", 0.0) - lookup(), lookup())

mode, n = sys.argv[1], int(sys.argv[2])
runner = fan_out.with_options(enable_cache=False) if mode == "off" else fan_out
runner(n=2, first=-2)  # warm-up on other parameters: imports, store, thread pool
cache_time = time_the_cache() if mode == "keys" else None
start, cpu_start = time.perf_counter(), time.process_time()
result = runner(n=n, first=0)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
assert result == n * (n - 1), result
run = fan_out.last_run
assert run.status == "completed" and len(run.steps) == n + 2, (run.status, len(run.steps))
cached = sum(s.status == "cached" for s in run.steps.values())
expected = n + 2 if mode in ("cached", "keys") else 0
if cached != expected:
    sys.exit(f"{mode} run of {n + 2} steps: {cached} cached step runs, expected {expected}")
figures = {"seconds": elapsed, "cpu_seconds": cpu, "module": branchwork.__file__}
if cache_time is not None:
    figures["key_seconds"], figures["lookup_seconds"] = cache_time()
print(json.dumps(figures))
"""

MODES = ("uncached", "cached", "off", "keys")  # in this order: each needs the runs before


def run_child(mode: str, n: int, home: str) -> dict[str, Any]:
    """One measurement in a fresh process against the store in `home`."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(n)],
        env={**os.environ, "BRANCHWORK_HOME": home},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"the {mode} run with N={n} failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def measure(n: int) -> dict[str, dict[str, Any]]:
    """Every mode for one N, in a fresh BRANCHWORK_HOME."""
    with tempfile.TemporaryDirectory() as home:
        return {mode: run_child(mode, n, home) for mode in MODES}


def row(n: int, r: dict[str, dict[str, Any]]) -> list[str]:
    """The table's columns for one N."""
    steps, cached, keys = n + 2, r["cached"]["seconds"], r["keys"]
    return [
        f"{steps}",
        f"{r['uncached']['seconds']:.3f}",
        f"{cached:.3f}",
        f"{1000 * cached / steps:.3f}",
        f"{r['off']['seconds']:.3f}",
        f"{r['cached']['cpu_seconds']:.3f}",
        f"{r['uncached']['cpu_seconds']:.3f}",
        f"{100 * keys['key_seconds'] / keys['seconds']:.0f}",
        f"{100 * keys['lookup_seconds'] / keys['seconds']:.0f}",
    ]


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    header = ["steps", "uncached s", "cached s", "ms/step cached", "cache-off s"]
    header += ["cached cpu s", "uncached cpu s", "keys %"]
    widths = [len(h) + 2 for h in [*header, "lookup %"]]
    print("".join(h.rjust(w) for h, w in zip([*header, "lookup %"], widths)))
    for index, n in enumerate(sizes):
        r = measure(n)
        if index == 0:
            print(f"(branchwork from {r['uncached']['module']})")
        print("".join(c.rjust(w) for c, w in zip(row(n, r), widths)))
    print("cpu s: CPU time of the run's process (all its threads), less sensitive than wall")
    print("time to other load on the machine")
    print("keys % / lookup %: share of a further cached rerun (timed apart from 'cached s')")
    print("spent computing the cache keys / looking them up in the store")


if __name__ == "__main__":
    main()

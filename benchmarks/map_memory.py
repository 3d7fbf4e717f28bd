"""Peak memory of the orchestration loop while it maps a step over a big list output.

`make(n, size)` returns a list of n strings of `size` bytes, in a step process of its own
(`runtime="isolated"`), so the list is never built in this process; `measure.map(items)` then
runs one step per item in this process (the local orchestrator), and `total` sums them. The
figure that matters is this process's peak RSS: if the pipeline or the steps loaded the list
whole, it would grow with n x size; it should not.

    python benchmarks/map_memory.py                 # 100 000 items of 10 and of 1 000 bytes
    python benchmarks/map_memory.py 2000 10 1000    # n, then item sizes

Each (n, size) runs in a fresh process with a fresh branchwork home. To compare with another
commit, run the script with `PYTHONPATH=<that commit's checkout>/src`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from branchwork import pipeline, step


@step(runtime="isolated")
def make(n: int, size: int) -> list:
    return [f"{i:0{size}d}"[-size:] for i in range(n)]


@step
def measure(item: str) -> int:
    return len(item)


@step
def total(values: list) -> int:
    return sum(values)


@pipeline(enable_cache=False)
def map_over_a_list(n: int, size: int):
    return total(measure.map(make(n, size)))


def one(n: int, size: int) -> dict[str, float]:
    """Run the map once in this process: its figures."""
    started = time.perf_counter()
    assert map_over_a_list(n=n, size=size) == n * size
    seconds = time.perf_counter() - started
    return {
        "n": n,
        "size": size,
        "list_mb": n * (size + 3) / 1e6,  # the list's JSON: each item quoted, comma
        "seconds": seconds,
        "ms_per_step": 1000 * seconds / n,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(n: int, sizes: list[int]) -> None:
    print(f"map over a list of {n} items, local orchestrator; one fresh process per size")
    print(f"{'item bytes':>10} {'list MB':>8} {'s':>7} {'ms/step':>8} {'peak RSS MB':>12}")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="branchwork-map-") as home:
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(n), str(size)],
                env={**os.environ, "BRANCHWORK_HOME": home},
                capture_output=True,
                text=True,
                check=True,
            )
        figures = json.loads(done.stdout.splitlines()[-1])
        print(
            f"{size:>10} {figures['list_mb']:>8.1f} {figures['seconds']:>7.1f} "
            f"{figures['ms_per_step']:>8.2f} {figures['peak_rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        arguments = [int(a) for a in sys.argv[1:]]
        main(arguments[0] if arguments else 100_000, arguments[1:] or [10, 1000])

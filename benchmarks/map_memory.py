"""Peak memory of the orchestration process while it maps a step over a big list output.

On the local_process orchestrator: `make(n, size)` returns a list of n strings of `size`
bytes in a step process of its own (`runtime="isolated"`), so the list is never built in
the orchestration process; `measure.map(items)` then runs one step per item in threads of
the orchestration process, and `total` sums them. The figure that matters is the
orchestration process's peak RSS, which the pipeline body reads once every step is done: if
the pipeline or the steps loaded the list whole, it would grow with n x size; it should not.

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
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack


@step(runtime="isolated")
def make(n: int, size: int) -> list:
    return [f"{i:0{size}d}"[-size:] for i in range(n)]


@step
def measure(item: str) -> int:
    return len(item)


@step
def total(values: list) -> int:
    return sum(values)


@step
def peak_rss_kb(kilobytes: int) -> int:
    return kilobytes


@pipeline(enable_cache=False)
def map_over_a_list(n: int, size: int):
    summed = total(measure.map(make(n, size)))
    summed.wait()  # every step done: what the orchestration process used at most so far
    return summed, peak_rss_kb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def one(n: int, size: int) -> dict[str, float]:
    """Run the map once on the local_process orchestrator: its figures."""
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    started = time.perf_counter()
    with active_stack(stack):
        summed, peak_kb = map_over_a_list(n=n, size=size)
    seconds = time.perf_counter() - started
    assert summed == n * size
    return {
        "n": n,
        "size": size,
        "list_mb": n * (size + 3) / 1e6,  # the list's JSON: each item quoted, comma
        "seconds": seconds,
        "ms_per_step": 1000 * seconds / n,
        "peak_rss_mb": peak_kb / 1024,
    }


def main(n: int, sizes: list[int]) -> None:
    print(f"map over a list of {n} items, local_process orchestrator; a fresh run per size")
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

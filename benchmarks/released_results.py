"""Memory of a long dynamic run whose body lets go of its futures: a loop over chunks, each a
fan-out of `size` steps and a fan-in whose value the body reads before the next chunk.

The results of finished steps (their outputs' records, a loaded value) are kept only while a
future of them, or a call not yet recorded that needs them, exists: peak RSS should stay flat
as the number of chunks grows, not grow with every step run. Each size in a fresh process
(peak RSS is that run's), caching on, SQLite, a fresh BRANCHWORK_HOME.

    python benchmarks/released_results.py             # 10, 40 and 160 chunks of 500 steps
    python benchmarks/released_results.py 500 10 100  # chunk size, then chunk counts
"""

from __future__ import annotations

import sys
import tempfile

from scale import _run

PIPELINE = r"""
import json, resource, sys, time
from branchwork import pipeline, step

@step
def work(i: int) -> int:
    return i * 2

@step
def total(values: list) -> int:
    return sum(values)

@pipeline
def chunked(chunks: int, size: int):
    result = int(total([]))
    for chunk in range(chunks):
        result += int(total([work(chunk * size + i) for i in range(size)]))
    return total([result])

chunks, size = int(sys.argv[1]), int(sys.argv[2])
start = time.perf_counter()
n = chunks * size
assert chunked(chunks=chunks, size=size) == n * (n - 1)
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def main() -> None:
    args = [int(arg) for arg in sys.argv[1:]]
    size = args[0] if args else 500
    counts = args[1:] or [10, 40, 160]
    print(f"{'chunks':>7} {'steps':>8} {'wall s':>8} {'ms/step':>8} {'peak RSS MB':>12}")
    for chunks in counts:
        steps = chunks * (size + 1) + 2
        with tempfile.TemporaryDirectory() as home:
            run = _run(PIPELINE, str(chunks), str(size), home=home)
        print(
            f"{chunks:>7} {steps:>8,} {run['seconds']:>8.1f} "
            f"{1000 * run['seconds'] / steps:>8.3f} {run['rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    main()

"""Isolated steps on the local_process orchestrator: per-step overhead and parallel speedup.

1. Overhead: N trivial steps run one at a time (max_workers=1), isolated vs inline. The
   per-step figure is the median time from one step's launch to the next's (the recorded
   start times), isolated minus inline: what isolation adds to each step (handing the
   request to a process forked from the warm zygote, envelopes, the result travelling
   back), untouched by what a run pays once (starting its orchestration process and, for
   isolated steps, the zygote) and robust to the machine's hiccups. Whole runs are timed
   too: (isolated - inline) / N mixes the once-per-run zygote start into the per-step
   figure, as this benchmark's first version reported it.
2. Speedup: 8 CPU-bound isolated steps (cpu_count=1 each) with a capacity of 1 CPU
   (one at a time) and of 2 CPUs.

    python benchmarks/isolated.py [N] [REPEATS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from branchwork import pipeline, step
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.config import ResourceSettings
from branchwork.orchestrators.local_process import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack


@step
def trivial(i: int) -> int:
    return i


@step(settings={"resources": ResourceSettings(cpu_count=1)})
def burn(i: int) -> int:
    total = 0
    for k in range(15_000_000):
        total += k % 7
    return total + i


# One step object per runtime, as a step decorated with its runtime is: a step is pickled
# for its requests once, not at each call (`with_options` in the loop would make n steps).
TRIVIAL = {runtime: trivial.with_options(runtime=runtime) for runtime in ("inline", "isolated")}


@pipeline(dynamic=True, enable_cache=False)
def trivial_fan(n: int, runtime: str):
    return [TRIVIAL[runtime](i) for i in range(n)]


@pipeline(dynamic=True, enable_cache=False)
def burn_fan(n: int):
    return [burn(i) for i in range(n)]


def timed(orchestrator: LocalProcessOrchestrator, pipe, **params) -> float:
    stack = Stack("bench", orchestrator, LocalArtifactStore(os.environ["BRANCHWORK_HOME"] + "/a"))
    with active_stack(stack):
        start = time.perf_counter()
        pipe(**params)
        return time.perf_counter() - start


def step_cycle(pipe) -> float:
    """The median time between consecutive step launches of the pipeline's last run."""
    starts = sorted(step.start_time for step in pipe.last_run.steps.values())
    return statistics.median((b - a).total_seconds() for a, b in zip(starts, starts[1:]))


def overhead(n: int, repeats: int) -> None:
    """Runs inline and isolated alternately (the machine's load drifts), medians of each."""
    one = LocalProcessOrchestrator(max_workers=1)
    timed(one, trivial_fan, n=2, runtime="isolated")  # warm-up
    runs: dict[str, list[float]] = {"inline": [], "isolated": []}
    cycles: dict[str, list[float]] = {"inline": [], "isolated": []}
    for _ in range(repeats):
        for runtime in runs:
            runs[runtime].append(timed(one, trivial_fan, n=n, runtime=runtime))
            cycles[runtime].append(step_cycle(trivial_fan))
    inline, isolated = (statistics.median(runs[r]) for r in runs)
    cycle_inline, cycle_isolated = (statistics.median(cycles[r]) for r in cycles)
    print(f"{n} trivial steps one at a time, median of {repeats} runs each:")
    print(
        f"  launch to next launch: inline {1000 * cycle_inline:.1f} ms, "
        f"isolated {1000 * cycle_isolated:.1f} ms"
    )
    print(f"  isolation overhead per step: {1000 * (cycle_isolated - cycle_inline):.1f} ms")
    print(f"  whole runs: inline {inline:.2f}s, isolated {isolated:.2f}s")
    print(f"  (isolated - inline) / {n}: {1000 * (isolated - inline) / n:.1f} ms")


BURN = "total = 0\nfor k in range(15_000_000):\n    total += k % 7\n"


def machine_speedup() -> float:
    """What 2 CPUs give bare Python processes here (VMs share cores with neighbours)."""

    def batch(parallel: int) -> float:
        start = time.perf_counter()
        for _ in range(8 // parallel):
            procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(parallel)]
            for proc in procs:
                proc.wait()
        return time.perf_counter() - start

    return batch(1) / batch(2)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as home:
        os.environ["BRANCHWORK_HOME"] = home
        overhead(n, repeats)
        serial = timed(LocalProcessOrchestrator(cpu_count=1), burn_fan, n=8)
        parallel = timed(LocalProcessOrchestrator(cpu_count=2), burn_fan, n=8)
        print(
            f"8 CPU-bound isolated steps: 1 CPU {serial:.2f}s, 2 CPUs {parallel:.2f}s, "
            f"speedup {serial / parallel:.2f}x"
        )
        print(f"the machine itself, 8 bare processes of that loop: {machine_speedup():.2f}x")


if __name__ == "__main__":
    main()

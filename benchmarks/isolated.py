"""Isolated steps on the local_process orchestrator: per-step overhead and parallel speedup.

1. Overhead: N trivial steps run one at a time (max_workers=1), isolated vs inline; the
   difference per step is what isolation costs (fork from the warm zygote, envelopes, the
   result travelling back).
2. Speedup: 8 CPU-bound isolated steps (cpu_count=1 each) with a capacity of 1 CPU
   (one at a time) and of 2 CPUs.

    python benchmarks/isolated.py
"""

from __future__ import annotations

import os
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


@pipeline(dynamic=True, enable_cache=False)
def trivial_fan(n: int, runtime: str):
    return [trivial.with_options(runtime=runtime)(i) for i in range(n)]


@pipeline(dynamic=True, enable_cache=False)
def burn_fan(n: int):
    return [burn(i) for i in range(n)]


def timed(orchestrator: LocalProcessOrchestrator, pipe, **params) -> float:
    stack = Stack("bench", orchestrator, LocalArtifactStore(os.environ["BRANCHWORK_HOME"] + "/a"))
    with active_stack(stack):
        start = time.perf_counter()
        pipe(**params)
        return time.perf_counter() - start


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
    with tempfile.TemporaryDirectory() as home:
        os.environ["BRANCHWORK_HOME"] = home
        one = LocalProcessOrchestrator(max_workers=1)
        timed(one, trivial_fan, n=2, runtime="isolated")  # warm-up
        inline = timed(one, trivial_fan, n=n, runtime="inline")
        isolated = timed(one, trivial_fan, n=n, runtime="isolated")
        print(f"{n} trivial steps one at a time: inline {inline:.2f}s, isolated {isolated:.2f}s")
        print(f"isolation overhead: {1000 * (isolated - inline) / n:.1f} ms per step")
        serial = timed(LocalProcessOrchestrator(cpu_count=1), burn_fan, n=8)
        parallel = timed(LocalProcessOrchestrator(cpu_count=2), burn_fan, n=8)
        print(
            f"8 CPU-bound isolated steps: 1 CPU {serial:.2f}s, 2 CPUs {parallel:.2f}s, "
            f"speedup {serial / parallel:.2f}x"
        )
        print(f"the machine itself, 8 bare processes of that loop: {machine_speedup():.2f}x")


if __name__ == "__main__":
    main()

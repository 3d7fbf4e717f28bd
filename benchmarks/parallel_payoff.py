"""When do parallel steps pay off? A fan-out of N steps of a given duration, per orchestrator,
beside running the same work one call after another in plain Python.

Each step either waits (`time.sleep`: I/O, a remote call) or computes (a pure-Python loop
holding the GIL, as many iterations as take the duration alone on this machine), for 1, 10
or 100 ms. The figure is the speedup (N x duration) / wall time of the run: above 1, the
pipeline beat a plain loop despite recording every step; below 1, its overheads cost more
than parallelism gave. `start s` is the wall time of a run of one 1 ms step: what a run pays
once (for local_process, starting its orchestration process and the zygote), included in
every speedup.
Orchestrators: `local` (steps in threads of the orchestration process), `local_process`
with `runtime="isolated"` (each step in a process forked from a warm zygote) and `ray`
(a local 2-CPU Ray started by the orchestrator). Caching off; steps hold no CPU request, so
each orchestrator runs as many at once as it allows (threads: 8; isolated: one per CPU;
Ray: one per CPU).

    python benchmarks/parallel_payoff.py            # N = 32
    python benchmarks/parallel_payoff.py 32 --no-ray
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

from branchwork import pipeline, step
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.orchestrators.local import LocalOrchestrator
from branchwork.orchestrators.local_process import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack

DURATIONS = (0.001, 0.01, 0.1)


def _loop(iterations: int) -> int:
    total = 0
    for k in range(iterations):
        total += k % 7
    return total


def _iterations_per_second() -> float:
    start = time.perf_counter()
    _loop(2_000_000)
    return 2_000_000 / (time.perf_counter() - start)


# Measured once here; passed on to isolated steps' processes through the environment.
RATE = float(os.environ.setdefault("PAYOFF_RATE", str(_iterations_per_second())))


def _compute(seconds: float) -> None:
    _loop(int(seconds * RATE))


@step
def waits(seconds: float, i: int) -> int:
    time.sleep(seconds)
    return i


@step
def computes(seconds: float, i: int) -> int:
    _compute(seconds)
    return i


STEPS = {
    runtime: {
        "wait": waits.with_options(runtime=runtime),
        "compute": computes.with_options(runtime=runtime),
    }
    for runtime in ("inline", "isolated")
}


@pipeline(dynamic=True, enable_cache=False)
def fan(n: int, seconds: float, kind: str, runtime: str) -> Any:
    return [STEPS[runtime][kind](seconds, i) for i in range(n)]


def _orchestrators(with_ray: bool) -> dict[str, tuple[Any, str]]:
    found: dict[str, tuple[Any, str]] = {
        "local (threads)": (LocalOrchestrator(), "inline"),
        "local_process (isolated)": (LocalProcessOrchestrator(), "isolated"),
    }
    if with_ray:
        from branchwork.orchestrators.ray import RayOrchestrator

        found["ray"] = (RayOrchestrator(num_cpus=2), "inline")
    return found


def speedup(orchestrator: Any, runtime: str, n: int, seconds: float, kind: str) -> float:
    store = LocalArtifactStore(os.path.join(os.environ["BRANCHWORK_HOME"], "artifacts"))
    with active_stack(Stack("payoff", orchestrator, store)):
        start = time.perf_counter()
        fan(n=n, seconds=seconds, kind=kind, runtime=runtime)
        wall = time.perf_counter() - start
    return n * seconds / wall


def main() -> None:
    args = sys.argv[1:]
    n = int(next((a for a in args if not a.startswith("--")), "32"))
    with tempfile.TemporaryDirectory() as home:
        os.environ["BRANCHWORK_HOME"] = home
        orchestrators = _orchestrators(with_ray="--no-ray" not in args)
        header = " ".join(
            f"{f'{kind} {1000 * s:g} ms':>14}" for kind in ("wait", "compute") for s in DURATIONS
        )
        print(f"{n} steps, speedup over a plain loop (x)")
        print(f"{'orchestrator':<25} {'start s':>7} {header}")
        for name, (orchestrator, runtime) in orchestrators.items():
            speedup(orchestrator, runtime, 2, 0.001, "wait")  # warm-up: imports, Ray workers
            start = 0.001 / speedup(orchestrator, runtime, 1, 0.001, "wait")
            figures = [
                speedup(orchestrator, runtime, n, seconds, kind)
                for kind in ("wait", "compute")
                for seconds in DURATIONS
            ]
            cells = " ".join(f"{figure:>14.2f}" for figure in figures)
            print(f"{name:<25} {start:>7.2f} {cells}", flush=True)


if __name__ == "__main__":
    main()

"""The Ray orchestrator beside plain Ray: per-step overhead and the speedup of CPU-bound steps.

Starts a local Ray cluster of 2 CPUs (`ray.init(num_cpus=2)`), then:

1. Overhead: a fan-out of N trivial steps (count -> N x work -> total, caching off) on the
   RayOrchestrator, with the loop in the driver and on the cluster, beside plain Ray tasks
   doing the same work in the same shape (count task -> N tasks -> a total task given their
   refs). Both hold the same 0.25 CPU per task, so Ray runs 8 at a time either way. The
   figure is wall time / (N + 2) tasks, best of `REPEATS`, after a warm-up; branchwork's
   includes storing every output in the artifact store and recording every step.
2. Speedup: 8 CPU-bound steps with `cpu_count=1` one at a time (`max_workers=1`) and then
   as the 2 CPUs allow, beside the same with plain Ray tasks (`num_cpus=1`).

    python benchmarks/ray_overhead.py          # N = 200
    python benchmarks/ray_overhead.py 1000     # chosen N
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import ray

from branchwork import pipeline, step
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.config import ResourceSettings
from branchwork.orchestrators.ray import RayOrchestrator
from branchwork.stack import Stack, active_stack

REPEATS = 3
BURN = 4_000_000  # about 0.3 s of one CPU here


@step
def count(n: int) -> int:
    return n


@step
def work(i: int) -> int:
    return i * 2


@step
def total(values: list[int]) -> int:
    return sum(values)


def burn_cpu(i: int) -> int:
    acc = 0
    for k in range(BURN):
        acc += k % 7
    return acc + i


@step(settings={"resources": ResourceSettings(cpu_count=1)})
def burn(i: int) -> int:
    return burn_cpu(i)


@pipeline(dynamic=True, enable_cache=False)
def fan_out(n: int) -> Any:
    k = count(n)
    return total([work(i) for i in range(k)])


@pipeline(dynamic=True, enable_cache=False)
def burn_fan(n: int) -> Any:
    return [burn(i) for i in range(n)]


@ray.remote(num_cpus=0.25)
def ray_count(n: int) -> int:
    return n


@ray.remote(num_cpus=0.25)
def ray_work(i: int) -> int:
    return i * 2


@ray.remote(num_cpus=0.25)
def ray_total(*values: int) -> int:
    return sum(values)


@ray.remote(num_cpus=1)
def ray_burn(i: int) -> int:
    return burn_cpu(i)


def plain_fan_out(n: int) -> int:
    k = ray.get(ray_count.remote(n))
    return int(ray.get(ray_total.remote(*[ray_work.remote(i) for i in range(k)])))


def plain_burn(n: int, at_once: int) -> list[int]:
    results: list[int] = []
    for start in range(0, n, at_once):
        results += ray.get([ray_burn.remote(i) for i in range(start, min(n, start + at_once))])
    return results


def best(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def on(orchestrator: RayOrchestrator, pipe: Any, **params: Any) -> Callable[[], Any]:
    store = LocalArtifactStore(os.path.join(os.environ["BRANCHWORK_HOME"], "artifacts"))
    stack = Stack("bench", orchestrator, store)

    def call() -> Any:
        with active_stack(stack):
            return pipe(**params)

    return call


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as home:
        os.environ["BRANCHWORK_HOME"] = home
        started = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(
            f"local Ray cluster of 2 CPUs started in {time.perf_counter() - started:.1f}s "
            f"(load average {os.getloadavg()[0]:.1f}: other work on the machine skews the figures)"
        )
        driver, cluster = RayOrchestrator(), RayOrchestrator(loop="cluster")
        for warm in (lambda: plain_fan_out(n), on(driver, fan_out, n=n), on(cluster, fan_out, n=n)):
            warm()
        tasks = n + 2
        plain = best(lambda: plain_fan_out(n)) / tasks
        print(f"fan-out of {n} trivial steps ({tasks} tasks), per task, best of {REPEATS}:")
        print(f"  plain Ray tasks          {1000 * plain:6.2f} ms")
        for label, orchestrator in (("driver", driver), ("cluster", cluster)):
            per_step = best(on(orchestrator, fan_out, n=n)) / tasks
            print(
                f"  RayOrchestrator, loop={label:<7} {1000 * per_step:6.2f} ms "
                f"({per_step / plain:.2f}x plain Ray)"
            )
        serial = best(on(RayOrchestrator(max_workers=1), burn_fan, n=8))
        parallel = best(on(driver, burn_fan, n=8))
        plain_serial = best(lambda: plain_burn(8, 1))
        plain_parallel = best(lambda: plain_burn(8, 8))
        print("8 CPU-bound steps (cpu_count=1) on 2 CPUs:")
        print(
            f"  RayOrchestrator: one at a time {serial:.2f}s, parallel {parallel:.2f}s, "
            f"speedup {serial / parallel:.2f}x"
        )
        print(
            f"  plain Ray:       one at a time {plain_serial:.2f}s, parallel "
            f"{plain_parallel:.2f}s, speedup {plain_serial / plain_parallel:.2f}x"
        )
        ray.shutdown()


if __name__ == "__main__":
    main()

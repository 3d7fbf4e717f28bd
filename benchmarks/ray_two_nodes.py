"""A dynamic fan-out across a two-node Ray cluster, beside the same fan-out as plain Ray tasks.

Starts the throwaway cluster the tests use (`tests/ray_cluster.py`: a head and a second node,
1 CPU each, token authentication on, both `ray start`ed on this machine), connects as a
team's driver would (by address, with the token from the environment), and runs
`count -> N x work -> total` with steps that hold 0.25 CPU each, so both nodes run 4 at a
time, on the RayOrchestrator (loop in the driver) and as plain Ray tasks of the same shape.
Each figure is the best of REPEATS after a warm-up; branchwork's includes storing every
output (a local store both nodes of this machine reach) and recording every step in SQLite.
It also prints how many steps each node ran.

    python benchmarks/ray_two_nodes.py          # N = 200
    python benchmarks/ray_two_nodes.py 1000
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import ray  # noqa: E402

from branchwork import pipeline, step  # noqa: E402
from branchwork.artifact_stores import LocalArtifactStore  # noqa: E402
from branchwork.config import ResourceSettings  # noqa: E402
from branchwork.orchestrators.ray import RayOrchestrator  # noqa: E402
from branchwork.stack import Stack, active_stack  # noqa: E402
from ray_cluster import RayCluster, driver_of, wait_for_nodes  # noqa: E402

REPEATS = 3
QUARTER = {"resources": ResourceSettings(cpu_count=0.25)}


@step(settings=QUARTER)
def count(n: int) -> int:
    return n


@step(settings=QUARTER)
def work(i: int) -> str:
    return ray.get_runtime_context().get_node_id()


@step(settings=QUARTER)
def total(nodes: list[str]) -> dict[str, int]:
    return dict(collections.Counter(nodes))


@pipeline(dynamic=True, enable_cache=False)
def fan_out(n: int) -> Any:
    k = count(n)
    return total([work(i) for i in range(k)])


@ray.remote(num_cpus=0.25)
def ray_count(n: int) -> int:
    return n


@ray.remote(num_cpus=0.25)
def ray_work(i: int) -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=0.25)
def ray_total(*nodes: str) -> dict[str, int]:
    return dict(collections.Counter(nodes))


def plain_fan_out(n: int) -> dict[str, int]:
    k = ray.get(ray_count.remote(n))
    return dict(ray.get(ray_total.remote(*[ray_work.remote(i) for i in range(k)])))


def best(call: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of REPEATS calls, and what the last one returned."""
    times, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as home, RayCluster() as cluster:
        os.environ["BRANCHWORK_HOME"] = home
        started = time.perf_counter()
        cluster.start()
        print(
            f"two-node Ray cluster started in {time.perf_counter() - started:.1f}s (load average "
            f"{os.getloadavg()[0]:.1f}: other work on the machine skews the figures)"
        )
        with driver_of(cluster):
            orchestrator = RayOrchestrator(address=cluster.address)
            stack = Stack("two-nodes", orchestrator, LocalArtifactStore(Path(home) / "artifacts"))

            def on_branchwork() -> dict[str, int]:
                with active_stack(stack):
                    return dict(fan_out(n=n))

            on_branchwork()  # connects, and warms both nodes' workers
            wait_for_nodes(2)
            plain_fan_out(n)
            tasks = n + 2
            plain, plain_nodes = best(lambda: plain_fan_out(n))
            ours, our_nodes = best(on_branchwork)
            print(f"fan-out of {n} steps ({tasks} tasks) over two nodes, best of {REPEATS}:")
            print(
                f"  plain Ray tasks    {1000 * plain / tasks:6.2f} ms per task, by node "
                f"{sorted(plain_nodes.values())}"
            )
            print(
                f"  RayOrchestrator    {1000 * ours / tasks:6.2f} ms per step, by node "
                f"{sorted(our_nodes.values())} ({ours / plain:.2f}x plain Ray)"
            )


if __name__ == "__main__":
    main()

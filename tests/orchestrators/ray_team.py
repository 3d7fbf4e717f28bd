"""Steps and pipelines shared by the two-node Ray tests (test_ray_cluster*.py): steps that
report the node they ran on, and steps that ask for a custom resource.

Steps that must run at the same time meet at a rendezvous: `parties` steps of 0.25 CPU
running at once on two nodes of 1 CPU each are 4 on each node, so where they ran is
decided by arithmetic, not by Ray's scheduler's mood."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from branchwork import get_step_context, pipeline, step
from branchwork.artifact_stores.inline import INLINE_LIMIT
from branchwork.config import ResourceSettings, StepRetryConfig

MEET_TIMEOUT = 90.0


def node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def started(marker_dir: str) -> list[list[str]]:
    """[invocation id, attempt, node id] of every attempt of a part that has started."""
    return sorted(path.read_text().split() for path in Path(marker_dir).glob("*.started"))


def completed(marker_dir: str) -> list[list[str]]:
    """[invocation id, node id] of every part that completed: its side effect."""
    log = Path(marker_dir, "completed.log")
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


# ---- steps and pipelines --------------------------------------------------------------------


@step
def emit(n: int) -> int:
    return n


@step
def part(marker_dir: str, index: int, parties: int) -> dict[str, Any]:
    """Meets the other parts, then waits for the file `release` (if the test wants to act
    first), and only then appends its one line to `completed.log`: its side effect."""
    context = get_step_context()
    here = node_id()
    marker = Path(marker_dir, f"{index}-{context.attempt}.started")
    marker.write_text(f"{context.invocation_id} {context.attempt} {here}")
    wait_for(lambda: len(started(marker_dir)) >= parties, MEET_TIMEOUT, f"{parties} parts")
    wait_for(lambda: not Path(marker_dir, "hold").exists(), MEET_TIMEOUT, "the release")
    with open(Path(marker_dir, "completed.log"), "a") as log:
        log.write(f"{context.invocation_id} {here}\n")
    print(f"{context.invocation_id} ran on {here}")
    return {"node": here, "values": list(range(index * 1000, index * 1000 + 1000))}


@step
def gather(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The fan-in: reads every part's output, wherever it was written."""
    return {
        "nodes": sorted({p["node"] for p in parts}),
        "total": sum(sum(p["values"]) for p in parts),
        "gathered_on": node_id(),
    }


@pipeline(dynamic=True, enable_cache=False)
def spread(marker_dir: str, n: int) -> Any:
    count = emit(n)
    return gather([part(marker_dir, i, count) for i in range(count)])


@pipeline(dynamic=True, enable_cache=False, retry=StepRetryConfig(max_retries=1))
def spread_with_retries(marker_dir: str, n: int) -> Any:
    count = emit(n)
    return gather([part(marker_dir, i, count) for i in range(count)])


def spread_total(n: int) -> int:
    return sum(sum(range(i * 1000, i * 1000 + 1000)) for i in range(n))


@step(settings={"resources": ResourceSettings(custom_resources={"node_b": 1})})
def on_node_b(i: int) -> str:
    print(f"on_node_b {i} ran on {node_id()}")
    return node_id()


@step
def anywhere(i: int) -> str:
    print(f"anywhere {i} ran on {node_id()}")
    return node_id()


@step
def placement(on_b: list[str], elsewhere: str) -> str:
    """Where the pinned steps ran, a node a line padded to INLINE_LIMIT characters: a file in
    the artifact store, written on a node of the cluster (smaller outputs are kept inline)."""
    print(f"placement ran on {node_id()}")
    return "".join(f"{node:<{INLINE_LIMIT}}\n" for node in [*on_b, elsewhere])


@pipeline(enable_cache=False)
def pinned() -> Any:
    on_b, elsewhere = [on_node_b(i) for i in range(3)], anywhere(0)
    placement(on_b, elsewhere)
    return on_b, elsewhere


@step(settings={"resources": ResourceSettings(custom_resources={"node_c": 1})})
def on_node_c() -> str:
    return node_id()


@pipeline(enable_cache=False)
def nowhere() -> Any:
    return on_node_c()


@step
def link(x: int) -> int:
    time.sleep(0.25)
    return x + 1


@pipeline(enable_cache=False)
def chain(length: int) -> Any:
    x = 0
    for _ in range(length):
        x = link(x)
    return x


@step(
    settings={"resources": ResourceSettings(custom_resources={"node_b": 1})},
    retry=StepRetryConfig(max_retries=1, delay=0),
)
def held_on_node_b(marker_dir: str) -> str:
    Path(marker_dir, "on_node_b").write_text(node_id())
    time.sleep(120)  # until its node is killed
    return node_id()


@pipeline(enable_cache=False)
def pinned_and_retried(marker_dir: str) -> Any:
    return held_on_node_b(marker_dir)

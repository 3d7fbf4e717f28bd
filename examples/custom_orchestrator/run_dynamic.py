"""Run a dynamic pipeline on MyOrchestrator: the loop runs in a subprocess "job".

python examples/custom_orchestrator/run_dynamic.py
"""

from my_orchestrator import MyOrchestrator

from branchwork import pipeline, step
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.config.home import artifacts_dir
from branchwork.stack import Stack, active_stack


@step
def count_partitions() -> int:
    return 3


@step
def process_partition(partition_id: int) -> int:
    return partition_id * 10


@step
def merge_results(results: list) -> int:
    return sum(results)


@pipeline
def partitioned():
    n = count_partitions()
    return merge_results([process_partition(i) for i in range(n)])


if __name__ == "__main__":
    stack = Stack("custom", MyOrchestrator(), LocalArtifactStore(artifacts_dir()))
    print("supports dynamic pipelines:", stack.orchestrator.supports_dynamic_pipelines)
    with active_stack(stack):
        print("result:", partitioned())
    run = partitioned.last_run
    print(f"run {run.name}: {run.status} on {run.orchestrator} ({run.orchestrator_run_id})")

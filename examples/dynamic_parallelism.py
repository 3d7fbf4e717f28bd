"""Dynamic parallelism (seed page: "Dynamic Parallelism"): fan out over a runtime count.

`get_record_count()` is a plain helper the seed page leaves undefined (here: 80,000 records,
so 8 partitions). The partitions run in parallel; `merge_results` waits for all of them.

    python examples/dynamic_parallelism.py
"""

from branchwork import pipeline, step


def get_record_count() -> int:
    return 80_000


@step
def count_partitions() -> int:
    """Determine optimal partition count."""
    total_records = get_record_count()
    optimal_batch_size = 10000
    return (total_records + optimal_batch_size - 1) // optimal_batch_size


@step
def process_partition(partition_id: int, total: int) -> dict:
    """Process a single partition."""
    return {
        "partition": partition_id,
        "total_partitions": total,
        "records_processed": 10000,
    }


@step
def merge_results(results: list) -> dict:
    """Merge results from all partitions."""
    total_processed = sum(r["records_processed"] for r in results)
    return {"total_processed": total_processed}


@pipeline
def dynamic_parallel_pipeline():
    """Process data with dynamic parallelism."""
    num_partitions = count_partitions()

    # Create partition steps dynamically
    results = [process_partition(i, num_partitions) for i in range(num_partitions)]

    final_result = merge_results(results)
    return final_result


if __name__ == "__main__":
    print(dynamic_parallel_pipeline())
    run = dynamic_parallel_pipeline.last_run
    print(
        f"run {run.name}: {run.status}, {len(run.steps)} steps, dynamic={run.snapshot.is_dynamic}"
    )
    for step_run in run.steps.values():
        print(f"  {step_run.name:<22} {step_run.status}")

"""Dynamic pipeline with per-step resources (seed page: "Dynamic Pipelines").

The large-batch step asks for 8 CPUs and 16GB; on a smaller machine it still runs, one at a
time, with a warning.

    python examples/runtime_branching.py
"""

from branchwork import pipeline, step
from branchwork.config import ResourceSettings


@step
def check_data_size() -> int:
    """Determine data size at runtime."""
    # Could query database, check file size, etc.
    return 1000000  # 1M records


@step(settings={"resources": ResourceSettings(cpu_count=2, memory="4GB")})
def process_small_batch(batch_id: int) -> dict:
    return {"batch": batch_id, "processed": True}


@step(settings={"resources": ResourceSettings(cpu_count=8, memory="16GB")})
def process_large_batch(batch_id: int) -> dict:
    return {"batch": batch_id, "processed": True}


@pipeline
def dynamic_pipeline():
    """Steps are determined during execution."""
    size = check_data_size()

    # Branch based on runtime value
    if size < 10000:
        # Small dataset: single-threaded
        results = [process_small_batch(i) for i in range(3)]
    else:
        # Large dataset: parallel processing
        results = [process_large_batch(i) for i in range(10)]

    return results


if __name__ == "__main__":
    results = dynamic_pipeline()
    print(f"{len(results)} batches processed: {results[:2]} ...")

"""Static pipeline (seed page: "Static Pipelines"): the whole DAG is known before running.

python examples/static_pipeline.py
"""

from branchwork import pipeline, step


@step
def load_data() -> dict:
    return {"records": 100}


@step
def process_data(data: dict) -> dict:
    return {"processed": data["records"] * 2}


@step
def save_results(data: dict) -> None:
    print(f"Saved {data['processed']} records")


@pipeline
def static_pipeline():
    """All steps are known before execution starts."""
    data = load_data()
    processed = process_data(data)
    save_results(processed)


if __name__ == "__main__":
    static_pipeline()
    run = static_pipeline.last_run
    print(f"run {run.name}: {run.status}, dynamic={run.snapshot.is_dynamic}")
    print("DAG:", " -> ".join(run.steps))

"""Conditional branching (seed page: "Conditional Branching").

`check_quality()` is a plain helper the seed page leaves undefined; here it reads
DATA_QUALITY from the environment so every branch can be tried. The seed's
"needs_cleaning" branch calls `clean_data()` without its argument: branchwork stops there
with a clear error naming the step and the missing argument.

    python examples/conditional_branching.py
    DATA_QUALITY=0.3 python examples/conditional_branching.py   # the seed's bug, clearly reported
"""

import os

from branchwork import pipeline, step


def check_quality() -> float:
    return float(os.environ.get("DATA_QUALITY", "0.9"))


@step
def analyze_data() -> str:
    """Analyze data and determine processing strategy."""
    # Could check data quality, size, distribution, etc.
    data_quality = check_quality()

    if data_quality < 0.5:
        return "needs_cleaning"
    elif data_quality < 0.8:
        return "needs_validation"
    else:
        return "ready"


@step
def clean_data(data: dict) -> dict:
    return {"cleaned": True}


@step
def validate_data(data: dict) -> dict:
    return {"validated": True}


@step
def process_data(data: dict) -> dict:
    return {"processed": True}


@pipeline
def adaptive_pipeline():
    """Adapt processing based on data quality."""
    quality = analyze_data()

    if quality == "needs_cleaning":
        data = clean_data()
        data = validate_data(data)
    elif quality == "needs_validation":
        data = validate_data()
    else:
        data = {"status": "ready"}

    result = process_data(data)
    return result


if __name__ == "__main__":
    # analyze_data reads the environment, which its cache key cannot see: run uncached.
    print(adaptive_pipeline.with_options(enable_cache=False)())

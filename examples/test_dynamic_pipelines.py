"""Testing dynamic pipelines (seed page: "Testing Dynamic Pipelines"), as a pytest file.

pytest examples/test_dynamic_pipelines.py
"""

import pytest  # noqa: F401 - as on the seed page

from branchwork import pipeline, step


@step
def get_size(test_size: int) -> int:
    """Allow injecting size for testing."""
    return test_size


@step
def process_small(data: int) -> str:
    return f"small-{data}"


@step
def process_large(data: int) -> str:
    return f"large-{data}"


@pipeline
def testable_dynamic_pipeline(test_size: int):
    size = get_size(test_size)

    if size < 100:
        return process_small(size)
    else:
        return process_large(size)


# Test different branches
def test_small_branch():
    result = testable_dynamic_pipeline(test_size=50)
    assert "small" in result


def test_large_branch():
    result = testable_dynamic_pipeline(test_size=200)
    assert "large" in result

"""Caching: on by default, keyed by code, parameters, input contents and materializers."""

from __future__ import annotations

from pathlib import Path

from branchwork import pipeline, step

CALLS: list[str] = []


@step
def numbers(n: int) -> list:
    CALLS.append("numbers")
    return list(range(n))


@step
def total(values: list) -> int:
    CALLS.append("total")
    return sum(values)


@step(enable_cache=False)
def uncached_total(values: list) -> int:
    CALLS.append("uncached_total")
    return sum(values)


@pipeline
def summing(n: int):
    return total(numbers(n))


@pipeline
def summing_uncached_step(n: int):
    return uncached_total(numbers(n))


def statuses(run):
    return {name: str(step_run.status) for name, step_run in run.steps.items()}


def test_second_run_is_served_from_the_cache_without_running_functions():
    CALLS.clear()
    assert summing(n=4) == 6
    first = summing.last_run
    assert summing(n=4) == 6
    second = summing.last_run
    assert CALLS == ["numbers", "total"]
    assert statuses(second) == {"numbers": "cached", "total": "cached"}
    for name in ("numbers", "total"):
        assert second.steps[name].original_step_run_id == first.steps[name].id
        assert second.steps[name].output.id == first.steps[name].output.id
        assert second.steps[name].cache_key == first.steps[name].cache_key


def test_a_different_parameter_misses_the_cache():
    CALLS.clear()
    summing(n=4)
    assert summing(n=5) == 10
    assert statuses(summing.last_run) == {"numbers": "completed", "total": "completed"}
    assert CALLS == ["numbers", "total", "numbers", "total"]


def test_equal_input_content_hits_even_from_a_new_upstream_artifact():
    CALLS.clear()
    summing(n=3)
    summing.with_options(enable_cache=False)(n=3)  # makes new artifacts of equal content
    run = summing.last_run
    assert statuses(run) == {"numbers": "completed", "total": "completed"}
    assert summing(n=3) == 3
    assert statuses(summing.last_run) == {"numbers": "cached", "total": "cached"}


def test_enable_cache_false_per_step_always_runs_that_step():
    CALLS.clear()
    summing_uncached_step(n=2)
    summing_uncached_step(n=2)
    assert statuses(summing_uncached_step.last_run) == {
        "numbers": "cached",
        "uncached_total": "completed",
    }
    assert CALLS == ["numbers", "uncached_total", "uncached_total"]


def test_enable_cache_false_per_pipeline_and_per_call():
    CALLS.clear()
    summing(n=6)
    summing.with_options(enable_cache=False)(n=6)
    assert statuses(summing.last_run) == {"numbers": "completed", "total": "completed"}

    @pipeline(enable_cache=False)
    def never_cached():
        return total(numbers(6))

    never_cached()
    assert statuses(never_cached.last_run) == {"numbers": "completed", "total": "completed"}

    @pipeline
    def per_call():
        return total.with_options(enable_cache=False)(numbers(6))

    per_call()
    assert statuses(per_call.last_run) == {"numbers": "cached", "total": "completed"}


def test_changed_code_misses_the_cache(tmp_path: Path, monkeypatch):
    module = tmp_path / "changing_step.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    results = []
    for factor in (2, 3):
        module.write_text(
            "from branchwork import pipeline, step\n"
            f"@step\ndef scale(x: int) -> int:\n    return x * {factor}\n"
            "@pipeline\ndef scaling():\n    return scale(7)\n"
        )
        namespace: dict = {}
        exec(compile(module.read_text(), str(module), "exec"), namespace)
        results.append((namespace["scaling"](), namespace["scaling"].last_run))
    (first_value, first), (second_value, second) = results
    assert (first_value, second_value) == (14, 21)
    assert second.steps["scale"].status == "completed"
    assert first.steps["scale"].code_hash != second.steps["scale"].code_hash

"""The steps and pipelines the orchestrator conformance suite runs on every orchestrator.

Everything is defined at module level: a process-isolated orchestrator re-imports a pipeline
in a fresh process from its recorded source (`branchwork.testing.pipelines:<name>`), and a
step process imports its step the same way. So a pipeline needs nothing from the test that
started it, and side effects go through files named by pipeline parameters, never module
globals: a global changed in a step process is invisible to the test.

Each pipeline exercises one shape of graph; its docstring gives the invocation ids the suite
expects, because those ids are part of the contract (`name`, `name_2`, ... in call order).
"""

from __future__ import annotations

from typing import Annotated, Any

from branchwork import get_step_context, pipeline, step, unmapped
from branchwork.config import ResourceSettings


class ConformanceStepError(RuntimeError):
    """Raised on purpose by a step; defined here so an isolated step process can raise it."""


class ConformancePipelineError(RuntimeError):
    """Raised on purpose by a pipeline body while it discovers its steps."""


# ---- steps ----------------------------------------------------------------------------------


@step
def load_number(value: int) -> int:
    return value


@step
def double(x: int) -> int:
    return 2 * x


@step
def describe(x: int) -> str:
    return f"value={x}"


@step
def measure(size: int) -> int:
    """Stands in for a step that inspects data at runtime; the branch depends on its output."""
    return size


@step
def small_branch(size: int) -> str:
    return f"small-{size}"


@step
def large_branch(size: int) -> str:
    return f"large-{size}"


@step
def emit_count(n: int) -> int:
    """A count known only at runtime: fan-outs iterate over its output."""
    return n


@step
def square_part(index: int, count: int) -> int:
    """Takes `count` (a future) so that every part has a data edge to `emit_count`."""
    return index * index


@step
def sum_values(values: list[int]) -> int:
    """Fan-in: receives a list of futures, loaded as a list of values."""
    return sum(values)


@step
def group_size(group: int) -> int:
    return group + 1


@step
def item_value(group: int, index: int) -> int:
    return 10 * group + index


@step
def start_value(value: float) -> float:
    return value


@step
def halve(value: float) -> float:
    return value / 2


@step
def split_number(n: int) -> tuple[Annotated[int, "a"], Annotated[str, "b"]]:
    """Two named outputs that feed different steps."""
    return 2 * n, f"n={n}"


@step
def increment(x: int) -> int:
    return x + 1


@step
def shout(text: str) -> str:
    return text.upper()


@step
def emit_list(n: int) -> list[int]:
    return list(range(1, n + 1))


@step
def emit_factor(factor: int) -> int:
    return factor


@step
def scale(value: int, factor: int) -> int:
    return value * factor


@step
def sum_and_count(values: list[int]) -> tuple[Annotated[int, "sum"], Annotated[int, "count"]]:
    """A chunk of a mapped list: its sum and how many items it got."""
    return sum(values), len(values)


@step
def fragile_part(index: int, fail_at: int) -> int:
    """Fails for one index only, so the rest of its fan-out can succeed around it."""
    if index == fail_at:
        raise ConformanceStepError(f"part {index} failed on purpose")
    return index


@step
def record_execution(log_path: str, value: int) -> int:
    """Appends its invocation id to `log_path`: the file counts real executions (cache hits
    and re-imports in other processes included, which an in-memory counter would miss)."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(get_step_context().invocation_id + "\n")
    return value + 1


@step(settings={"resources": ResourceSettings(cpu_count=1)})
def one_cpu_step(value: int) -> int:
    return value + 100


@step
def report_context() -> dict[str, Any]:
    """What `get_step_context()` tells a running step, returned so the test can check it."""
    context = get_step_context()
    return {
        "invocation_id": context.invocation_id,
        "step_name": context.step_name,
        "pipeline_name": context.pipeline_name,
        "run_id": context.run_id,
        "run_name": context.run_name,
        "step_run_id": context.step_run_id,
        "attempt": context.attempt,
    }


# ---- pipelines ------------------------------------------------------------------------------


@pipeline
def static_chain(value: int = 3) -> Any:
    """Static: load_number -> double -> describe."""
    return describe(double(load_number(value)))


@pipeline
def conditional_branch(size: int, threshold: int = 100) -> Any:
    """Dynamic: measure, then small_branch or large_branch depending on its output."""
    measured = measure(size)
    if measured < threshold:
        return small_branch(measured)
    return large_branch(measured)


@pipeline
def fan_out_fan_in(n: int) -> Any:
    """Dynamic: emit_count, square_part ... square_part_<n>, sum_values."""
    count = emit_count(n)
    parts = [square_part(i, count) for i in range(count)]
    return sum_values(parts)


@pipeline
def nested_fan_out(n_groups: int) -> Any:
    """Dynamic: group g has g + 1 items, each group merged, then all groups merged.

    All group sizes are requested before any is used, so they run side by side.
    """
    groups = emit_count(n_groups)
    sizes = [group_size(g) for g in range(groups)]
    group_totals = [
        sum_values([item_value(g, j) for j in range(size)]) for g, size in enumerate(sizes)
    ]
    return {"groups": group_totals, "total": sum_values(group_totals)}


@pipeline
def halve_until_small(value: float, max_iterations: int = 20) -> Any:
    """Dynamic: halve until the value is below 1, at most `max_iterations` times."""
    current = start_value(value)
    for _ in range(max_iterations):
        if current < 1:
            break
        current = halve(current)
    return current


@pipeline
def multi_output(n: int) -> Any:
    """Static: split_number's outputs `a` and `b` feed increment and shout respectively."""
    a, b = split_number(n)
    return increment(a), shout(b)


@pipeline
def mapped_scale(n: int, factor: int) -> Any:
    """Dynamic (mapping over a future needs its length): scale ... scale_<n>."""
    values = emit_list(n)
    multiplier = emit_factor(factor)
    return scale.map(values, unmapped(multiplier))


@pipeline
def mapped_in_chunks(n: int, chunk_size: int) -> Any:
    """Dynamic: sum_and_count per chunk of emit_list's output, its outputs unpacked."""
    sums, counts = sum_and_count.map(emit_list(n), chunk_size=chunk_size).unpack()
    return sum_values(sums), counts


@pipeline
def summed_list(n: int) -> Any:
    """Static, and a child of `nested_children`: the sum of 1..n."""
    return sum_values(emit_list(n))


@pipeline
def nested_children(n: int) -> Any:
    """Dynamic: summed_list called (a child run, waited for), submitted (a child run) and
    embedded (its steps in this run, ids prefixed "summed_list.")."""
    called = summed_list(n)
    submitted = summed_list.submit(n + 1)
    embedded = summed_list.embed(n + 2)
    return sum_values([called, submitted, embedded])


@pipeline
def fail_in_fan_out(n: int, fail_at: int) -> Any:
    """Dynamic: fragile_part_<fail_at + 1> raises; sum_values never runs."""
    count = emit_count(n)
    parts = [fragile_part(i, fail_at) for i in range(count)]
    return sum_values(parts)


@pipeline
def fail_in_pipeline_body(n: int) -> Any:
    """Dynamic: emit_count runs, then the body itself raises while deciding what to run."""
    count = emit_count(n)
    if count > 0:
        raise ConformancePipelineError(f"cannot plan {count} parts")
    return count


@pipeline
def counted_chain(log_path: str, value: int) -> Any:
    """Static: record_execution -> record_execution_2, each logging its run to `log_path`."""
    first = record_execution(log_path, value)
    return record_execution(log_path, first)


@pipeline
def counted_fan_out(log_path: str, n: int) -> Any:
    """Dynamic: emit_count, record_execution ... record_execution_<n>, sum_values."""
    count = emit_count(n)
    results = [record_execution(log_path, i) for i in range(count)]
    return sum_values(results)


@pipeline
def with_resources(n: int) -> Any:
    """Dynamic: emit_count, then one_cpu_step ... one_cpu_step_<n>, each asking for one CPU."""
    count = emit_count(n)
    return [one_cpu_step(i) for i in range(count)]


@pipeline
def step_context_ids() -> Any:
    """Static: report_context, report_context_2 and one with an explicit id, named_context."""
    first, second = report_context(), report_context()
    named = report_context(id="named_context")
    return [first, second, named]


@pipeline
def structured_return(n: int) -> Any:
    """Static: returns a dict holding a tuple and a single output, rebuilt on load."""
    a, b = split_number(n)
    return {"numbers": (a, increment(a)), "label": b}

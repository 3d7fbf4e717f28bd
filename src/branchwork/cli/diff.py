"""Where two runs' graphs differ, invocation by invocation (`branchwork runs diff A B`).

Invocation ids are deterministic (`train`, `train_2`, or `id=`), so the same id in two runs
is "the same call": the runs' graphs agree when the same ids name the same steps, with the
same cache keys (code, literal inputs and input contents) and the same parents. Compared are
the latest attempts. A difference in cache key is explained as code (the step's code hash),
inputs (literal arguments or which outputs feed it, from the recorded configuration) or
input contents (same wiring, but upstream values differed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from branchwork.models import PipelineRunResponse, StepRunResponse


@dataclass
class GraphDiff:
    run_a: str
    run_b: str
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    different_step: list[dict[str, Any]] = field(default_factory=list)
    different_cache_key: list[dict[str, Any]] = field(default_factory=list)
    different_parents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (
            self.only_in_a
            or self.only_in_b
            or self.different_step
            or self.different_cache_key
            or self.different_parents
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "same": self.same,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "different_step": self.different_step,
            "different_cache_key": self.different_cache_key,
            "different_parents": self.different_parents,
        }


def _parents(names: dict[str, str], step: StepRunResponse) -> list[str]:
    """The invocations of a step run's parents, by their step run ids' `names`."""
    return sorted({names.get(parent, parent) for parent in step.parent_step_run_ids})


def _names(run: PipelineRunResponse) -> dict[str, str]:
    """Step run id -> invocation, once per run (per step, a 20 000-step diff took 190 s)."""
    return {attempt.id: attempt.name for attempt in run.attempts}


def _inputs(step: StepRunResponse) -> dict[str, Any]:
    config = step.configuration.config if step.configuration else {}
    inputs = config.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _short(value: Any) -> str:
    """An input as written in the recorded configuration: refs as `invocation.output`."""
    if isinstance(value, dict) and "$ref" in value:
        index = "" if value.get("index") is None else f"[{value['index']}]"
        if value.get("stop") is not None:
            index = f"[{value['index']}:{value['stop']}]"
        return f"{value['$ref']}.{value.get('output', 'output')}{index}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _cache_difference(a: StepRunResponse, b: StepRunResponse) -> dict[str, Any] | None:
    reasons: list[str] = []
    changed_inputs: dict[str, list[str | None]] = {}
    if a.code_hash != b.code_hash:
        reasons.append("code")
    inputs_a, inputs_b = _inputs(a), _inputs(b)
    for name in sorted(set(inputs_a) | set(inputs_b)):
        if inputs_a.get(name) != inputs_b.get(name):
            changed_inputs[name] = [
                _short(inputs_a[name]) if name in inputs_a else None,
                _short(inputs_b[name]) if name in inputs_b else None,
            ]
    if changed_inputs:
        reasons.append("inputs")
    keys_differ = a.cache_key is not None and b.cache_key is not None and a.cache_key != b.cache_key
    if keys_differ and not reasons:
        reasons.append("input contents")
    if not reasons:
        return None
    return {
        "invocation": a.name,
        "reasons": reasons,
        "inputs": changed_inputs,
        "a": a.cache_key,
        "b": b.cache_key,
    }


def diff_runs(a: PipelineRunResponse, b: PipelineRunResponse) -> GraphDiff:
    found = GraphDiff(a.name, b.name)
    found.only_in_a = [name for name in a.steps if name not in b.steps]
    found.only_in_b = [name for name in b.steps if name not in a.steps]
    names_a, names_b = _names(a), _names(b)
    for name, step_a in a.steps.items():
        step_b = b.steps.get(name)
        if step_b is None:
            continue
        if step_a.step_name != step_b.step_name:
            found.different_step.append(
                {"invocation": name, "a": step_a.step_name, "b": step_b.step_name}
            )
            continue  # another step: its key and parents differ as a matter of course
        difference = _cache_difference(step_a, step_b)
        if difference is not None:
            found.different_cache_key.append(difference)
        parents_a, parents_b = _parents(names_a, step_a), _parents(names_b, step_b)
        if parents_a != parents_b:
            found.different_parents.append({"invocation": name, "a": parents_a, "b": parents_b})
    return found


def describe(diff: GraphDiff) -> list[tuple[str, str, str]]:
    """(what, invocation, detail) rows for people."""
    rows: list[tuple[str, str, str]] = []
    rows += [(f"only in {diff.run_a}", name, "") for name in diff.only_in_a]
    rows += [(f"only in {diff.run_b}", name, "") for name in diff.only_in_b]
    for item in diff.different_step:
        rows.append(("different step", item["invocation"], f"{item['a']} → {item['b']}"))
    for item in diff.different_cache_key:
        details = []
        for reason in item["reasons"]:
            if reason == "inputs":
                changes = (
                    f"{name}: {old or '(none)'} → {new or '(none)'}"
                    for name, (old, new) in item["inputs"].items()
                )
                details.append(f"inputs ({'; '.join(changes)})")
            else:
                details.append(reason)
        rows.append(("different cache key", item["invocation"], ", ".join(details)))
    for item in diff.different_parents:
        old = ", ".join(item["a"]) or "(none)"
        new = ", ".join(item["b"]) or "(none)"
        rows.append(("different parents", item["invocation"], f"{old} → {new}"))
    return rows

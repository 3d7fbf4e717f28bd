"""Where two runs' graphs differ, invocation by invocation (`branchwork runs diff A B`).

Invocation ids are deterministic (`train`, `train_2`, or `id=`), so the same id in two runs
is "the same call": the runs' graphs agree when the same ids name the same steps, with the
same cache keys (code, literal inputs and input contents) and the same parents. Compared are
the latest attempts. A difference in cache key is explained as code (the step's code hash),
inputs (literal arguments or which outputs feed it, from the recorded configuration) or
input contents (same wiring, but upstream values differed).

Both runs are read a chunk at a time in the order of invocation ids and merged
(`metadata.run_comparison`): what is held is a chunk of each and the differences, whatever
the runs' size (and an invocation's own inputs: a fan-in of a million holds them). Each
kind of difference is listed in the order its invocations first started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from branchwork.metadata.run_comparison import Compared


@dataclass
class GraphDiff:
    run_a: str
    run_b: str
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    different_step: list[dict[str, Any]] = field(default_factory=list)
    different_cache_key: list[dict[str, Any]] = field(default_factory=list)
    different_parents: list[dict[str, Any]] = field(default_factory=list)
    # pipeline parameters that differ, [a's, b's] by name (None: not given): not the graph
    parameters: dict[str, list[str | None]] = field(default_factory=dict)

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
            "parameters": self.parameters,
        }


def parameter_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[str | None]]:
    """The parameters two runs were given differently: what a reader looks at first."""
    return {
        name: [_short(a[name]) if name in a else None, _short(b[name]) if name in b else None]
        for name in sorted(a.keys() | b.keys())
        if not _same(a.get(name, _MISSING), b.get(name, _MISSING))
    }


_MISSING = object()  # not given: unlike any value, None included


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types: `1`, `1.0` and `true` are three values to a step."""
    return a is b or (a is not _MISSING and b is not _MISSING and _typed(a) == _typed(b))


def _typed(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


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


def _cache_difference(a: Compared, b: Compared) -> dict[str, Any] | None:
    reasons: list[str] = []
    changed_inputs: dict[str, list[str | None]] = {}
    if a.code_hash != b.code_hash:
        reasons.append("code")
    inputs_a, inputs_b = a.inputs, b.inputs
    for name in sorted(set(inputs_a) | set(inputs_b)):
        if (
            name not in inputs_a
            or name not in inputs_b
            or not _same(inputs_a[name], inputs_b[name])
        ):
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


def diff_runs(run_a: str, run_b: str, a: Iterator[Compared], b: Iterator[Compared]) -> GraphDiff:
    """The differences of two runs' invocations, each run's given in the order of their ids;
    each kind of difference in the order the invocations (first) started."""
    found = GraphDiff(run_a, run_b)
    started: dict[str, tuple[bool, datetime, str]] = {}  # of the invocations that differ
    step_a, step_b = next(a, None), next(b, None)
    while step_a is not None or step_b is not None:
        if step_b is None or (step_a is not None and step_a.name < step_b.name):
            assert step_a is not None
            found.only_in_a.append(step_a.name)
            started[step_a.name] = _start(step_a)
            step_a = next(a, None)
        elif step_a is None or step_b.name < step_a.name:
            found.only_in_b.append(step_b.name)
            started[step_b.name] = _start(step_b)
            step_b = next(b, None)
        else:
            if _compare(found, step_a, step_b):
                started[step_a.name] = _start(step_a)
            step_a, step_b = next(a, None), next(b, None)
    found.only_in_a.sort(key=started.__getitem__)
    found.only_in_b.sort(key=started.__getitem__)
    for items in (found.different_step, found.different_cache_key, found.different_parents):
        items.sort(key=lambda item: started[item["invocation"]])
    return found


def _start(step: Compared) -> tuple[bool, datetime, str]:
    """How to order it: by when it first started (never: last), then by id."""
    return (step.first_start is None, step.first_start or datetime.min, step.name)


def _compare(found: GraphDiff, a: Compared, b: Compared) -> bool:
    """One invocation of both runs; whether they differ."""
    if a.step_name != b.step_name:
        found.different_step.append({"invocation": a.name, "a": a.step_name, "b": b.step_name})
        return True  # another step: its key and parents differ as a matter of course
    difference = _cache_difference(a, b)
    if difference is not None:
        found.different_cache_key.append(difference)
    if a.parents != b.parents:
        found.different_parents.append({"invocation": a.name, "a": a.parents, "b": b.parents})
    return difference is not None or a.parents != b.parents


def describe(diff: GraphDiff) -> list[tuple[str, str, str]]:
    """(what, invocation or parameter, detail) rows for people."""
    rows = [
        ("different parameter", name, f"{old or '(none)'} → {new or '(none)'}")
        for name, (old, new) in diff.parameters.items()
    ]
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

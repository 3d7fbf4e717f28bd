"""The one-line reason of a cache miss, from the key parts of this run and the previous one.

The cases a real run can hardly stage here (another installed library version, a step whose
outputs changed materializer) are checked on the parts directly; the rest are driven through
real runs in tests/runtime/test_cache_keys.py.
"""

from __future__ import annotations

import json

from branchwork.graph.cache_key import KeyParts
from branchwork.graph.cache_reasons import Earlier, miss, parameter_changes

BEFORE = KeyParts(
    code="c1",
    arguments={"n": "int:3", "values": "hash:aaaa", "gone": "str:'x'"},
    files={"data.csv": "f1"},
    libraries={"numpy": "1.26.4"},
    extra=None,
    outputs="o1",
)


def _earlier(**changes) -> Earlier:
    return Earlier("run-1", BEFORE, {"flow:train": "h1"}, [], "completed", False)._replace(
        **changes
    )


def test_a_library_upgrade_names_the_library_and_both_versions():
    now = BEFORE._replace(libraries={"numpy": "2.1.0"})
    assert miss(now, {}, _earlier()) == "since run 'run-1': library 'numpy' changed: 1.26.4 → 2.1.0"


def test_every_changed_part_is_named_in_one_line():
    now = KeyParts(
        code="c2",
        arguments={"n": "int:4", "values": "hash:bbbb", "new": "bool:True"},
        files={"data.csv": "f2"},
        libraries={"numpy": "1.26.4"},
        extra="str:'v2'",
        outputs="o2",
    )
    reason = miss(
        now,
        {"flow:train": "h2", "flow:helper": "h3"},
        _earlier(parameter_changes=["pipeline parameter 'n' changed: 3 → 4"]),
        sources={"values": "the output of 'load'"},
    )
    assert reason == (
        "since run 'run-1': code changed: flow:helper, flow:train; "
        "argument 'gone' is gone; argument 'n' changed: 3 → 4; "
        "new argument 'new' (pipeline parameter 'n' changed: 3 → 4); "
        "argument 'values' (the output of 'load') changed; input file 'data.csv' changed; "
        "its cache_key_fn gave another value; its outputs' types or materializers changed"
    )


def test_code_parts_unknown_to_the_store_still_say_the_code_changed():
    now = BEFORE._replace(code="c2")
    assert miss(now, {"a:b": "1"}, _earlier(code_parts=None)) == (
        "since run 'run-1': its code changed"
    )


def test_the_same_key_says_why_the_result_was_not_served():
    assert miss(BEFORE, {}, _earlier(status="stopped")) == (
        "same key as in run 'run-1', where it was stopped"
    )
    assert miss(BEFORE, {}, _earlier(status="cached")) == (
        "same key as in run 'run-1', which reused a result that was since deleted"
    )


def test_pipeline_parameter_changes_show_values_with_colons_whole():
    now = {"url": "s3://bucket/b", "opts": {"k": 2}, "n": 3}
    before = {"url": "s3://bucket/a", "opts": {"k": 1}, "n": 3}
    assert parameter_changes(now, before) == [
        "pipeline parameter 'opts' changed: {'k': 1} → {'k': 2}",
        "pipeline parameter 'url' changed: 's3://bucket/a' → 's3://bucket/b'",
    ]


def test_the_changed_code_of_an_inputs_class_is_named_not_the_input():
    before = BEFORE._replace(classes={"models.Model": "d1"})
    now = before._replace(classes={"models.Model": "d2"})
    assert miss(now, {}, _earlier(parts=before)) == (
        "since run 'run-1': class 'models.Model' of an input changed"
    )


def test_keys_of_steps_that_receive_none_of_the_users_classes_are_as_before():
    assert "classes" not in BEFORE.to_json()
    assert KeyParts.from_json(json.loads(BEFORE.to_json())) == BEFORE
    with_class = BEFORE._replace(classes={"models.Model": "d1"})
    assert KeyParts.from_json(json.loads(with_class.to_json())) == with_class
    assert with_class.key != BEFORE.key

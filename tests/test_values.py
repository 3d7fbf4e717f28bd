"""branchwork.values: one walker and one tagged encoding of nested values."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import OrderedDict
from enum import IntEnum
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from branchwork import Client, pipeline, step
from branchwork.values import Leaf, canonical_hash, decode, encode, leaves_of, tree_map


class Ref(NamedTuple):
    """A caller's leaf that is a tuple, as OutputRef and ArtifactInput are."""

    name: str
    item: int | None = None


REFS = Leaf(
    "$ref",
    Ref,
    lambda ref: {"$ref": ref.name, "item": ref.item},
    lambda d: Ref(d["$ref"], d["item"]),
)

EVERYTHING: Any = {
    "ints": [0, 1, -7, 2**80],
    "floats": [1.0, -0.5, 1e300],
    "bools": [True, False],
    "none": None,
    "text": ["", "é", "$tuple", "$dict"],
    "tuples": ((), (1,), (1, (2, [3, (4,)]))),
    "lists": [[], [[]], [1, [2, [3]]]],
    "int keys": {1: "one", 2: {3: "three"}},
    "other keys": {1.5: "float", True: "bool", None: "none", (1, "a"): "tuple", "$x": "dollar"},
    "refs": [Ref("load"), (Ref("split", 2),), {"r": Ref("x")}],
    "$looks like a tag": {"$tuple": [1, 2]},
}


def json_round_trip(value: Any, leaf: Leaf | None = None) -> Any:
    text = json.dumps(encode(value, leaf), allow_nan=False)  # strict JSON: no NaN literals
    return decode(json.loads(text), leaf)


def typed(value: Any) -> Any:
    """`value` with every leaf paired with its type: `==` alone says 1 == 1.0 == True."""
    if isinstance(value, dict):
        return {(type(k), k): typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not isinstance(value, Ref):
        return (type(value), [typed(item) for item in value])
    return (type(value), value)


def test_every_supported_type_and_structure_survives_a_json_round_trip():
    again = json_round_trip(EVERYTHING, REFS)
    assert typed(again) == typed(EVERYTHING)
    assert list(again["int keys"]) == [1, 2]  # insertion order kept too


def test_floats_json_cannot_hold_survive():
    again = json_round_trip([math.nan, math.inf, -math.inf])
    assert math.isnan(again[0]) and again[1:] == [math.inf, -math.inf]


def test_plain_json_stays_plain_so_recorded_configurations_stay_readable():
    plain = {"a": [1, 2.5, None, True, "s"], "b": {"c": "d"}}
    assert encode(plain) == plain
    assert encode({"x": Ref("load")}, REFS) == {"x": {"$ref": "load", "item": None}}


def test_subclasses_are_written_as_their_base_type():
    class Level(IntEnum):
        HIGH = 3

    class Point(NamedTuple):
        x: int
        y: int

    again = json_round_trip({"level": Level.HIGH, "point": Point(1, 2), "od": OrderedDict(a=1)})
    assert typed(again) == typed({"level": 3, "point": (1, 2), "od": {"a": 1}})


@pytest.mark.parametrize("value", [object(), {1, 2}, [b"bytes"], {"k": {(1, frozenset()): 1}}])
def test_a_value_without_a_json_form_is_a_type_error_naming_its_type(value):
    with pytest.raises(TypeError, match="has no JSON form"):
        encode(value)


def test_a_tag_nobody_reads_is_an_error_not_a_dict():
    with pytest.raises(ValueError, match="'\\$ref'"):
        decode({"$ref": "load", "item": None})


def test_tree_map_rebuilds_the_structure_and_maps_leaves():
    value = {"a": [1, (2, 3)], "b": {4: 5}}
    assert tree_map(lambda leaf: leaf * 10, value) == {"a": [10, (20, 30)], "b": {4: 50}}
    assert isinstance(tree_map(str, value)["a"][1], tuple)


def test_tree_map_with_only_maps_those_leaves_even_when_they_are_tuples():
    value = [Ref("a"), (1, Ref("b", 0)), {"k": "text"}]
    mapped = tree_map(lambda ref: ref.name.upper(), value, Ref)
    assert mapped == ["A", (1, "B"), {"k": "text"}]


def test_leaves_of_gives_paths_in_order():
    inputs = {"x": Ref("a"), "ys": [1, {"k": Ref("b")}], "z": (Ref("c"),)}
    assert list(leaves_of(inputs, Ref)) == [
        ("x", Ref("a")),
        ("ys[1].k", Ref("b")),
        ("z[0]", Ref("c")),
    ]
    assert [leaf for _, leaf in leaves_of([1, (2, {"a": 3})])] == [1, 2, 3]


def test_equal_values_hash_equal_whatever_the_order_of_dict_entries():
    assert canonical_hash({"a": 1, "b": 2}) == canonical_hash({"b": 2, "a": 1})
    assert canonical_hash({1: "x", (2, 3): "y"}) == canonical_hash({(2, 3): "y", 1: "x"})
    assert canonical_hash([math.nan]) == canonical_hash([math.nan])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((1, 2), [1, 2]),
        (1, "1"),
        (1, 1.0),
        (1, True),
        (0, False),
        (None, "null"),
        ({1: "x"}, {"1": "x"}),
        ({1: "x"}, {True: "x"}),
        ([[1, 2]], [(1, 2)]),
        ({"a": (1,)}, {"a": [1]}),
        ("$tuple", {"$tuple": []}),
    ],
)
def test_values_a_step_can_tell_apart_hash_apart(a, b):
    assert canonical_hash(a) != canonical_hash(b)


class Split(IntEnum):
    TRAIN = 0


class Fold(IntEnum):
    FIRST = 0


class Tag(str):
    pass


class Point(NamedTuple):
    x: int
    y: int


def test_a_subclass_of_int_float_or_str_hashes_apart_from_its_base_value():
    """A step receives `Split.TRAIN` as itself: one key with `0` and `Fold.FIRST` served it
    their results."""
    assert len({canonical_hash(v) for v in (0, Split.TRAIN, Fold.FIRST, [0], [Split.TRAIN])}) == 5
    assert canonical_hash("a") != canonical_hash(Tag("a"))
    assert canonical_hash({"k": Split.TRAIN}) == canonical_hash({"k": Split.TRAIN})


def test_a_container_subclass_hashes_as_the_container_a_step_receives():
    assert canonical_hash(Point(1, 2)) == canonical_hash((1, 2))
    assert canonical_hash(OrderedDict(a=1)) == canonical_hash({"a": 1})


def test_the_hash_is_the_same_in_other_processes():
    value = {"b": (1, 2.0), "a": {3: [True, None]}, "s": "text"}
    code = (
        "from branchwork.values import canonical_hash\n"
        "print(canonical_hash({'a': {3: [True, None]}, 's': 'text', 'b': (1, 2.0)}))\n"
    )
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == canonical_hash(value)


@step
def word(text: str) -> str:
    return text


@pipeline
def nested_return():
    return {"a": word("x"), "b": (word("y"), [word("z")])}


def test_a_pipeline_return_value_recorded_in_the_older_format_still_loads():
    """Stores hold `output_structure` rows written before this encoding: str-keyed dicts as
    {"$dict": {key: node}}."""
    assert nested_return() == {"a": "x", "b": ("y", ["z"])}
    run = nested_return.last_run
    older = {
        "$dict": {"a": {"$out": 0}, "b": {"$tuple": [{"$out": 1}, [{"$out": 2}]]}},
    }
    from branchwork.metadata import schema
    from branchwork.metadata.store import get_engine

    with get_engine().begin() as connection:
        connection.execute(
            sa.update(schema.pipeline_run)
            .where(schema.pipeline_run.c.id == run.id)
            .values(output_structure=json.dumps(older))
        )
    assert Client().get_pipeline_run(run.id).load_output() == {"a": "x", "b": ("y", ["z"])}

"""Dataclass instances as JSON rebuilt from their class's annotations; a pickle, with a
warning saying why, when the annotations cannot rebuild a value exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from branchwork import pipeline, step
from branchwork.exceptions import ArtifactError
from branchwork.materializers import (
    BaseMaterializer,
    cloudpickle_materializer,
    materializer_for,
    register_materializer,
    registry,
)
from branchwork.materializers.dataclass_materializer import DataclassMaterializer


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(slots=True)
class Label:
    text: str
    at: Point | None = None


@dataclass
class Shape:
    name: str
    points: list[Point]
    center: Optional[Point] = None  # noqa: UP045 (the typing spelling must work too)
    labels: dict[str, Label] = field(default_factory=dict)
    span: tuple[Point, Point] | None = None
    sizes: tuple[int, ...] = ()
    extra: Any = None
    corners: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.corners = len(self.points)
        self.name = self.name.upper()  # loading must not run this again


def triangle() -> Shape:
    return Shape(
        "tri",
        [Point(0, 0), Point(1, 0.5), Point(2.5, 1)],
        center=Point(1.1, 0.5),
        labels={"top": Label("apex", Point(2.5, 1)), "none": Label("plain")},
        span=(Point(0, 0), Point(2.5, 1)),
        sizes=(1, 2, 3),
        extra={"notes": ["a", None, 1.5, True]},
    )


def test_nested_dataclasses_round_trip_as_json_with_a_preview(round_trip):
    shape = triangle()
    result = round_trip(shape)
    assert result.materializer is DataclassMaterializer
    assert (result.files, result.warnings) == (["dataclass.json"], [])
    assert result.loaded == shape
    assert type(result.loaded.labels["top"].at) is Point
    assert type(result.loaded.span) is tuple and type(result.loaded.sizes) is tuple
    assert result.loaded.name == "TRI"  # __post_init__ ran once, when the value was made
    assert result.loaded.corners == 3

    assert result.preview["metadata"] == {
        "class": "test_dataclass_materializer.Shape",
        "fields": ["name", "points", "center", "labels", "span", "sizes", "extra", "corners"],
    }
    assert result.preview["text"].startswith("Shape(name='TRI', points=[Point(x=0, y=0), ")


def test_the_file_holds_the_fields_values(round_trip, artifact_store):
    result = round_trip(Label("apex", Point(2.5, 1)))
    assert result.files == ["dataclass.json"]
    stored = artifact_store.read_bytes(artifact_store.join(result.uri, "dataclass.json"))
    assert json.loads(stored) == {"text": "apex", "at": {"x": 2.5, "y": 1}}
    assert result.loaded == Label("apex", Point(2.5, 1))
    assert round_trip(Label("apex", Point(2.5, 1))).content_hash == result.content_hash


@dataclass
class Tagged:
    tags: set[str]


@dataclass
class Indexed:
    ids: frozenset[int]
    names: set


def test_sets_of_strs_or_ints_are_stored_sorted(round_trip, artifact_store):
    result = round_trip(Tagged({"pear", "apple", "fig"}))
    stored = artifact_store.read_bytes(artifact_store.join(result.uri, "dataclass.json"))
    assert json.loads(stored) == {"tags": ["apple", "fig", "pear"]}
    assert result.loaded == Tagged({"pear", "apple", "fig"}) and result.warnings == []

    indexed = round_trip(Indexed(frozenset([9, 1, 17]), set()))
    assert indexed.files == ["dataclass.json"]
    assert indexed.loaded == Indexed(frozenset([1, 9, 17]), set())
    assert (type(indexed.loaded.ids), type(indexed.loaded.names)) == (frozenset, set)
    assert round_trip(Indexed(frozenset([17, 9, 1]), set())).content_hash == indexed.content_hash


@dataclass
class Untyped:
    pair: Any


@dataclass
class Holder:
    point: Point


@dataclass(frozen=True)
class Point3(Point):
    z: float = 0


@dataclass
class Cached:
    value: int

    def __post_init__(self) -> None:
        self._square = self.value**2


@dataclass
class Counts:
    by_id: dict[int, int]


@pytest.mark.parametrize(
    ("value", "which"),
    [
        (Tagged({"a", 1}), "holding a set of other items than only strs or only ints"),
        (Untyped((1, 2)), "holding tuples in fields not annotated as tuples"),
        (Holder(Point3(1, 2, 3)), "holding a test_dataclass_materializer.Point3 in a field "),
        (Cached(3), "with attributes beyond their fields (_square)"),
        (Counts({1: 2}), "with non-str dict keys"),
    ],
)
def test_values_json_cannot_rebuild_are_pickled_with_a_warning(
    round_trip, monkeypatch, value, which
):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    result = round_trip(value)
    assert result.files == ["data.pkl"]
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(
        f"test_dataclass_materializer.{type(value).__qualname__} values {which}"
    )
    assert result.loaded == value


def test_loading_without_the_class_says_what_to_do(round_trip):
    with pytest.raises(ArtifactError) as refused:
        round_trip(Point(1, 2), data_type=Any)
    assert (
        "This artifact holds a dataclass as JSON, and loading it needs the dataclass's class, "
        "but it was asked for as typing.Any: make the module defining the class importable "
        "where the artifact is loaded (the artifact's data type names it)."
    ) in str(refused.value)


@dataclass
class Renamed:
    """`Point` after its fields were renamed: a value stored before no longer fits it."""

    x: int
    height: int


def test_loading_into_a_class_whose_fields_changed_names_both_sets_of_fields(round_trip):
    """It was a bare KeyError('height')."""
    with pytest.raises(ArtifactError) as refused:
        round_trip(Point(1, 2), data_type=Renamed)
    assert str(refused.value).endswith(
        "This artifact holds a test_dataclass_materializer.Renamed stored with the fields x, "
        "y, but the class now has x, height: its fields changed since the value was stored. "
        "Load it with the class as it was, or run the step again."
    )


class PointMaterializer(BaseMaterializer):
    def save(self, data: Point) -> None:
        self._write_bytes("point.txt", f"{data.x},{data.y}".encode())


def test_a_registered_materializer_wins_for_its_dataclass(monkeypatch):
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_resolved", {})
    register_materializer(PointMaterializer, Point)
    assert materializer_for(Point, Point(1, 2)) is PointMaterializer
    assert materializer_for(Any, Label("a")) is DataclassMaterializer


@step
def draw() -> Shape:
    return triangle()


@step
def count(shape: Shape) -> int:
    return len(shape.points) + len(shape.labels)


@pipeline(enable_cache=False)
def shapes():
    return count(draw())


def test_dataclasses_travel_between_steps_of_a_run():
    assert shapes() == 5
    output = shapes.last_run.steps["draw"].output
    assert output.materializer.endswith(":DataclassMaterializer")
    assert output.data_type == "test_dataclass_materializer.Shape"
    assert output.load() == triangle()
    assert output.preview["metadata"]["class"] == "test_dataclass_materializer.Shape"

"""pydantic models as the JSON pydantic writes; a pickle, with a warning, when validating that
JSON does not give back an equal model."""

import datetime
import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator

from branchwork import pipeline, step
from branchwork.exceptions import ArtifactError
from branchwork.materializers import cloudpickle_materializer
from branchwork.materializers.pydantic_materializer import PydanticMaterializer


class Layer(BaseModel):
    units: int
    activation: str = "relu"


class TrainingConfig(BaseModel):
    model_config = ConfigDict(strict=True)  # validating its JSON must still work

    name: str
    learning_rate: float
    layers: list[Layer]
    started: datetime.datetime
    shape: tuple[int, int]
    tags: set[str] = set()
    parent: "TrainingConfig | None" = None


def config() -> TrainingConfig:
    return TrainingConfig(
        name="small",
        learning_rate=1e-3,
        layers=[Layer(units=64), Layer(units=10, activation="softmax")],
        started=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        shape=(28, 28),
        tags={"mnist"},
        parent=TrainingConfig(
            name="base",
            learning_rate=0.1,
            layers=[],
            started=datetime.datetime(2025, 1, 1),
            shape=(1, 1),
        ),
    )


def test_a_model_round_trips_as_its_json_with_a_preview(round_trip, artifact_store):
    value = config()
    result = round_trip(value)
    assert result.materializer is PydanticMaterializer
    assert (result.files, result.warnings) == (["model.json"], [])
    assert result.loaded == value
    assert type(result.loaded.layers[0]) is Layer
    stored = artifact_store.read_bytes(artifact_store.join(result.uri, "model.json"))
    assert json.loads(stored) == value.model_dump(mode="json")

    assert result.preview["metadata"] == {
        "class": "test_pydantic_materializer.TrainingConfig",
        "fields": ["name", "learning_rate", "layers", "started", "shape", "tags", "parent"],
    }
    assert result.preview["text"].startswith("TrainingConfig(name='small', learning_rate=0.001")


class Features(BaseModel):
    names: set[str]
    by_group: dict[int, frozenset[int]]
    batches: list[set[int]]


def test_sets_are_written_sorted_so_an_equal_model_is_the_same_file(round_trip, artifact_store):
    """pydantic writes a set in its iteration order: an equal model was another file and
    content hash in each process, and every step downstream of it missed the cache."""
    first = round_trip(Features(names={"zip", "age"}, by_group={1: {9, 1}}, batches=[{17, 9}]))
    again = round_trip(
        Features(names={"age", "zip"}, by_group={1: set([1, 9])}, batches=[set([9, 17])])
    )
    assert (first.files, first.warnings) == (["model.json"], [])
    stored = artifact_store.read_bytes(artifact_store.join(first.uri, "model.json"))
    assert json.loads(stored) == {
        "names": ["age", "zip"],
        "by_group": {"1": [1, 9]},
        "batches": [[17, 9]],
    }
    assert first.content_hash == again.content_hash
    assert (
        first.loaded
        == again.loaded
        == Features(names={"age", "zip"}, by_group={1: {1, 9}}, batches=[{9, 17}])
    )


class Loose(BaseModel):
    anything: Any


class WithPrivate(BaseModel):
    value: int
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)


class Doubling(BaseModel):
    value: int

    @field_validator("value")
    @classmethod
    def double(cls, value: int) -> int:
        return value * 2


def with_cache() -> WithPrivate:
    model = WithPrivate(value=1)
    model._cache["hit"] = 1
    return model


@pytest.mark.parametrize(
    "value",
    [Loose(anything=(1, 2)), with_cache(), Doubling(value=2)],
    ids=["tuple_in_any", "private_attribute", "changing_validator"],
)
def test_models_their_json_does_not_rebuild_are_pickled_with_a_warning(
    round_trip, monkeypatch, value
):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    result = round_trip(value)
    assert result.files == ["data.pkl"]
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(
        f"test_pydantic_materializer.{type(value).__name__} values whose JSON does not validate "
        "back to an equal model are stored as cloudpickles"
    )
    assert result.loaded == value


def test_loading_without_the_class_says_what_to_do(round_trip):
    with pytest.raises(ArtifactError, match="loading it needs the pydantic model's class, but"):
        round_trip(Layer(units=3), data_type=Any)


@step
def configure() -> TrainingConfig:
    return config()


@step
def total_units(settings: TrainingConfig) -> int:
    return sum(layer.units for layer in settings.layers)


@pipeline(enable_cache=False)
def sizing():
    return total_units(configure())


def test_models_travel_between_steps_of_a_run():
    assert sizing() == 74
    output = sizing.last_run.steps["configure"].output
    assert output.materializer.endswith(":PydanticMaterializer")
    assert output.load() == config()
    assert output.preview["metadata"]["class"] == "test_pydantic_materializer.TrainingConfig"

"""Custom materializers in a pipeline: per type (registered) and per step output."""

from __future__ import annotations

from typing import Annotated, Any

from branchwork import pipeline, step
from branchwork.materializers import BaseMaterializer, register_materializer


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


class CelsiusMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Celsius,)

    def save(self, data: Celsius) -> None:
        self._write_bytes("celsius.txt", str(data.degrees).encode())

    def load(self, data_type: Any) -> Celsius:
        return Celsius(float(self._read_bytes("celsius.txt")))


class UpperMaterializer(BaseMaterializer):
    """Stores a str upper-cased: only for the output that asks for it."""

    def save(self, data: str) -> None:
        self._write_bytes("upper.txt", data.upper().encode())

    def load(self, data_type: Any) -> str:
        return self._read_bytes("upper.txt").decode()


register_materializer(CelsiusMaterializer, Celsius)


@step
def measure() -> Celsius:
    return Celsius(21.5)


@step
def warmer(reading: Celsius) -> float:
    return reading.degrees + 1


@step(output_materializers={"shout": UpperMaterializer})
def words() -> tuple[Annotated[str, "shout"], Annotated[str, "plain"]]:
    return "hello", "world"


@pipeline(enable_cache=False)
def temperatures():
    return warmer(measure())


@pipeline(enable_cache=False)
def wording():
    return words()


def test_a_registered_materializer_stores_its_type_between_steps():
    assert temperatures() == 22.5
    output = temperatures.last_run.steps["measure"].output
    assert output.materializer.endswith(":CelsiusMaterializer")
    assert output.load().degrees == 21.5


def test_a_materializer_chosen_for_one_step_output_applies_to_that_output_only():
    assert wording() == ("HELLO", "world")
    outputs = wording.last_run.steps["words"].outputs
    assert outputs["shout"].materializer.endswith(":UpperMaterializer")
    assert not outputs["plain"].materializer.endswith(":UpperMaterializer")

"""Pipeline parameters are checked and converted by the pipeline function's annotations before
anything runs; the converted values are what the pipeline receives and what is recorded.

This module uses `from __future__ import annotations`, so every annotation here is a string
that must be resolved first."""

from __future__ import annotations

import datetime
import textwrap
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import pytest
from pydantic import AfterValidator, BaseModel, Field, SecretStr

from branchwork import Client, pipeline, step
from branchwork.exceptions import ConfigurationError, PipelineRunFailedError


@step
def echo(value: Any) -> Any:
    return value


def _capturing(seen: dict[str, Any]) -> dict[str, Any]:
    """The pipeline body's locals as the pipeline received them, with their types."""
    return {name: (value, type(value).__name__) for name, value in seen.items()}


def test_values_are_converted_to_the_annotated_types_received_and_recorded():
    received: dict[str, Any] = {}

    @pipeline
    def typed(
        n: int,
        ratio: float,
        flag: bool,
        sizes: list[int],
        limits: dict[str, int],
        label: str | None = None,
    ):
        arguments = dict(n=n, ratio=ratio, flag=flag, sizes=sizes, limits=limits, label=label)
        received.update(_capturing(arguments))
        return echo(n)

    assert typed(n="3", ratio=1, flag="yes", sizes=["1", 2], limits={"a": "5"}) == 3
    assert received == {
        "n": (3, "int"),
        "ratio": (1.0, "float"),
        "flag": (True, "bool"),
        "sizes": ([1, 2], "list"),
        "limits": ({"a": 5}, "dict"),
        "label": (None, "NoneType"),
    }
    run = typed.last_run
    expected = {
        "n": 3,
        "ratio": 1.0,
        "flag": True,
        "sizes": [1, 2],
        "limits": {"a": 5},
        "label": None,
    }
    assert run.parameters == expected
    assert type(run.parameters["ratio"]) is float


@pipeline
def pipe(
    n: int,
    sizes: list[int] | None = None,
    limit: Optional[int] = None,  # noqa: UP045 - typing.Optional must work too
    name: str = "",
):
    return echo(n)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"n": "abc"},
            "Pipeline 'pipe': parameter 'n' expects int, got 'abc' (str): Input should be a "
            "valid integer, unable to parse string as an integer.",
        ),
        (
            {"n": 3.5},
            "Pipeline 'pipe': parameter 'n' expects int, got 3.5 (float): Input should be a "
            "valid integer, got a number with a fractional part.",
        ),
        (
            {"n": 1, "sizes": [1, "x"]},
            "Pipeline 'pipe': parameter 'sizes' expects list[int] | None, got [1, 'x'] (list): "
            "Input should be a valid integer, unable to parse string as an integer (at sizes[1]).",
        ),
        (
            {"n": 1, "limit": "many"},
            "Pipeline 'pipe': parameter 'limit' expects Optional[int], got 'many' (str): Input "
            "should be a valid integer, unable to parse string as an integer.",
        ),
        (
            {"n": 1, "name": 3},
            "Pipeline 'pipe': parameter 'name' expects str, got 3 (int): Input should be a "
            "valid string.",
        ),
    ],
    ids=["not-an-int", "fraction-for-int", "list-item", "optional", "int-for-str"],
)
def test_a_value_its_annotation_refuses_is_refused_before_anything_runs(arguments, message):
    with pytest.raises(ConfigurationError) as info:
        pipe(**arguments)
    assert str(info.value) == message
    assert Client().list_pipeline_runs() == []


def test_unannotated_and_any_parameters_and_defaults_are_passed_as_they_are():
    received: dict[str, Any] = {}

    @pipeline
    def loose(n: int, raw, anything: Any, fallback: int = None):  # type: ignore[assignment]
        received.update(_capturing(dict(n=n, raw=raw, anything=anything, fallback=fallback)))
        return echo(n)

    loose(n="2", raw="3", anything="4")
    assert received == {
        "n": (2, "int"),
        "raw": ("3", "str"),
        "anything": ("4", "str"),
        "fallback": (None, "NoneType"),
    }


def test_an_annotation_that_cannot_be_resolved_leaves_only_that_parameter_unchecked():
    received: dict[str, Any] = {}

    class Local:  # a string annotation naming it cannot be resolved from the module
        pass

    @pipeline
    def partly(n: int, item: Local):
        received.update(_capturing(dict(n=n, item=item)))
        return echo(n)

    partly(n="5", item={"any": "thing"})
    assert received == {"n": (5, "int"), "item": ({"any": "thing"}, "dict")}


def test_run_configuration_parameters_are_converted_too(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        textwrap.dedent("""
        parameters:
          n: "4"
          sizes: ["1", "2"]
    """)
    )
    assert pipe.with_options(config_path=str(config))() == 4
    assert pipe.last_run.parameters == {"n": 4, "sizes": [1, 2], "limit": None, "name": ""}

    config.write_text("parameters: {n: four}\n")
    with pytest.raises(ConfigurationError, match="parameter 'n' expects int, got 'four'"):
        pipe.with_options(config_path=str(config))()


class Settings(BaseModel):
    lr: float
    layers: int = 2


@dataclass
class Window:
    start: datetime.date
    days: int


RECEIVED: list[dict[str, Any]] = []
DEFAULT_SETTINGS = Settings(lr=0.1)
DEFAULT_WINDOW = Window(datetime.date(2026, 3, 4), 7)


@step
def flaky_echo(value: Any, flag: str) -> Any:
    if Path(flag).exists():
        raise RuntimeError("the flag is set")
    return value


@pipeline
def rich_types(
    flag: str,
    data_dir: Path = Path("/data/raw"),
    day: datetime.date = datetime.date(2026, 1, 2),
    settings: Settings = DEFAULT_SETTINGS,
    window: Window = DEFAULT_WINDOW,
):
    RECEIVED.append(_capturing(dict(data_dir=data_dir, day=day, settings=settings, window=window)))
    return flaky_echo(f"{data_dir}|{day}|{settings.lr}|{window.days}", flag)


def test_paths_dates_models_and_dataclasses_are_recorded_as_json_and_read_back_typed(tmp_path):
    """They were refused ('cannot be recorded'), even as the defaults; now a resume and a
    replay give the body what the first call did."""
    RECEIVED.clear()
    flag = tmp_path / "fail"
    flag.touch()
    with pytest.raises(PipelineRunFailedError):
        rich_types(str(flag), day="2026-05-06", settings={"lr": "0.5"})
    first = RECEIVED[0]
    assert first == {
        "data_dir": (Path("/data/raw"), "PosixPath"),
        "day": (datetime.date(2026, 5, 6), "date"),
        "settings": (Settings(lr=0.5), "Settings"),
        "window": (Window(datetime.date(2026, 3, 4), 7), "Window"),
    }
    run = rich_types.last_run
    assert run.snapshot.parameters == {
        "flag": str(flag),
        "data_dir": "/data/raw",
        "day": "2026-05-06",
        "settings": {"lr": 0.5, "layers": 2},
        "window": {"start": "2026-03-04", "days": 7},
    }
    flag.unlink()
    assert Client().resume_run(run) == "/data/raw|2026-05-06|0.5|7"
    assert Client().replay(run) == "/data/raw|2026-05-06|0.5|7"
    assert RECEIVED[1:] == [first, first]


@step
def describe(value: Any) -> str:
    return repr(value)


@pipeline
def plain_containers(flag: str, pair: tuple, grid, names, fallback=(0.5, "x")):
    RECEIVED.append(_capturing(dict(pair=pair, grid=grid, names=names, fallback=fallback)))
    return flaky_echo(describe((pair, grid, names, fallback)), flag)


def test_tuples_and_int_keyed_dicts_read_back_as_they_were_passed(tmp_path):
    """JSON made them a list and str keys: a resume's body got [1, 2] and {'1': 'a'}, and
    an unchanged run could not be resumed ('calls step describe with different inputs')."""
    RECEIVED.clear()
    flag = tmp_path / "fail"
    flag.touch()
    with pytest.raises(PipelineRunFailedError):
        plain_containers(str(flag), pair=(1, 2), grid=[(0, 1)], names={1: "a", 2: "b"})
    first = RECEIVED[0]
    assert first == {
        "pair": ((1, 2), "tuple"),
        "grid": ([(0, 1)], "list"),
        "names": ({1: "a", 2: "b"}, "dict"),
        "fallback": ((0.5, "x"), "tuple"),
    }
    run = plain_containers.last_run
    assert run.snapshot.parameters == {
        "flag": str(flag),
        "pair": [1, 2],  # annotated: written by its annotation, read back through it
        "grid": [{"$tuple": [0, 1]}],  # unannotated: in the encoding of branchwork.values
        "names": {"$dict": [[1, "a"], [2, "b"]]},
        "fallback": {"$tuple": [0.5, "x"]},
    }
    flag.unlink()
    expected = "((1, 2), [(0, 1)], {1: 'a', 2: 'b'}, (0.5, 'x'))"
    assert Client().resume_run(run) == expected
    assert Client().replay(run) == expected
    assert RECEIVED[1:] == [first, first]


@pipeline
def odd_dicts(flag: str, tagged, ordered):
    RECEIVED.append(_capturing(dict(tagged=tagged, ordered=ordered)))
    return flaky_echo(describe((tagged, dict(ordered))), flag)


def test_a_dict_with_dollar_keys_reads_back_as_it_was_and_an_ordered_dict_as_a_dict(tmp_path):
    """A plain dict {"$tuple": [1, 2]} came back from a resume as the tuple (1, 2); an
    OrderedDict (refused by the first version of the tuple fix) reads back as the dict it
    equals, as it always did."""
    RECEIVED.clear()
    flag = tmp_path / "fail"
    flag.touch()
    tagged = {"$tuple": [1, 2]}
    with pytest.raises(PipelineRunFailedError):
        odd_dicts(str(flag), tagged=tagged, ordered=OrderedDict(b=2, a=1))
    flag.unlink()
    run = odd_dicts.last_run
    assert run.snapshot.parameters["tagged"] == {"$dict": [["$tuple", [1, 2]]]}
    assert Client().resume_run(run) == "({'$tuple': [1, 2]}, {'b': 2, 'a': 1})"
    assert RECEIVED[1] == {"tagged": (tagged, "dict"), "ordered": ({"b": 2, "a": 1}, "dict")}


def test_a_value_that_cannot_be_recorded_is_refused_saying_what_to_do():
    @pipeline
    def opaque(handle):
        return echo(1)

    with pytest.raises(ConfigurationError) as info:
        opaque(object())
    assert str(info.value) == (
        "Pipeline 'opaque': parameter 'handle' (object) cannot be recorded. Pass a "
        "JSON value, or annotate the parameter with its type (a Path, a date, a pydantic model "
        "or a dataclass is then recorded as JSON); load big values or secrets in a step."
    )
    assert Client().list_pipeline_runs() == []


class Aliased(BaseModel):
    learning_rate: float = Field(alias="lr")


DOUBLED: list[int] = []


@pipeline(dynamic=True)
def validated_once(
    n: Annotated[int, AfterValidator(lambda v: v * 2)],
    settings: Aliased = Aliased(lr=0.5),  # noqa: B008 - a default the author made
):
    DOUBLED.append(n)
    return echo(settings.learning_rate)


def test_a_parameter_is_validated_once_and_a_model_with_aliases_reads_back():
    """A value went through its validator again when read back (3 -> 6 -> 12), and a model
    with aliases came back a dict: it was written by field name."""
    DOUBLED.clear()
    assert validated_once(n=3) == 0.5
    run = validated_once.last_run
    assert run.snapshot.parameters == {"n": 6, "settings": {"lr": 0.5}}
    assert Client().replay(run) == 0.5
    assert DOUBLED == [6, 6]


def test_a_secret_is_refused_rather_than_recorded_masked():
    @pipeline
    def with_token(token: SecretStr):
        return echo(1)

    with pytest.raises(ConfigurationError) as info:
        with_token(token="hunter2")
    assert str(info.value).startswith(
        "Pipeline 'with_token': parameter 'token' (SecretStr) cannot be recorded (it "
        "would not read back as it is)."
    )
    assert Client().list_pipeline_runs() == []


@step
def train_with(settings: Any) -> float:
    return Settings.model_validate(settings).lr * 10


@pipeline
def hands_its_model_over(settings: Settings):
    return train_with(settings)


@pipeline
def hands_its_json_over(settings: Settings):
    return train_with(settings.model_dump(mode="json"))


@step
def digits(n: int) -> int:
    return n.bit_length()


@pipeline
def long_literal():
    return digits(10**5000)


@pipeline
def long_but_written():
    return digits(10**4000)


@pipeline
def long_computed():
    return digits(10**5000 + digits(1))


def test_an_int_too_long_to_write_as_text_is_refused_naming_the_argument():
    """Recording it raised a bare ValueError (static), or crashed the loop (dynamic)."""
    for body, invocation in ((long_literal, "digits"), (long_computed, "digits_2")):
        with pytest.raises(PipelineRunFailedError) as failed:
            body()
        assert str(failed.value.__cause__).startswith(
            f"Pipeline '{body.name}': step 'digits' (invocation '{invocation}'), argument 'n' "
            "cannot be passed as a literal parameter: an int of about 5001 digits has no JSON "
            "form (Python writes ints of at most 4300 digits as text"
        )
    assert long_but_written() == (10**4000).bit_length()  # 4 001 digits: within the limit


def test_a_typed_parameter_goes_to_a_step_as_its_json_form_and_the_error_says_so():
    assert hands_its_json_over(settings={"lr": 0.5}) == 5.0
    with pytest.raises(PipelineRunFailedError) as failed:
        hands_its_model_over(settings={"lr": 0.5})
    assert str(failed.value.__cause__) == (
        "Pipeline 'hands_its_model_over': step 'train_with' (invocation 'train_with'), argument "
        "'settings' cannot be passed as a literal parameter: a Settings has no JSON form (only "
        "None, bool, int, float, str and lists, tuples and dicts of them have one). Pass its "
        "JSON form (a model's .model_dump(mode='json'), str(path): as a typed pipeline "
        "parameter is recorded), or produce the value in a step and pass that step's output "
        "instead."
    )

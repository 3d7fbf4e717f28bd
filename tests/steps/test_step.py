"""The `@step` decorator: plain function outside a pipeline, invocations inside one."""

from __future__ import annotations

import time
from typing import Annotated, Any

import pytest

from branchwork import Client, get_step_context, pipeline, step, unmapped
from branchwork.config.resources import ResourceSettings
from branchwork.exceptions import (
    BranchworkError,
    ConfigurationError,
    PipelineRunFailedError,
    StepFailedError,
    StepInvocationError,
)
from branchwork.graph.futures import StepOutput
from branchwork.steps.step import Step


@step
def add(x: int, y: int) -> int:
    """Adds two numbers."""
    return x + y


@step
def make(n: int) -> int:
    return n


@step
def numbers() -> list:
    return [1, 2, 3]


@step
def pause() -> None:
    time.sleep(0.05)


def _cause(info: pytest.ExceptionInfo[PipelineRunFailedError]) -> BaseException:
    """The original error behind a failed run."""
    cause = info.value.__cause__
    assert cause is not None, f"{info.value!r} has no __cause__"
    return cause


# ---- outside a pipeline --------------------------------------------------------------------


def test_step_outside_a_pipeline_is_the_plain_function(client):
    assert add(2, 3) == 5
    assert add(x=1, y=1) == 2
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds two numbers."
    assert client.list_pipeline_runs() == []


def test_map_outside_a_pipeline_is_an_error():
    with pytest.raises(StepInvocationError, match="'add'.*inside a pipeline"):
        add.map([1, 2], unmapped(1))


# ---- decorator forms and invocation ids ----------------------------------------------------


def test_decorator_with_and_without_arguments():
    def plain(x: int) -> int:
        return x

    bare = step(plain)
    configured = step(name="renamed", enable_cache=False)(plain)

    assert isinstance(bare, Step) and isinstance(configured, Step)
    assert bare.name == "plain"
    assert configured.name == "renamed"
    assert configured.enable_cache is False
    assert bare(4) == 4 and configured(4) == 4

    @pipeline
    def uses_both():
        return bare(1), configured(2)

    assert uses_both() == (1, 2)
    steps = uses_both.last_run.steps
    assert set(steps) == {"plain", "renamed"}
    assert steps["renamed"].step_name == "renamed"


def test_invocation_ids_follow_call_order():
    @pipeline
    def thrice():
        return [make(1), make(2), make(3)]

    assert thrice() == [1, 2, 3]
    steps = thrice.last_run.steps
    assert set(steps) == {"make", "make_2", "make_3"}
    assert [steps[i].output.load() for i in ("make", "make_2", "make_3")] == [1, 2, 3]
    assert {s.step_name for s in steps.values()} == {"make"}


def test_explicit_id_overrides_the_generated_one():
    @pipeline
    def custom_ids():
        return make(1, id="custom"), make(2)

    assert custom_ids() == (1, 2)
    steps = custom_ids.last_run.steps
    assert set(steps) == {"custom", "make"}
    assert steps["custom"].step_name == "make"
    assert steps["custom"].output.load() == 1
    assert steps["make"].output.load() == 2


def test_generated_ids_step_around_explicit_ids_and_steps_named_like_them():
    make_2 = step(name="make_2")(lambda x: x)

    @pipeline
    def crowded():
        return (
            make(1, id="make_3"),  # the id the third call of `make` would get
            make(2),
            make_2(3),  # a step named like the second call of `make`
            make(4),  # neither make_2 nor make_3: taken
            make(5, id="make_05"),  # not a generated id
        )

    assert crowded() == (1, 2, 3, 4, 5)
    steps = crowded.last_run.steps
    assert {name: s.step_name for name, s in steps.items()} == {
        "make_3": "make",
        "make": "make",
        "make_2": "make_2",
        "make_4": "make",
        "make_05": "make",
    }

    @pipeline
    def reuses_a_generated_id():
        make(1)
        make(2)
        make(3, id="make_2")

    with pytest.raises(PipelineRunFailedError) as info:
        reuses_a_generated_id()
    assert "invocation id 'make_2' is used twice" in str(_cause(info))

    @pipeline
    def names_a_number_in_another_script():
        make(1)
        make(2)
        make(3)
        make(4, after="make_\u0663")  # ARABIC-INDIC DIGIT THREE: not 'make_3'

    with pytest.raises(PipelineRunFailedError) as info:
        names_a_number_in_another_script()
    assert "depends on 'make_\u0663', which is not an earlier step" in str(_cause(info))


def test_duplicate_explicit_id_is_an_invocation_error():
    @pipeline
    def duplicate():
        make(1, id="twice")
        make(2, id="twice")

    with pytest.raises(PipelineRunFailedError) as info:
        duplicate()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert "'twice'" in str(cause)
    assert "used twice" in str(cause)
    assert duplicate.last_run.status == "failed"


@pytest.mark.parametrize("bad", ["x/y", ".", ".."])
def test_an_explicit_id_no_path_can_hold_is_refused_when_the_call_is_made(bad: str):
    """RUN/INVOCATION/OUTPUT addresses a step's output on the command line, and the
    dashboard's URLs a step: 'x/y' could not be addressed, and a browser reads '..' in a
    step's address as the run's."""

    @pipeline
    def slashed():
        make(1, id="ok")
        make(5, id=bad)

    with pytest.raises(PipelineRunFailedError) as info:
        slashed()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert str(cause) == (
        f"Pipeline 'slashed': id= for step 'make' is {bad!r}; an invocation id cannot contain "
        "'/' nor be '.' or '..' (the CLI reads RUN/INVOCATION/OUTPUT and the dashboard "
        "addresses steps by path, so the step's outputs could not be addressed)."
    )
    assert slashed.last_run.status == "failed"


# ---- after= --------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["future", "id"])
def test_after_orders_steps_without_data(by):
    @pipeline
    def ordered():
        first = pause()
        return make(1, after=first if by == "future" else "pause")

    assert ordered() == 1
    run = ordered.last_run
    before, after = run.steps["pause"], run.steps["make"]
    assert before.status == after.status == "completed"
    assert after.start_time >= before.end_time
    assert after.parent_step_run_ids == (before.id,)
    assert after.inputs == {}


def test_after_an_unknown_invocation_is_an_error():
    @pipeline
    def dangling():
        make(1, after="nope")

    with pytest.raises(PipelineRunFailedError) as info:
        dangling()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert "'nope'" in str(cause) and "'make'" in str(cause)


@step
def scale(values: list, factor: float = 2.0) -> list:
    return [v * factor for v in values]


def test_a_misspelled_keyword_is_named_with_the_parameter_it_resembles():
    """Python names the missing argument first: the error read as if `values` was
    forgotten while the call said `valeus`."""

    @pipeline
    def misspelled():
        return scale(valeus=[1, 2])

    with pytest.raises(PipelineRunFailedError) as info:
        misspelled()
    assert str(_cause(info)) == (
        "Pipeline 'misspelled': step 'scale' (invocation 'scale') cannot be called this way: "
        "got an unexpected keyword argument 'valeus' (did you mean 'values'?). Its signature "
        "is scale(values: 'list', factor: 'float' = 2.0) -> 'list'; required arguments: "
        "values."
    )


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_refused_call_gives_its_id_back(dynamic):
    """A call refused in the body (bad arguments) never ran: naming its id later is the
    ordinary "not an earlier step" error (it crashed the loop: "no step run of 'first'"),
    and the next call may take the id, explicit or generated."""
    errors: list[str] = []

    @pipeline
    def recovers():
        if dynamic:
            make(0).load()  # the calls below are made live, one at a time
        for bad_call in (lambda: make(y=1, id="first"), lambda: make(1, 2)):
            try:
                bad_call()
            except StepInvocationError as error:
                errors.append(str(error))
        try:
            make(2, after="first")
        except StepInvocationError as error:
            errors.append(str(error))
        return make(3, id="first"), make(4)

    assert recovers() == (3, 4), errors
    assert "got an unexpected keyword argument 'y'" in errors[0]
    assert "too many positional arguments" in errors[1]
    generated = "make_2" if dynamic else "make"
    assert errors[2] == (
        f"Pipeline 'recovers': step 'make' (invocation '{generated}') depends on 'first', "
        "which is not an earlier step of this run."
    )
    steps = recovers.last_run.steps
    assert steps["first"].output.load() == 3
    assert steps[generated].output.load() == 4  # not one id further: the bad call's is back
    assert len(steps) == (3 if dynamic else 2)


# ---- submit, map, product ------------------------------------------------------------------


def test_submit_is_the_same_as_a_call():
    seen: dict[str, Any] = {}

    @pipeline
    def submitted():
        out = add.submit(2, y=5)
        seen["type"] = type(out)
        return out

    assert submitted() == 7
    assert seen["type"] is StepOutput
    assert set(submitted.last_run.steps) == {"add"}


def test_map_fans_out_one_invocation_per_item():
    @pipeline
    def mapped():
        return make.map([1, 2, 3])

    assert mapped() == [1, 2, 3]
    steps = mapped.last_run.steps
    assert set(steps) == {"make", "make_2", "make_3"}
    assert [steps[i].output.load() for i in ("make", "make_2", "make_3")] == [1, 2, 3]


def test_map_with_unmapped_argument():
    @pipeline
    def mapped_unmapped():
        return add.map([1, 2, 3], unmapped(10))

    assert mapped_unmapped() == [11, 12, 13]
    assert len(mapped_unmapped.last_run.steps) == 3


def test_map_with_keyword_arguments():
    @pipeline
    def mapped_kwargs():
        return add.map(x=[1, 2], y=unmapped(100))

    assert mapped_kwargs() == [101, 102]


def test_product_gives_every_combination():
    @pipeline
    def combos():
        return add.product([1, 2], [10, 20])

    assert combos() == [11, 21, 12, 22]
    assert set(combos.last_run.steps) == {"add", "add_2", "add_3", "add_4"}


def test_map_over_a_future_of_a_list_passes_items_by_reference():
    @pipeline
    def mapped_future():
        xs = numbers()
        return add.map(xs, unmapped(10))

    assert mapped_future() == [11, 12, 13]
    run = mapped_future.last_run
    source = run.steps["numbers"]
    for index, invocation_id in enumerate(("add", "add_2", "add_3")):
        consumer = run.steps[invocation_id]
        # the item is read from the producer's stored list, not copied in as a literal
        assert consumer.inputs["x"].id == source.output.id
        assert consumer.parent_step_run_ids == (source.id,)
        assert consumer.configuration.config["inputs"]["x"] == {
            "$ref": "numbers",
            "output": "output",
            "index": index,
        }


def test_map_with_mismatched_lengths_is_an_invocation_error():
    @pipeline
    def mismatched():
        add.map([1, 2, 3], [1, 2])

    with pytest.raises(PipelineRunFailedError) as info:
        mismatched()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert "'add'" in str(cause)
    assert "different lengths" in str(cause)
    assert mismatched.last_run.status == "failed"


def test_unmapped_future_is_passed_whole_to_every_call():
    @pipeline
    def shared_future():
        offset = make(100)
        return add.map([1, 2], unmapped(offset))

    assert shared_future() == [101, 102]
    run = shared_future.last_run
    for invocation_id in ("add", "add_2"):
        assert run.steps[invocation_id].inputs["y"].id == run.steps["make"].output.id


def test_map_refuses_an_id_it_cannot_give_its_calls():
    """`add.map(xs, id="x")` was run as if id= had not been given."""

    @pipeline
    def named_map():
        return add.map([1, 2], [3, 4], id="adding")

    with pytest.raises(PipelineRunFailedError) as refused:
        named_map()
    assert str(refused.value.__cause__) == (
        "Step 'add': .map()/.product() take no id=: its calls are named add, add_2, ... in "
        "order. Call the step in a loop with id= for ids of your own."
    )


# ---- a parameter named like a reserved keyword ---------------------------------------------


@step
def schedule(task: str, after: int = 0) -> str:
    return f"{task}@{after}"


def test_function_parameter_named_after_is_an_ordinary_argument():
    @pipeline
    def scheduled():
        return schedule("a", after=5), schedule("b")

    assert scheduled() == ("a@5", "b@0")


def test_map_keeps_the_default_of_a_parameter_named_after():
    @pipeline
    def mapped_default():
        return schedule.map(["a", "b"])

    assert mapped_default() == ["a@0", "b@0"]


def test_map_passes_a_parameter_named_after_to_the_function():
    @pipeline
    def mapped_after():
        return schedule.map(["a", "b"], after=unmapped(5))

    assert mapped_after() == ["a@5", "b@5"]


# ---- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda first: add(first), "'y'"),
        (lambda first: add(first, 2, z=3), "'z'"),
    ],
    ids=["missing", "unknown"],
)
def test_bad_arguments_fail_the_run_naming_step_and_argument(call, argument):
    @pipeline
    def badly_called():
        first = make(1)
        first.wait()
        call(first)

    with pytest.raises(PipelineRunFailedError) as info:
        badly_called()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert "step 'add'" in str(cause)
    assert argument in str(cause)

    run = badly_called.last_run
    assert run.status == "failed"
    assert run.exception_type == "StepInvocationError"
    assert run.steps["make"].status == "completed"
    assert "add" not in run.steps


def test_literal_argument_that_is_not_json_is_an_invocation_error():
    @pipeline
    def unrecordable():
        add(1, object())

    with pytest.raises(PipelineRunFailedError) as info:
        unrecordable()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert "argument 'y'" in str(cause)
    assert "object" in str(cause)
    assert unrecordable.last_run.status == "failed"


def test_output_of_a_step_without_outputs_cannot_be_passed_as_data():
    @pipeline
    def no_data():
        done = pause()
        add(done, 1)

    with pytest.raises(PipelineRunFailedError) as info:
        no_data()
    cause = _cause(info)
    assert isinstance(cause, StepInvocationError)
    assert "'pause'" in str(cause)
    assert "argument 'x'" in str(cause)
    assert "after=" in str(cause)


def test_literal_lists_and_dicts_are_accepted():
    @step
    def echo(value: dict) -> dict:
        return value

    @pipeline
    def literals():
        return echo({"a": [1, 2.5, None, True], "b": {"c": "d"}})

    assert literals() == {"a": [1, 2.5, None, True], "b": {"c": "d"}}


# ---- options and settings ------------------------------------------------------------------


def test_with_options_returns_a_copy():
    uncached = make.with_options(enable_cache=False)
    assert uncached is not make
    assert uncached.enable_cache is False
    assert make.enable_cache is None
    assert uncached.name == make.name

    resourced = make.with_options(settings={"resources": ResourceSettings(cpu_count=1)})
    assert resourced.resources.cpu_count == 1
    assert make.resources.cpu_count is None


def test_with_options_enable_cache_false_skips_the_cache_only_for_the_copy():
    uncached = make.with_options(enable_cache=False)

    @pipeline
    def twice_cached():
        return make(5, id="original"), uncached(5, id="copy")

    assert twice_cached() == (5, 5)
    assert twice_cached() == (5, 5)
    steps = twice_cached.last_run.steps
    assert steps["original"].status == "cached"
    assert steps["copy"].status == "completed"


@pytest.mark.parametrize(
    ("make_step", "expected"),
    [
        (lambda f: step(settings={"resource": ResourceSettings()})(f), "resource"),
        (lambda f: step(settings={"resources": {"cpus": 2}})(f), "cpus"),
        (lambda f: step(settings={"resources": ResourceSettings(cpu_count=-1)})(f), "cpu_count"),
        (lambda f: step(settings={"resources": ResourceSettings(memory="lots")})(f), "memory"),
        (lambda f: step(f).with_options(settings={"resourcez": {}}), "resourcez"),
    ],
    ids=["typo", "unknown-field", "negative-cpu", "bad-memory", "with-options"],
)
def test_invalid_settings_are_configuration_errors(make_step, expected):
    def configured() -> int:
        return 1

    with pytest.raises(ConfigurationError, match=expected):
        make_step(configured)


def test_resource_settings_errors_name_the_field_and_value():
    with pytest.raises(ConfigurationError, match=r"cpu_count.*-1"):
        ResourceSettings(cpu_count=-1)
    for name in ("cpu_count", "gpu_count"):  # nan passed (cpu) or raised a bare ValueError
        for value in (float("nan"), float("inf")):
            with pytest.raises(ConfigurationError, match=f"{name} must be a finite number"):
                ResourceSettings(**{name: value})
    with pytest.raises(ConfigurationError, match=r"memory.*'lots'"):
        ResourceSettings(memory="lots")
    assert ResourceSettings(memory="4GB").memory_bytes == 4 * 1000**3


# ---- the step context ----------------------------------------------------------------------


@step
def whoami() -> dict:
    context = get_step_context()
    return {
        "invocation_id": context.invocation_id,
        "step_name": context.step_name,
        "attempt": context.attempt,
        "run_id": context.run_id,
        "step_run_id": context.step_run_id,
        "pipeline_name": context.pipeline_name,
    }


def test_get_step_context_inside_a_step():
    @pipeline
    def introspect():
        return whoami(), whoami()

    first, second = introspect()
    run = introspect.last_run
    assert first == {
        "invocation_id": "whoami",
        "step_name": "whoami",
        "attempt": 1,
        "run_id": run.id,
        "step_run_id": run.steps["whoami"].id,
        "pipeline_name": "introspect",
    }
    assert second["invocation_id"] == "whoami_2"
    assert second["step_name"] == "whoami"
    assert second["step_run_id"] == run.steps["whoami_2"].id
    assert Client().get_pipeline_run(run.id).id == first["run_id"]


def test_get_step_context_outside_a_step_is_an_error():
    with pytest.raises(BranchworkError, match="outside a running step"):
        get_step_context()
    # calling the step as a plain function is not "running a step" either
    with pytest.raises(BranchworkError, match="outside a running step"):
        whoami()


# ---- output types --------------------------------------------------------------------------


@step
def array_scalars() -> tuple[
    Annotated[int, "count"],
    Annotated[int, "small"],
    Annotated[float, "ratio"],
    Annotated[float, "mean"],
    Annotated[bool, "flag"],
    Annotated[float, "whole"],
]:
    import numpy as np

    return np.int64(3), np.uint8(7), np.float32(0.5), np.float64(0.25), np.bool_(True), 2


def test_numbers_that_are_the_annotated_type_in_practice_are_stored_as_it():
    @pipeline
    def from_numpy():
        return array_scalars()

    returned = from_numpy()
    stored = from_numpy.last_run.steps["array_scalars"].outputs
    loaded = {name: artifact.load() for name, artifact in stored.items()}
    expected = {"count": 3, "small": 7, "ratio": 0.5, "mean": 0.25, "flag": True, "whole": 2.0}
    assert loaded == expected
    assert {name: type(value) for name, value in loaded.items()} == {
        "count": int,
        "small": int,
        "ratio": float,
        "mean": float,
        "flag": bool,
        "whole": float,
    }
    assert [type(value) for value in returned] == [int, int, float, float, bool, float]


_UNANNOTATED: Any = object()


@step
def flags() -> tuple[Annotated[int, "yes"], Annotated[int, "no"], Annotated[bool, "flag"]]:
    return True, False, True


def test_a_bool_returned_for_int_is_stored_as_the_plain_int():
    @pipeline
    def counted():
        return flags()

    assert counted() == (1, 0, True)
    stored = counted.last_run.steps["flags"].outputs
    loaded = {name: artifact.load() for name, artifact in stored.items()}
    assert {name: (value, type(value)) for name, value in loaded.items()} == {
        "yes": (1, int),
        "no": (0, int),
        "flag": (True, bool),
    }


def _returning(annotation: Any, value: Any) -> Step[Any, Any]:
    """A step 'returns' that returns `value`, with `annotation` as its return annotation."""

    def returns():
        return value

    if annotation is not _UNANNOTATED:
        returns.__annotations__ = {"return": annotation}
    return step(name="returns")(returns)


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        (int, 3.5, "annotated int but the step returned a float (3.5)."),
        (int, "3", "annotated int but the step returned a str ('3')."),
        (float, "0.5", "annotated float but the step returned a str ('0.5')."),
        (float, True, "annotated float but the step returned a bool (True)."),
        (bool, 1, "annotated bool but the step returned a int (1)."),
    ],
    ids=["fraction-for-int", "str-for-int", "str-for-float", "bool-for-float", "int-for-bool"],
)
def test_an_output_that_is_not_its_annotated_number_still_fails_the_step(
    annotation, value, message
):
    returns = _returning(annotation, value)

    @pipeline
    def mistyped():
        return returns()

    with pytest.raises(PipelineRunFailedError) as info:
        mistyped()
    cause = _cause(info)
    assert isinstance(cause, StepFailedError)
    assert str(cause) == f"Step 'returns' (invocation 'returns'): output 'output' is {message}"
    assert mistyped.last_run.steps["returns"].status == "failed"


@pytest.mark.parametrize("annotation", [Any, _UNANNOTATED], ids=["any", "unannotated"])
def test_an_output_annotated_any_or_not_at_all_is_stored_as_returned(annotation):
    returns = _returning(annotation, {"kept": (1, "as is")})

    @pipeline
    def untyped():
        return returns()

    assert untyped() == {"kept": (1, "as is")}


def test_a_step_decorated_again_is_refused_rather_than_its_options_ignored():
    """`step(name="square", enable_cache=False)(add)` made a step whose calls were `add`'s,
    under add's name and cached: the new options were silently ignored."""
    with pytest.raises(ConfigurationError) as info:
        step(name="square", enable_cache=False)(add)
    assert str(info.value) == (
        "@step of 'add': it is a step already; change its options with add.with_options(...), "
        "or make another step of its function with step(...)(add.func)"
    )
    square = step(name="square", enable_cache=False)(add.func)
    assert (square.name, square.enable_cache, square(2, 3)) == ("square", False, 5)


@step
def halves(x: int) -> tuple[Annotated[int, "low"], Annotated[int, "high"]]:
    return x // 2, x - x // 2


@step
def doubled_int(x: int) -> int:
    return 2 * x


@step
def pair_sum(pair: tuple) -> int:
    return sum(pair)


def test_all_outputs_of_a_call_given_to_a_parameter_no_tuple_fits_are_refused():
    """The step received the tuple and failed later, blaming its own output's type."""

    @pipeline
    def unsplit():
        return doubled_int(halves(5))

    with pytest.raises(PipelineRunFailedError) as info:
        unsplit()
    assert str(_cause(info)) == (
        "Pipeline 'unsplit': step 'doubled_int' (invocation 'doubled_int'), argument 'x' is "
        "annotated int, but is given the 2 outputs of invocation 'halves' as one tuple "
        "(low, high). Unpack them first (low, high = ...) and pass the one it takes."
    )

    @pipeline
    def as_a_pair():
        low, high = halves(5)
        return pair_sum(halves(5)), doubled_int(high)

    assert as_a_pair() == (5, 6)  # a tuple parameter takes them; one output is one value

"""Step outputs as futures inside a running pipeline: used as values they wait and behave as
the loaded value; passed to steps they are edges; returned they come back loaded."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Annotated, Any, Tuple  # noqa: UP035 - the documented spelling

import pytest

from branchwork import Client, pipeline, step
from branchwork.exceptions import PipelineDefinitionError, PipelineRunFailedError, StepFailedError
from branchwork.graph.futures import StepOutput


@step
def make_int(n: int) -> int:
    return n


@step
def make_float(x: float) -> float:
    return x


@step
def make_str(text: str) -> str:
    return text


@step
def make_list(items: list) -> list:
    return items


@step
def make_dict(data: dict) -> dict:
    return data


@step
def halve(x: int) -> int:
    return x // 2


@step
def total(values: list) -> int:
    return sum(values)


@step
def split() -> Tuple[Annotated[int, "a"], Annotated[str, "b"]]:  # noqa: UP006 - the documented form
    return 7, "seven"


@step
def double(x: int) -> int:
    return 2 * x


@step
def shout(text: str) -> str:
    return text.upper() + "!"


@step
def explode(n: int) -> int:
    raise ValueError(f"boom {n}")


@step
def nothing() -> None:
    return None


# ---- a call returns a future at once ----------------------------------------------------------


def test_step_call_returns_a_future_before_the_step_finishes():
    release = threading.Event()
    seen: dict[str, Any] = {}

    @step
    def slow() -> int:
        assert release.wait(5), "the pipeline body never released the step"
        return 3

    @pipeline
    def at_once():
        out = slow()
        seen["type"] = type(out)
        seen["done_before_release"] = out.wait(timeout=0)
        release.set()
        seen["wait"] = out.wait()
        seen["value"] = out.load()
        return out

    assert at_once() == 3
    assert seen["type"] is StepOutput
    assert seen["done_before_release"] is False
    assert seen["wait"] is True
    assert seen["value"] == 3
    assert at_once.last_run.status == "completed"


# ---- used as a value, a future behaves as the loaded value ----------------------------------


def test_comparisons_and_truth_use_the_loaded_value():
    seen: dict[str, Any] = {}

    @pipeline
    def compare():
        five = make_int(5)
        zero = make_int(0)
        seen.update(
            truthy=bool(five),
            falsy=bool(zero),
            not_zero=not zero,
            eq=five == 5,
            eq_future=five == make_int(5),
            ne=five != 4,
            ne_false=five != 5,
            lt=five < 6,
            lt_false=five < 5,
            le=five <= 5,
            gt=five > 4,
            gt_false=five > 5,
            ge=five >= 5,
            reflected_lt=4 < five,  # noqa: SIM300 - the reflected operator is the point
            reflected_ge=6 >= five,  # noqa: SIM300
        )
        return five

    assert compare() == 5
    assert seen == {
        "truthy": True,
        "falsy": False,
        "not_zero": True,
        "eq": True,
        "eq_future": True,
        "ne": True,
        "ne_false": False,
        "lt": True,
        "lt_false": False,
        "le": True,
        "gt": True,
        "gt_false": False,
        "ge": True,
        "reflected_lt": True,
        "reflected_ge": True,
    }


def test_arithmetic_works_on_both_sides():
    seen: dict[str, Any] = {}

    @pipeline
    def arithmetic():
        seven = make_int(7)
        two = make_int(2)
        seen.update(
            add=seven + 1,
            radd=1 + seven,
            sub=seven - 2,
            rsub=10 - seven,
            mul=seven * 3,
            rmul=3 * seven,
            truediv=seven / 2,
            rtruediv=14 / seven,
            floordiv=seven // 2,
            rfloordiv=20 // seven,
            mod=seven % 4,
            rmod=20 % seven,
            pow=seven**2,
            rpow=2**seven,
            two_futures=seven + two,
            neg=-seven,
        )
        return seven

    arithmetic()
    assert seen == {
        "add": 8,
        "radd": 8,
        "sub": 5,
        "rsub": 3,
        "mul": 21,
        "rmul": 21,
        "truediv": 3.5,
        "rtruediv": 2.0,
        "floordiv": 3,
        "rfloordiv": 2,
        "mod": 3,
        "rmod": 6,
        "pow": 49,
        "rpow": 128,
        "two_futures": 9,
        "neg": -7,
    }


def test_conversions_len_range_iteration_indexing_and_membership():
    seen: dict[str, Any] = {}

    @pipeline
    def conversions():
        three = make_int(3)
        ratio = make_float(2.75)
        items = make_list([10, 20, 30])
        seen.update(
            int=int(ratio),
            float=float(three),
            len=len(items),
            range=list(range(three)),
            iterated=[item * 2 for item in items],
            index=items[1],
            negative_index=items[-1],
            slice=items[:2],
            contains=20 in items,
            not_contains=99 in items,
        )
        return items

    assert conversions() == [10, 20, 30]
    assert seen == {
        "int": 2,
        "float": 3.0,
        "len": 3,
        "range": [0, 1, 2],
        "iterated": [20, 40, 60],
        "index": 20,
        "negative_index": 30,
        "slice": [10, 20],
        "contains": True,
        "not_contains": False,
    }
    assert isinstance(seen["float"], float)


def test_a_future_in_a_set_or_as_a_dict_key_is_refused_saying_to_load_it():
    """Hashed by identity, `status() in {"ok", "done"}` was False (a wrong branch); hashed by
    value, `{make_int(i): i ...}` would wait for each step in turn and merge equal values."""

    @pipeline
    def in_a_set():
        three = make_int(3)
        return make_int(1 if three in {1, 3} else 0)

    with pytest.raises(PipelineRunFailedError) as info:
        in_a_set()
    cause = info.value.__cause__
    assert isinstance(cause, TypeError)
    assert str(cause) == (
        "A step output (<StepOutput make_int.output>) cannot be hashed, so it cannot be in a set "
        "or be a dict key: use its value, `.load()` (`status().load() in {'ok', 'done'}`), or "
        "key by `.invocation_id`."
    )
    seen: dict[str, Any] = {}

    @pipeline
    def loaded_first():
        three = make_int(3)
        seen.update(in_set=three.load() in {1, 3}, keyed={three.invocation_id: 3})
        return three

    assert loaded_first() == 3
    assert seen == {"in_set": True, "keyed": {"make_int": 3}}


@dataclass
class Check:
    result: bool
    index: int
    stop: bool
    load: str


@step
def check() -> Check:
    return Check(result=False, index=7, stop=True, load="light")


@step
def numbers() -> list:
    return [4, 6, 8]


def test_attributes_named_as_a_futures_own_reach_the_value_or_say_why_not():
    """`c.index` and `c.stop` were the future's own (None), and `if c.result:` took the
    method, always true: silently wrong branches and values."""
    seen: dict[str, Any] = {}

    @pipeline
    def shadowed():
        c, xs = check(), numbers()
        seen.update(index=c.index, stop=c.stop, position=xs.index(6), result=c.load().result)
        for name in ("result", "load", "wait"):
            with pytest.raises(TypeError) as refused:
                bool(getattr(c, name))
            seen[f"{name}()"] = str(refused.value)
        with pytest.raises(TypeError):
            _ = c.result == False  # noqa: E712 - what the user wrote
        seen["copies"] = (copy.copy(c) is c, copy.deepcopy({"c": c})["c"] is c)
        return xs

    assert shadowed() == [4, 6, 8]
    assert {key: seen[key] for key in ("index", "stop", "position", "result")} == {
        "index": 7,
        "stop": True,
        "position": 1,
        "result": False,
    }
    assert seen["result()"] == (
        "`result` of a step output (<StepOutput check.output>) is its method `result()`, not "
        "an attribute of its value: call it, or use `.load().result` for the value's."
    )
    assert seen["load()"].startswith("`load` of a step output (<StepOutput check.output>)")
    assert seen["copies"] == (True, True)


@step
def labelled(text: str, label: str) -> str:
    return f"{label}: {text}"


KEPT: list[Any] = []


@pipeline
def keeps(source: str):
    if not KEPT:
        KEPT.append(make_str(f"from {source}"))  # a future kept for later calls: a mistake
    return labelled(KEPT[0], "kept"), labelled(make_str(source), "own")


def test_a_future_kept_from_another_run_is_refused_not_taken_by_its_id():
    """The second call's `labelled(KEPT[0], ...)` got this run's `make_str` (same id, other
    data); reading the kept future after its run returned started a run of its own, which
    read lost a moment later."""
    KEPT.clear()
    assert keeps(source="a") == ("kept: from a", "own: a")
    with pytest.raises(PipelineRunFailedError) as refused:
        keeps(source="b")
    assert str(refused.value.__cause__) == (
        "Pipeline 'keeps': step 'labelled' (invocation 'labelled'), argument 'text' receives "
        "<StepOutput make_str.output>, a step output of another run (a future kept from an "
        "earlier run, or the parent run of a child pipeline): pass its value instead "
        "(`.load()` it in the run that made it), or make the call in that run."
    )
    runs = Client().list_pipeline_runs(pipeline="keeps")
    with pytest.raises(PipelineDefinitionError, match="belongs to a call of pipeline 'keeps'"):
        KEPT[0] + "!"
    assert len(Client().list_pipeline_runs(pipeline="keeps")) == len(runs) == 2


def test_formatting_and_attribute_access():
    seen: dict[str, Any] = {}

    @pipeline
    def formatting():
        number = make_int(42)
        ratio = make_float(0.5)
        text = make_str("hello")
        data = make_dict({"k": "v"})
        seen.update(
            str=str(number),
            fstring=f"n={number:05d} r={ratio:.2f} t={text!s}",
            upper=text.upper(),
            get=data.get("k"),
            get_default=data.get("missing", "dflt"),
            keys=sorted(data.keys()),
        )
        return number

    formatting()
    assert seen == {
        "str": "42",
        "fstring": "n=00042 r=0.50 t=hello",
        "upper": "HELLO",
        "get": "v",
        "get_default": "dflt",
        "keys": ["k"],
    }


def test_load_result_and_wait():
    seen: dict[str, Any] = {}

    @pipeline
    def loading():
        data = make_dict({"a": [1, 2]})
        seen.update(load=data.load(), result=data.result(), wait=data.wait())
        return data

    loading()
    assert seen == {"load": {"a": [1, 2]}, "result": {"a": [1, 2]}, "wait": True}


def test_repr_does_not_wait_for_the_step():
    release = threading.Event()
    seen: dict[str, Any] = {}

    @step
    def blocked() -> int:
        assert release.wait(5), "repr() waited for the step"
        return 1

    @pipeline
    def show():
        out = blocked(id="slowpoke")
        seen["repr"] = repr(out)
        seen["finished_during_repr"] = out.wait(timeout=0)
        release.set()
        return out

    assert show() == 1
    assert "slowpoke" in seen["repr"]
    assert seen["repr"].startswith("<StepOutput")
    assert seen["finished_during_repr"] is False


# ---- several outputs, fan-in, waiting -----------------------------------------------------


def test_several_outputs_unpack_into_separate_futures():
    seen: dict[str, Any] = {}

    @pipeline
    def unpack():
        a, b = split()
        seen["types"] = (type(a), type(b))
        return double(a), shout(b)

    assert unpack() == (14, "SEVEN!")
    assert seen["types"] == (StepOutput, StepOutput)
    run = unpack.last_run
    assert run.status == "completed"
    outputs = run.steps["split"].outputs
    assert set(outputs) == {"a", "b"}
    assert outputs["a"].load() == 7
    assert outputs["b"].load() == "seven"
    # each consumer reads the one output it was given
    assert run.steps["double"].inputs["x"].id == outputs["a"].id
    assert run.steps["shout"].inputs["text"].id == outputs["b"].id


def test_single_output_step_run_has_output():
    @pipeline
    def single():
        return make_int(11)

    single()
    step_run = single.last_run.steps["make_int"]
    assert set(step_run.outputs) == {"output"}
    assert step_run.output.load() == 11


def test_list_of_futures_passed_to_a_step_arrives_as_loaded_values():
    seen: list[Any] = []

    @step
    def collect(values: list) -> int:
        seen.append(list(values))
        return sum(values)

    @pipeline
    def fan_in():
        parts = [make_int(i) for i in (1, 2, 3)]
        return collect(parts)

    assert fan_in() == 6
    assert seen == [[1, 2, 3]]
    run = fan_in.last_run
    parents = set(run.steps["collect"].parent_step_run_ids)
    assert parents == {run.steps[i].id for i in ("make_int", "make_int_2", "make_int_3")}


def test_later_steps_wait_for_a_value_used_by_the_body():
    @pipeline
    def gated():
        n = make_int(3)
        return [double(i) for i in range(n)] + [double(n + 1)]

    assert gated() == [0, 2, 4, 8]
    run = gated.last_run
    assert run.snapshot.is_dynamic is True
    producer_end = run.steps["make_int"].end_time
    for invocation_id in ("double", "double_2", "double_3", "double_4"):
        assert run.steps[invocation_id].start_time >= producer_end
    # `n + 1` was computed in the body: the step got the loaded value as a literal
    assert run.steps["double_4"].configuration.config["inputs"] == {"x": 4}
    assert run.steps["double_4"].inputs == {}


def test_loop_until_a_step_output_converges():
    @pipeline
    def converge(start: int):
        x = make_int(start)
        while x > 1:
            x = halve(x)
        return x

    assert converge(start=20) == 1
    run = converge.last_run
    assert run.status == "completed"
    # 20 -> 10 -> 5 -> 2 -> 1: four halvings, each fed by the previous one
    ids = ["make_int", "halve", "halve_2", "halve_3", "halve_4"]
    assert set(run.steps) == set(ids)
    assert [run.steps[i].output.load() for i in ids] == [20, 10, 5, 2, 1]
    assert run.steps["halve_3"].parent_step_run_ids == (run.steps["halve_2"].id,)


# ---- return values ------------------------------------------------------------------------


def test_pipeline_returning_none():
    @pipeline
    def returns_nothing():
        make_int(1)

    assert returns_nothing() is None
    assert returns_nothing.last_run.status == "completed"


def test_pipeline_returning_output_of_step_without_outputs_is_none():
    @pipeline
    def returns_none_future():
        return nothing()

    assert returns_none_future() is None
    assert returns_none_future.last_run.steps["nothing"].status == "completed"


def test_pipeline_returning_a_single_future():
    @pipeline
    def returns_one():
        return make_str("x")

    assert returns_one() == "x"


def test_pipeline_returning_a_list_of_futures():
    @pipeline
    def returns_list():
        return [make_int(1), make_str("two"), make_list([3])]

    assert returns_list() == [1, "two", [3]]


def test_pipeline_returning_a_dict_of_futures():
    @pipeline
    def returns_dict():
        return {"n": make_int(1), "nested": {"s": make_str("s")}, "many": [make_int(2)]}

    assert returns_dict() == {"n": 1, "nested": {"s": "s"}, "many": [2]}


def test_pipeline_returning_a_tuple_of_futures():
    @pipeline
    def returns_tuple():
        a, b = split()
        return b, a, None

    result = returns_tuple()
    assert result == ("seven", 7, None)
    assert isinstance(result, tuple)


def test_return_value_can_be_read_back_from_the_run():
    @pipeline
    def returns_mixed():
        return {"n": make_int(4), "t": (make_str("a"), make_int(5))}

    returned = returns_mixed()
    assert returned == {"n": 4, "t": ("a", 5)}
    assert returns_mixed.last_run.load_output() == returned


# ---- failures -----------------------------------------------------------------------------


def test_failed_step_raises_where_its_value_is_used():
    seen: dict[str, Any] = {}

    @pipeline
    def uses_failure():
        out = explode(3, id="exploder")
        try:
            if out > 0:
                double(1)
        except StepFailedError as error:
            seen["error"] = error
            raise
        double(2)

    with pytest.raises(PipelineRunFailedError) as info:
        uses_failure()

    inner = seen["error"]
    assert inner.invocation_id == "exploder"
    assert "exploder" in str(inner)
    assert isinstance(inner.__cause__, ValueError)

    error = info.value
    assert isinstance(error.__cause__, ValueError)
    assert str(error.__cause__) == "boom 3"
    assert "exploder" in str(error)
    assert "boom 3" in str(error)
    assert error.invocation_id == "exploder"

    run = uses_failure.last_run
    assert error.run_id == run.id
    assert run.status == "failed"
    assert run.failed_step == "exploder"
    assert run.steps["exploder"].status == "failed"
    assert run.steps["exploder"].exception_type == "ValueError"
    assert "double" not in run.steps and "double_2" not in run.steps


def test_failed_step_in_wiring_only_pipeline_fails_the_run():
    @pipeline
    def static_failure():
        return double(explode(1, id="kaboom"))

    with pytest.raises(PipelineRunFailedError) as info:
        static_failure()

    assert isinstance(info.value.__cause__, ValueError)
    assert "kaboom" in str(info.value)
    run = static_failure.last_run
    assert run.status == "failed"
    assert run.failed_step == "kaboom"
    assert "double" not in run.steps  # never started: its input never existed


kept: list[Any] = []


@pipeline
def keeps_a_future() -> int:
    made = make_int(41)
    kept.append(made)
    assert int(made) == 41  # a dynamic run: its future has an outcome
    return made


@pipeline
def uses_a_kept_future(how: str) -> int:
    assert int(make_int(5)) == 5  # this run has its own 'make_int', with another value
    (future,) = kept
    if how == "passed":
        return make_int(future)
    return make_int(int(future) + 1)


def test_a_future_kept_from_another_run_is_refused_as_an_input_but_reads_its_value():
    kept.clear()
    assert keeps_a_future() == 41
    # Its value is the other run's (this run's 'make_int' made 5): read, it is that value.
    assert uses_a_kept_future(how="read") == 42
    # Passed to a step, it would name this run's 'make_int' (it did: the step got 5).
    with pytest.raises(PipelineRunFailedError) as info:
        uses_a_kept_future(how="passed")
    message = str(info.value.__cause__)
    assert "<StepOutput make_int.output> is not a step output of this run of pipeline " in message
    assert "'uses_a_kept_future'" in message
    assert uses_a_kept_future.last_run.status == "failed"


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_future_kept_from_another_run_is_refused_as_a_return_value(dynamic):
    """Returned, it named this run's invocation of the same id: the second run below
    returned 11, its own `make_int`'s value, for a future whose value was 2."""
    returned: list[Any] = []

    @pipeline
    def returns_the_first_runs_future(n: int) -> int:
        made = make_int(n)
        if dynamic:
            made.load()
        returned.append(made)
        return returned[0]

    assert returns_the_first_runs_future(n=2) == 2
    with pytest.raises(PipelineRunFailedError) as info:
        returns_the_first_runs_future(n=11)
    assert str(info.value.__cause__) == (
        "Pipeline 'returns_the_first_runs_future' returned <StepOutput make_int.output>, which "
        "is not a step output of this run (a future kept from another run?); return its value "
        "instead (`.load()` it where it was made)."
    )
    assert returns_the_first_runs_future.last_run.status == "failed"
    assert returns_the_first_runs_future.last_run.snapshot.is_dynamic is dynamic

"""Caching: on by default, keyed by code, parameters, input contents and materializers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from branchwork import pipeline, step
from processes import python_env

# A deque, which enters keys by its type: a module-level list the steps append to would be
# hashed by its items, and change their keys at every run (docs/caching.md).
CALLS: deque[str] = deque()


@step
def numbers(n: int) -> list:
    CALLS.append("numbers")
    return list(range(n))


@step
def total(values: list) -> int:
    CALLS.append("total")
    return sum(values)


@step(enable_cache=False)
def uncached_total(values: list) -> int:
    CALLS.append("uncached_total")
    return sum(values)


@pipeline
def summing(n: int):
    return total(numbers(n))


@pipeline
def summing_uncached_step(n: int):
    return uncached_total(numbers(n))


def statuses(run):
    return {name: str(step_run.status) for name, step_run in run.steps.items()}


def test_second_run_is_served_from_the_cache_without_running_functions():
    CALLS.clear()
    assert summing(n=4) == 6
    first = summing.last_run
    assert summing(n=4) == 6
    second = summing.last_run
    assert list(CALLS) == ["numbers", "total"]
    assert statuses(second) == {"numbers": "cached", "total": "cached"}
    for name in ("numbers", "total"):
        assert second.steps[name].original_step_run_id == first.steps[name].id
        assert second.steps[name].output.id == first.steps[name].output.id
        assert second.steps[name].cache_key == first.steps[name].cache_key


def test_a_different_parameter_misses_the_cache():
    CALLS.clear()
    summing(n=4)
    assert summing(n=5) == 10
    assert statuses(summing.last_run) == {"numbers": "completed", "total": "completed"}
    assert list(CALLS) == ["numbers", "total", "numbers", "total"]


def test_equal_input_content_hits_even_from_a_new_upstream_artifact():
    CALLS.clear()
    summing(n=3)
    summing.with_options(enable_cache=False)(n=3)  # makes new artifacts of equal content
    run = summing.last_run
    assert statuses(run) == {"numbers": "completed", "total": "completed"}
    assert summing(n=3) == 3
    assert statuses(summing.last_run) == {"numbers": "cached", "total": "cached"}


def test_enable_cache_false_per_step_always_runs_that_step():
    CALLS.clear()
    summing_uncached_step(n=2)
    summing_uncached_step(n=2)
    assert statuses(summing_uncached_step.last_run) == {
        "numbers": "cached",
        "uncached_total": "completed",
    }
    assert list(CALLS) == ["numbers", "uncached_total", "uncached_total"]


def test_enable_cache_false_per_pipeline_and_per_call():
    CALLS.clear()
    summing(n=6)
    summing.with_options(enable_cache=False)(n=6)
    assert statuses(summing.last_run) == {"numbers": "completed", "total": "completed"}

    @pipeline(enable_cache=False)
    def never_cached():
        return total(numbers(6))

    never_cached()
    assert statuses(never_cached.last_run) == {"numbers": "completed", "total": "completed"}

    @pipeline
    def per_call():
        return total.with_options(enable_cache=False)(numbers(6))

    per_call()
    assert statuses(per_call.last_run) == {"numbers": "cached", "total": "completed"}


def test_changed_code_misses_the_cache(tmp_path: Path, monkeypatch):
    module = tmp_path / "changing_step.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    results = []
    for factor in (2, 3):
        module.write_text(
            "from branchwork import pipeline, step\n"
            f"@step\ndef scale(x: int) -> int:\n    return x * {factor}\n"
            "@pipeline\ndef scaling():\n    return scale(7)\n"
        )
        namespace: dict = {}
        exec(compile(module.read_text(), str(module), "exec"), namespace)
        results.append((namespace["scaling"](), namespace["scaling"].last_run))
    (first_value, first), (second_value, second) = results
    assert (first_value, second_value) == (14, 21)
    assert second.steps["scale"].status == "completed"
    assert first.steps["scale"].code_hash != second.steps["scale"].code_hash


# ---- what counts as the same parameter ----------------------------------------------------


@step
def kind(x: Any) -> str:
    CALLS.append("kind")
    return type(x).__name__


@pipeline
def kind_of_pair(as_tuple: bool):
    return kind((1, 2) if as_tuple else [1, 2])


def test_a_tuple_and_a_list_argument_are_two_cache_entries():
    CALLS.clear()
    assert kind_of_pair(as_tuple=True) == "tuple"
    assert kind_of_pair(as_tuple=False) == "list"
    assert statuses(kind_of_pair.last_run) == {"kind": "completed"}
    assert (kind_of_pair(as_tuple=True), kind_of_pair(as_tuple=False)) == ("tuple", "list")
    assert statuses(kind_of_pair.last_run) == {"kind": "cached"}
    assert list(CALLS) == ["kind", "kind"]


def test_dicts_with_the_same_entries_in_another_order_share_one_cache_entry():
    @pipeline
    def ab():
        return kind({"a": 1, "b": 2})

    @pipeline
    def ba():
        return kind({"b": 2, "a": 1})

    CALLS.clear()
    ab()
    assert ba() == "dict"
    assert statuses(ba.last_run) == {"kind": "cached"}
    assert list(CALLS) == ["kind"]


def test_one_one_point_zero_and_true_are_three_cache_entries_as_the_step_tells_them_apart():
    """Python says 1 == 1.0 == True, but a step sees their types: a shared entry would answer
    a call with another call's result."""

    @pipeline
    def kinds():
        return [kind(1, id="of_int"), kind(1.0, id="of_float"), kind(True, id="of_bool")]

    CALLS.clear()
    assert kinds() == ["int", "float", "bool"]
    assert kinds() == ["int", "float", "bool"]
    assert set(statuses(kinds.last_run).values()) == {"cached"}
    assert list(CALLS) == ["kind"] * 3


def test_a_rerun_of_a_run_keyed_in_the_older_format_is_a_miss_not_a_new_graph():
    """Stores hold cache keys of the format before this one (plain sha256 hex): a rerun with
    the same parameters runs the steps again instead of stopping as a changed graph."""
    from branchwork.metadata import schema
    from branchwork.metadata.store import get_engine

    CALLS.clear()
    summing(n=4)
    older_key = hashlib.sha256(b"an older key").hexdigest()
    with get_engine().begin() as connection:
        connection.execute(sa.update(schema.step_run).values(cache_key=older_key))
    assert summing(n=4) == 6
    assert statuses(summing.last_run) == {"numbers": "completed", "total": "completed"}
    assert summing(n=4) == 6
    assert statuses(summing.last_run) == {"numbers": "cached", "total": "cached"}


def test_the_same_call_hits_the_cache_in_a_second_python_process(tmp_path: Path):
    script = tmp_path / "nested_parameters.py"
    script.write_text(
        "from branchwork import pipeline, step\n"
        "@step\n"
        "def describe(table: dict, pair: tuple, ratio: float) -> str:\n"
        "    return repr((table, pair, ratio))\n"
        "@pipeline\n"
        "def nested():\n"
        "    return describe({'b': [1, (2, 3)], 'a': {4: None}}, (True, 'x'), 0.5)\n"
        "if __name__ == '__main__':\n"
        "    print(nested(), nested.last_run.steps['describe'].status)\n"
    )
    outputs = []
    for seed in ("1", "2"):  # str hashes differ between the two processes
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    described = "({'b': [1, (2, 3)], 'a': {4: None}}, (True, 'x'), 0.5)"
    assert outputs == [f"{described} completed", f"{described} cached"]


SETS = r"""
from dataclasses import dataclass
from typing import Annotated
from branchwork import pipeline, step

@dataclass
class Vocabulary:
    words: set[str]

@step(enable_cache=False)
def read_words() -> tuple[
    Annotated[set, "words"], Annotated[dict, "index"], Annotated[Vocabulary, "vocabulary"]
]:
    words = {"apple", "banana", "cherry", "date", "elderberry", "fig"}
    return words, {"seen": frozenset(words), "counts": [1, 2]}, Vocabulary(words)

@step
def size(words: set) -> int:
    return len(words)

@step
def describe(index: dict) -> int:
    return len(index["seen"])

@step
def vocabulary_size(vocabulary: Vocabulary) -> int:
    return len(vocabulary.words)

@pipeline
def sets():
    words, index, vocabulary = read_words()
    return size(words), describe(index), vocabulary_size(vocabulary)

downstream = ("size", "describe", "vocabulary_size")
print(sets(), [sets.last_run.steps[name].status.value for name in downstream])
"""


def test_steps_downstream_of_a_set_hit_the_cache_in_another_process(tmp_path: Path):
    script = tmp_path / "sets.py"
    script.write_text(SETS)
    home = tmp_path / "home"
    printed = [
        printed_by(script, home, PYTHONHASHSEED=seed)[-1] for seed in ("1", "2")
    ]  # str hashes, so a set's order, differ between the two processes
    assert printed == [
        "(6, 6, 6) ['completed', 'completed', 'completed']",
        "(6, 6, 6) ['cached', 'cached', 'cached']",
    ]


LIVE_CLASS = """
import warnings
from branchwork import pipeline, step

warnings.simplefilter("ignore")  # stored as cloudpickles, said once per type
FACTOR = 1

class Model:
    def scaled(self):
        return FACTOR

@step
def make() -> Model:
    return Model()

@step
def use(model: Model) -> int:
    return model.scaled()

@pipeline
def sweep():
    return use(make())

print(sweep())
FACTOR = 3  # the next point of a sweep
print(sweep(), Model().scaled())
"""


def test_loading_a_value_of_a_scripts_class_leaves_the_class_as_the_script_has_it(
    tmp_path: Path,
):
    """Unpickling rewrote the script's live class: its methods read the globals of the
    pickle from then on, so the sweep's second point computed with FACTOR = 1 again, and
    even the script's own `Model().scaled()` said 1."""
    script = tmp_path / "sweep.py"
    script.write_text(LIVE_CLASS)
    assert printed_by(script, tmp_path / "home") == ["1", "3 3"]


def printed_by(script: Path, home: Path, **env: str) -> list[str]:
    """The lines `python script` prints, run as a user runs it, on the store in `home`."""
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(home, **env),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


SWEEP = r"""
import importlib, pathlib, sys
sys.path.insert(0, {folder!r})
from branchwork import pipeline, step
import settings

def helper(x):
    return x + 1

@step
def scaled(x: float) -> float:
    return x * settings.SCALE

@step
def helped(x: int) -> int:
    return helper(x)

@step
def offset(x: int) -> int:
    return settings.offset(x)

@pipeline
def sweep():
    return scaled(1.0), helped(1), offset(1)

def show():
    values = list(sweep())
    steps = sweep.last_run.steps
    print(values, [str(steps[name].status) for name in ("scaled", "helped", "offset")])

show()
show()
settings.SCALE = 3.0  # a sweep sets a module's global between two runs
show()
def helper(x):  # a helper redefined, as a notebook cell or a script may
    return x + 100
show()
edited = "SCALE = 1.0\ndef offset(x):\n    return x - 1\n"
pathlib.Path({folder!r}, "settings.py").write_text(edited)
importlib.reload(settings)  # an edited module reloaded (%autoreload)
show()
"""


def test_a_sweep_in_one_process_misses_where_a_global_helper_or_module_changed(tmp_path: Path):
    """The code a step reaches and the values it reads are hashed again for every run the
    process starts: a value changed in between is never served the result of the old one."""
    (tmp_path / "settings.py").write_text("SCALE = 1.0\ndef offset(x):\n    return x + 1\n")
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP.format(folder=str(tmp_path)))
    assert printed_by(script, tmp_path / "home") == [
        "[1.0, 2, 2] ['completed', 'completed', 'completed']",
        "[1.0, 2, 2] ['cached', 'cached', 'cached']",
        "[3.0, 2, 2] ['completed', 'cached', 'cached']",
        "[3.0, 101, 2] ['cached', 'completed', 'cached']",
        "[1.0, 101, 0] ['cached', 'cached', 'completed']",
    ]


HIDDEN = r"""
import argparse, enum, functools, sys
from dataclasses import dataclass
import numpy as np
from branchwork import pipeline, step

class Scaler:
    OFFSET = 0
    def apply(self, x):
        return x * 2 + self.OFFSET

@dataclass
class Config:
    op: Scaler

MODELS = {{"small": Scaler()}}  # instances held in a registry and in a config's field
CFG = Config(op=Scaler())

def make_scaler(k):
    def scale(x):
        return x * k
    return scale

double, triple = make_scaler(2), make_scaler(3)  # two closures of one name
K = 3
add_k = lambda x, k=K: x + k  # a lambda's default, beside another lambda's
add_one = lambda x, k=1: x + k
FACTOR = 2

@functools.singledispatch
def times(x):
    raise TypeError(x)

@times.register
def _(x: int):
    return x * FACTOR

class Model:
    @functools.cached_property
    def factor(self):
        return FACTOR

ARGS = argparse.ArgumentParser().parse_args(sys.argv[1:])  # no options: an empty namespace

class Split(enum.IntEnum):
    TRAIN = 0

@step
def registry(x: int) -> int:
    return MODELS["small"].apply(x) + CFG.op.apply(x)

@step
def closures(x: int) -> int:
    return triple(x) + add_k(x) + double(0) + add_one(0)

@step
def dispatched(x: int) -> int:
    return times(x) + Model().factor

@step
def configured(x: int) -> str:
    return repr(vars(ARGS))

@step
def received(value) -> str:
    return type(value).__name__

@pipeline
def hidden():
    return [
        registry(1), closures(1), dispatched(1), configured(1),
        received(0), received(Split.TRAIN), received(1.0), received(np.float64(1.0)),
    ]

def show(label):
    print(label, hidden(), sorted({{str(s.status) for s in hidden.last_run.steps.values()}}))

show("first")
show("again")
Scaler.OFFSET = 100
triple = make_scaler(30)
add_k = lambda x, k=30: x + k
FACTOR = 5
ARGS.lr = 0.5
show("changed")
"""


def test_what_a_step_reaches_through_containers_closures_and_dispatch_is_keyed(tmp_path: Path):
    """Each was a stale hit a new user found: an instance's class held in a registry or a
    config's field, the second of two closures of one factory (or lambda defaults), the
    implementations behind `singledispatch`, a `cached_property`'s body, an argparse
    namespace; and arguments equal to plain values (an IntEnum, a numpy.float64), which the
    step receives as their own types."""
    script = tmp_path / "hidden.py"
    script.write_text(HIDDEN.format())
    received = "'int', 'Split', 'float', 'float64'"
    assert printed_by(script, tmp_path / "home") == [
        f"first [4, 8, 4, '{{}}', {received}] ['completed']",
        f"again [4, 8, 4, '{{}}', {received}] ['cached']",
        f"changed [204, 62, 10, \"{{'lr': 0.5}}\", {received}] ['cached', 'completed']",
    ]


MODELS = """\
class Model:
    def predict(self, x):
        return x * 2
"""

SCORING = r"""
import pickle
from branchwork import ExternalArtifact, FileInput, pipeline, step

@step
def load_model(path: FileInput):  # unpickling imports `models`, when it runs
    with open(path, "rb") as file:
        return pickle.load(file)

@step
def score(model, x: int) -> int:  # not annotated: the class is known from the input's record
    return model.predict(x)

@pipeline
def from_a_file():
    return score(load_model("model.pkl"), 3)

@pipeline
def from_a_version():
    return score(ExternalArtifact("model"), 5)

for scoring in (from_a_file, from_a_version):
    value = scoring()
    print(value, [str(step_run.status) for step_run in scoring.last_run.steps.values()])
"""


def test_a_changed_class_of_an_input_misses_though_nothing_imported_its_module(tmp_path: Path):
    """`score` takes a `models.Model` from a step that was a cache hit (so `models` was never
    imported where its key was made), or as an ExternalArtifact: both left the class out of
    the key, and served 6 after `predict` changed."""
    (tmp_path / "models.py").write_text(MODELS)
    maker = tmp_path / "make_model.py"
    maker.write_text(
        "import pickle\n"
        "from typing import Annotated\n"
        "from branchwork import pipeline, step\n"
        "from models import Model\n"
        "pickle.dump(Model(), open('model.pkl', 'wb'))\n"
        "@step\n"
        "def make() -> Annotated[Model, 'model']:\n"
        "    return Model()\n"
        "@pipeline\n"
        "def produce():\n"
        "    return make()\n"
        "produce()\n"
    )
    script = tmp_path / "scoring.py"
    script.write_text(SCORING)
    home = tmp_path / "home"

    def run(path: Path) -> list[str]:
        done = subprocess.run(
            [sys.executable, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=python_env(home, BRANCHWORK_ALLOW_PICKLE="1", PYTHONDONTWRITEBYTECODE="1"),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    run(maker)
    assert run(script) == ["6 ['completed', 'completed']", "10 ['completed']"]
    assert run(script) == ["6 ['cached', 'cached']", "10 ['cached']"]
    (tmp_path / "models.py").write_text(MODELS.replace("x * 2", "x * 3"))
    assert run(script) == ["9 ['cached', 'completed']", "15 ['completed']"]
    assert run(script) == ["9 ['cached', 'cached']", "15 ['cached']"]


AUTORELOAD = r"""
import importlib, pathlib, sys
sys.path.insert(0, {folder!r})
from branchwork import pipeline, step
import helpers
from helpers import Scaler, norm

@step
def normed(x: int) -> int:
    return norm(x)

@step
def scaled(x: int) -> int:
    return Scaler().scale(x)

@pipeline
def reloaded():
    return normed(1), scaled(1)

def show():
    values = list(reloaded())
    steps = reloaded.last_run.steps
    print(values, [str(steps[name].status) for name in ("normed", "scaled")])

show()
# what IPython's %autoreload does: reload the edited module, then put its new code into the
# old function and class objects, which `from helpers import ...` names still hold
edited = {edited!r}
pathlib.Path({folder!r}, "helpers.py").write_text(edited)
new = importlib.reload(helpers)
norm.__code__ = new.norm.__code__
Scaler.scale.__code__ = new.Scaler.scale.__code__
show()
"""


HELPERS = """\
def norm(x):
    return x + 1


class Scaler:
    def scale(self, x):
        return x * 2
"""


def test_code_put_into_old_function_objects_as_autoreload_does_misses(tmp_path: Path):
    (tmp_path / "helpers.py").write_text(HELPERS)
    script = tmp_path / "autoreload.py"
    edited = HELPERS.replace("x + 1", "x + 100").replace("x * 2", "x * 7")
    script.write_text(AUTORELOAD.format(folder=str(tmp_path), edited=edited))
    assert printed_by(script, tmp_path / "home", PYTHONDONTWRITEBYTECODE="1") == [
        "[2, 2] ['completed', 'completed']",
        "[101, 7] ['completed', 'completed']",
    ]


def launched(folder: Path, commands: list[list[str]]) -> list[str]:
    """What each command printed, run one after the other in `folder` on one store there;
    each must succeed."""
    outputs = []
    for command in commands:
        done = subprocess.run(
            command,
            cwd=folder,
            env=python_env(folder / "home"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    return outputs


def test_a_script_shares_its_cache_between_python_and_branchwork_run(tmp_path: Path):
    """`python pipe.py` and `branchwork run pipe.py:p` run one script: each reuses what the
    other cached, and loads it, though the value is of a class the script defines (stored
    as `__main__.Res`, found where the CLI loaded the script). They used to miss each
    other's entries, saying the code had changed; a value served across would not load."""
    (tmp_path / "pipe.py").write_text(
        "from dataclasses import dataclass\n"
        "from branchwork import pipeline, step\n"
        "@dataclass\n"
        "class Res:\n"
        "    total: int\n"
        "@step\n"
        "def make(i: int):\n"
        "    return Res(i)\n"
        "@step(enable_cache=False)\n"
        "def use(res) -> int:\n"
        "    return res.total * 10\n"
        "@pipeline\n"
        "def p():\n"
        "    return use(make(4))\n"
        "if __name__ == '__main__':\n"
        "    print(p(), p.last_run.steps['make'].status)\n"
    )
    branchwork = str(Path(sys.executable).parent / "branchwork")
    commands = [
        [branchwork, "run", "pipe.py:p", "--no-progress"],
        [sys.executable, "pipe.py"],
        [branchwork, "run", "pipe.py:p", "--no-progress"],
        [branchwork, "runs", "show", "latest", "-o", "json"],
    ]
    outputs = launched(tmp_path, commands)
    assert outputs[0].splitlines()[1:] == ["Status: completed", "Result: 40"]
    assert outputs[1] == "40 cached\n"
    assert outputs[2].splitlines()[1:] == ["Status: completed", "Result: 40"]
    shown = json.loads(outputs[3])
    assert [(s["step"], s["status"]) for s in shown["steps"]] == [
        ("make", "cached"),
        ("use", "completed"),
    ]


# ---- values with int keys across processes -------------------------------------------------


@step(runtime="isolated")
def key_types(table: dict) -> list:
    return [[type(key).__name__, value] for key, value in table.items()]


@pipeline(enable_cache=False)
def int_keyed():
    return {10: key_types({1: "one", 2.5: "two and a half"}), 20: key_types({3: "three"})}


def test_int_keys_survive_as_an_isolated_step_argument_and_a_pipeline_return_value():
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        returned = int_keyed()
    assert returned == {10: [["int", "one"], ["float", "two and a half"]], 20: [["int", "three"]]}
    assert list(returned) == [10, 20]
    assert int_keyed.last_run.load_output() == returned


def test_a_scripts_own_materializer_serves_python_and_branchwork_run_alike(tmp_path: Path):
    """A value written by a materializer the script defines, cached by one launch, loads in
    the other: the materializer is recorded as `__main__:...` wherever the script ran (the
    CLI run failed: 'Cannot import materializer ...')."""
    (tmp_path / "pipe.py").write_text(
        "from branchwork import pipeline, step\n"
        "from branchwork.materializers import BaseMaterializer, register_materializer\n"
        "class Document:\n"
        "    def __init__(self, text):\n"
        "        self.text = text\n"
        "class DocumentMaterializer(BaseMaterializer):\n"
        "    ASSOCIATED_TYPES = (Document,)\n"
        "    def save(self, data):\n"
        "        self._write_bytes('document.txt', data.text.encode())\n"
        "    def load(self, data_type):\n"
        "        return Document(self._read_bytes('document.txt').decode())\n"
        "register_materializer(DocumentMaterializer)\n"
        "@step\n"
        "def make() -> Document:\n"
        "    return Document('hello')\n"
        "@step(enable_cache=False)\n"
        "def shout(document: Document) -> str:\n"
        "    return document.text.upper()\n"
        "@pipeline\n"
        "def p():\n"
        "    return shout(make())\n"
        "if __name__ == '__main__':\n"
        "    print(p(), p.last_run.steps['make'].status)\n"
    )
    branchwork = str(Path(sys.executable).parent / "branchwork")
    outputs = launched(
        tmp_path,
        [
            [sys.executable, "pipe.py"],
            [branchwork, "run", "pipe.py:p", "--no-progress"],
            [sys.executable, "pipe.py"],
        ],
    )
    assert outputs[0] == "HELLO completed\n"
    assert outputs[1].splitlines()[1:] == ["Status: completed", "Result: 'HELLO'"]
    assert outputs[2] == "HELLO cached\n"


FILES_GONE = r"""
import shutil
from branchwork import pipeline, step

@step
def train() -> str:
    return "w" * 5000  # over 1 KiB: a file in the artifact store, not a row

@step
def evaluate(model: str, k: int) -> int:
    return len(model) * k

@pipeline
def static(k: int = 1):
    return evaluate(train(), k)

@pipeline
def loads_it():
    return evaluate(train(), len(train().load()))

@pipeline
def returns_it():
    return train()

def attempt(call, **parameters):
    try:
        value = call(**parameters)
        value = len(value) if isinstance(value, str) else value
        print(value, [str(step.status) for step in call.last_run.steps.values()])
    except Exception as error:
        print(type(error).__name__, str(error).split(": ")[0], str(error)[-85:])

def delete_files(run):  # of every version of train's output the run made or reused
    for invocation, step_run in run.steps.items():
        if invocation.startswith("train"):
            shutil.rmtree(step_run.output.uri, ignore_errors=True)

print(static(k=1))
delete_files(static.last_run)
for k in (1, 2, 2):  # still served, needed (fails), recomputed
    attempt(static, k=k)
delete_files(static.last_run)
attempt(loads_it)  # the body reads the cached value
attempt(loads_it)
delete_files(loads_it.last_run)
attempt(returns_it)  # the value a call returns
attempt(returns_it)
"""


def test_a_cached_result_whose_files_are_gone_is_no_longer_served(tmp_path):
    """A version's files deleted from the artifact store: the run that needs them fails once,
    saying so, and the next run computes them again (every later run failed the same way)."""
    script = tmp_path / "files_gone.py"
    script.write_text(FILES_GONE)
    lines = printed_by(script, tmp_path / "home")
    assert lines[0] == "5000"
    assert lines[1] == "5000 ['cached', 'cached']"  # nothing loads the missing files
    assert lines[2].startswith("PipelineRunFailedError Pipeline 'static' run ")
    assert lines[2].endswith("made it are no longer served: the next run computes them again.")
    assert lines[3] == "10000 ['completed', 'completed']"
    assert lines[4].startswith("PipelineRunFailedError Pipeline 'loads_it' run ")
    assert lines[4].endswith("no longer served: the next run computes them again.")
    assert lines[5] == "25000000 ['completed', 'completed', 'completed']"
    assert lines[6].startswith("MissingArtifactError The artifact at ")
    assert lines[7] == "5000 ['completed']"

"""Code fingerprints follow the user's code a step reaches, and nothing else.

Each fingerprint is taken in a fresh Python process, as a rerun takes it, so that edits of
the project's files between two fingerprints are seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from branchwork import step
from branchwork.graph import code_hash
from branchwork.graph.code_hash import fingerprint, library_versions
from branchwork.steps.step import Step
from processes import python_env

HELPERS = '''\
import functools

SCALE = 2


def timed(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def normalize(values):
    """Scale values to their maximum."""
    return [v / max(values) * SCALE for v in values]


@timed
def shift(x):
    return x + 1


def clip(x):
    return min(x, 10)


def unused():
    return 1


def ping(n):
    return pong(n - 1) if n > 0 else 0


def pong(n):
    return ping(n - 1) if n > 0 else 1


class Base:
    def offset(self):
        return 0


class Scaler(Base):
    def transform(self, values):
        return [v * 2 + self.offset() for v in values]
'''

STEPS = """\
import json
from json import dumps

import numpy as np

import helpers
from branchwork import step
from helpers import Scaler, shift

THRESHOLD = 0.5


@step
def train(values: list) -> float:
    # keep the large ones
    scaled = Scaler().transform(helpers.normalize(values))
    kept = [shift(x) for x in scaled if x > THRESHOLD]
    clipped = list(map(lambda x: helpers.clip(x), kept))
    return float(np.mean(clipped)) + len(json.dumps(kept)) + len(dumps(kept)) + helpers.ping(3)
"""

PRINT_FINGERPRINT = """
import importlib, json, sys
from branchwork.graph.code_hash import fingerprint
module, _, name = sys.argv[1].partition(":")
found = fingerprint(getattr(importlib.import_module(module), name))
print(json.dumps({"digest": found.digest, "parts": found.parts}))
"""


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def fingerprint_in_new_process(project: Path, target: str, hash_seed: str = "0") -> dict[str, Any]:
    """{"digest": ..., "parts": {...}} of `target` ("module:name") in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", PRINT_FINGERPRINT, target],
        cwd=project,
        env=python_env(
            project / "home",
            PYTHONPATH=str(project),
            PYTHONHASHSEED=hash_seed,
            PYTHONDONTWRITEBYTECODE="1",  # edits within one second keep their size: no stale .pyc
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project", {"helpers.py": HELPERS, "flows/steps.py": STEPS})


def edit(project: Path, name: str, old: str, new: str) -> None:
    path = project / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new))


def changed_parts(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    names = set(before["parts"]) | set(after["parts"])
    return {name for name in names if before["parts"].get(name) != after["parts"].get(name)}


def test_the_parts_are_the_users_code_the_step_reaches_and_nothing_installed(project: Path):
    found = fingerprint_in_new_process(project, "flows.steps:train")
    assert set(found["parts"]) == {
        "flows.steps:train",
        "flows.steps:THRESHOLD",
        "helpers:normalize",
        "helpers:SCALE",  # read by normalize
        "helpers:Scaler",
        "helpers:Base",  # Scaler's base class
        "helpers:shift",
        "helpers:timed",  # shift's decorator
        "helpers:clip",  # called in a lambda
        "helpers:ping",
        "helpers:pong",  # mutual recursion ends
    }  # no json.dumps, numpy.mean, functools.wraps or branchwork.step, no unused()


@pytest.mark.parametrize(
    ("file", "old", "new", "changed"),
    [
        ("helpers.py", "/ max(values) * SCALE", "/ sum(values) * SCALE", "helpers:normalize"),
        ("helpers.py", "SCALE = 2", "SCALE = 3", "helpers:SCALE"),
        ("flows/steps.py", "THRESHOLD = 0.5", "THRESHOLD = 0.25", "flows.steps:THRESHOLD"),
        ("helpers.py", "return [v * 2 + self", "return [v * 4 + self", "helpers:Scaler"),
        (
            "helpers.py",
            "def offset(self):\n        return 0",
            "def offset(self):\n        return 1",
            "helpers:Base",
        ),
        ("helpers.py", "return func(*args, **kwargs)", "return func(*args)", "helpers:timed"),
        ("helpers.py", "return min(x, 10)", "return min(x, 20)", "helpers:clip"),
        ("helpers.py", "if n > 0 else 1", "if n > 1 else 1", "helpers:pong"),
        ("flows/steps.py", "x > THRESHOLD]", "x >= THRESHOLD]", "flows.steps:train"),
    ],
)
def test_an_edit_of_behaviour_changes_the_digest_and_names_the_changed_part(
    project: Path, file: str, old: str, new: str, changed: str
):
    before = fingerprint_in_new_process(project, "flows.steps:train")
    edit(project, file, old, new)
    after = fingerprint_in_new_process(project, "flows.steps:train")
    assert after["digest"] != before["digest"]
    assert changed_parts(before, after) == {changed}


def test_comments_docstrings_formatting_and_unused_code_change_nothing(project: Path):
    before = fingerprint_in_new_process(project, "flows.steps:train")
    edit(project, "flows/steps.py", "# keep the large ones", "# keep only the large ones")
    edit(
        project,
        "flows/steps.py",
        "    scaled = Scaler()",
        '    """Trains."""\n    scaled = Scaler()',
    )
    edit(project, "flows/steps.py", "if x > THRESHOLD]", "if x>THRESHOLD  # over it\n    ]")
    edit(project, "helpers.py", "Scale values to their maximum.", "Divide by the maximum.")
    edit(project, "helpers.py", "return min(x, 10)", "return min(\n        x,\n        10,\n    )")
    edit(project, "helpers.py", "def unused():\n    return 1", "def unused():\n    return 2")
    edit(project, "helpers.py", "class Base:", "class Base:\n    # a base\n")
    after = fingerprint_in_new_process(project, "flows.steps:train")
    assert changed_parts(before, after) == set()
    assert after["digest"] == before["digest"]


def test_a_function_without_source_gets_the_same_digest_in_every_process(tmp_path: Path):
    project = write_project(
        tmp_path / "project",
        {
            "helpers.py": HELPERS,
            "made.py": "import helpers\n"
            "LABELS = frozenset({'low', 'high', 'mid'})\n"
            "train = eval('lambda values: [helpers.normalize(values), sorted(LABELS)]')\n",
        },
    )
    digests = {fingerprint_in_new_process(project, "made:train", seed)["digest"] for seed in "123"}
    assert len(digests) == 1  # sets of strs iterate in another order in each process
    found = fingerprint_in_new_process(project, "made:train")
    assert set(found["parts"]) == {
        "made:<lambda>",
        "made:LABELS",
        "helpers:normalize",
        "helpers:SCALE",
    }
    edit(project, "made.py", "'low', ", "")
    assert changed_parts(found, fingerprint_in_new_process(project, "made:train")) == {
        "made:LABELS"
    }


def test_a_step_of_installed_code_is_keyed_by_that_function_alone():
    """Nothing of a library is walked, but a step must still tell its functions apart."""
    dumps, loads = fingerprint(json.dumps), fingerprint(json.loads)
    assert set(dumps.parts) == {"json:dumps"}
    assert dumps.digest != loads.digest


def test_a_value_no_json_can_hold_enters_by_its_type_and_never_breaks_the_key(tmp_path: Path):
    project = write_project(
        tmp_path / "project",
        {
            "odd.py": "import threading\n"
            "LOCK = threading.Lock()\n"
            "LOOP = []\n"
            "LOOP.append(LOOP)\n"
            "def train():\n"
            "    with LOCK:\n"
            "        return len(LOOP)\n"
        },
    )
    found = fingerprint_in_new_process(project, "odd:train")
    again = fingerprint_in_new_process(project, "odd:train", hash_seed="7")
    assert set(found["parts"]) == {"odd:train", "odd:LOCK", "odd:LOOP"}
    assert found == again


CONFIGS = """\
import enum
import logging
from dataclasses import dataclass, field

import pydantic


@dataclass
class TrainConfig:
    lr: float
    layers: list = field(default_factory=lambda: [64, 64])


class Settings(pydantic.BaseModel):
    batch: int = 32


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


class Plain:
    def __init__(self, depth):
        self.depth = depth


class Slotted:
    __slots__ = ("width",)

    def __init__(self, width):
        self.width = width


CFG = TrainConfig(lr=0.1)
SETTINGS = Settings()
MODE = Mode.FAST
PLAIN = Plain(3)
SLOTTED = Slotted(5)
ALL = [TrainConfig(lr=0.5), Mode.SLOW]
LOG = logging.getLogger("configs")


def train():
    LOG.info("training")
    return CFG.lr, SETTINGS.batch, MODE, PLAIN.depth, SLOTTED.width, ALL
"""


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("TrainConfig(lr=0.1)", "TrainConfig(lr=0.2)", "configs:CFG"),
        ("Settings()", "Settings(batch=64)", "configs:SETTINGS"),
        ("MODE = Mode.FAST", "MODE = Mode.SLOW", "configs:MODE"),
        ("Plain(3)", "Plain(4)", "configs:PLAIN"),
        ("Slotted(5)", "Slotted(6)", "configs:SLOTTED"),
        ("TrainConfig(lr=0.5), Mode.SLOW", "TrainConfig(lr=0.5), Mode.FAST", "configs:ALL"),
    ],
)
def test_config_objects_of_the_users_classes_are_keyed_by_their_values(
    tmp_path: Path, old: str, new: str, changed: str
):
    """`CFG = TrainConfig(lr=0.1)` edited to 0.2 must not serve the 0.1 result; a library's
    object (the logger) enters by its type alone, the same in every process."""
    project = write_project(tmp_path / "project", {"configs.py": CONFIGS})
    before = fingerprint_in_new_process(project, "configs:train")
    assert before == fingerprint_in_new_process(project, "configs:train", hash_seed="9")
    edit(project, "configs.py", old, new)
    after = fingerprint_in_new_process(project, "configs:train")
    assert changed_parts(before, after) == {changed}


VALUES = """\
import datetime
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pydantic

SCALE = 3
EXPONENT = 2


@dataclass
class Config:
    data: Path
    since: datetime.date


class Paths(pydantic.BaseModel):
    root: Path = Path("data")


class Berlin(datetime.tzinfo):  # no repr of its own: its default repr holds an address
    def utcoffset(self, dt):
        return datetime.timedelta(hours=1)


CUTOFF = datetime.datetime(2024, 1, 1, tzinfo=Berlin())
CFG = Config(Path("data/v1.csv"), datetime.date(2026, 1, 1))
PATHS = Paths()
PATTERN = re.compile("a+", re.I)
LIMIT = Decimal("0.10")
EVERY = datetime.timedelta(hours=6)


def scaled(x, k=SCALE, *, power=EXPONENT, verbose=False):
    return (x * k) ** power


def squared(x, _memo={}):  # a literal default, which calls fill: in the source, not a value
    return _memo.setdefault(x, x * x)


class Model:
    def predict(self, x, k=SCALE):
        return x * k


MODEL = Model()


def train():
    return scaled(1), squared(2), MODEL.predict(1), CFG, PATHS, PATTERN, LIMIT, EVERY, CUTOFF
"""


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        # a helper's (or method's) default reads the constant where it is defined
        (
            "SCALE = 3",
            "SCALE = 4",
            {"values:scaled.<default>.k", "values:Model.predict.<default>.k"},
        ),
        ("EXPONENT = 2", "EXPONENT = 3", {"values:scaled.<default>.power"}),
        ('Path("data/v1.csv")', 'Path("data/v2.csv")', {"values:CFG"}),
        ("date(2026, 1, 1))", "date(2026, 1, 2))", {"values:CFG"}),
        ("PATHS = Paths()", 'PATHS = Paths(root=Path("data2"))', {"values:PATHS"}),
        ('re.compile("a+", re.I)', 're.compile("a+")', {"values:PATTERN"}),
        ('Decimal("0.10")', 'Decimal("0.1")', {"values:LIMIT"}),
        ("hours=6", "hours=7", {"values:EVERY"}),
        ("hours=1", "hours=2", {"values:CUTOFF"}),
    ],
)
def test_defaults_and_standard_library_values_are_keyed_by_their_values(
    tmp_path: Path, old: str, new: str, changed: set[str]
):
    """Each was keyed by its type alone (or not at all), and an edit served a stale result.
    Literal defaults are in the source: no part of their own."""
    project = write_project(tmp_path / "project", {"values.py": VALUES})
    before = fingerprint_in_new_process(project, "values:train")
    defaults = sorted(name for name in before["parts"] if "<default>" in name)
    assert defaults == [
        "values:Model.predict.<default>.k",
        "values:scaled.<default>.k",
        "values:scaled.<default>.power",
    ]
    assert before == fingerprint_in_new_process(project, "values:train", hash_seed="9")
    edit(project, "values.py", old, new)
    after = fingerprint_in_new_process(project, "values:train")
    assert changed_parts(before, after) == changed


DATA = """\
import numpy as np
import pandas as pd

WEIGHTS = np.array([1.0, 2.0, 3.0])
TABLE = pd.DataFrame({"v": [10, 20], "w": ["a", "b"]})
RATES = pd.Series([0.1, 0.2], name="rate")
CELLS = pd.DataFrame({"tags": [["x"], ["y"]]})
OBJECTS = np.array([{"a": 1}], dtype=object)
MASKED = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
RECORDS = np.array([(1, 2.0)], dtype=[("a", "<i8"), ("b", "<f8")])


def score():
    return WEIGHTS.sum(), TABLE["v"].sum(), RATES.mean(), len(CELLS), OBJECTS, MASKED, RECORDS
"""


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("[1.0, 2.0, 3.0]", "[1.0, 2.0, 4.0]", {"data:WEIGHTS"}),
        ("np.array([1.0, 2.0, 3.0])", "np.array([1, 2, 3])", {"data:WEIGHTS"}),
        ('"v": [10, 20]', '"v": [11, 20]', {"data:TABLE"}),
        ('"w": ["a", "b"]', '"x": ["a", "b"]', {"data:TABLE"}),
        ('name="rate"', 'name="rates"', {"data:RATES"}),
        ('[["x"], ["y"]]', '[["x"], ["z"]]', set()),  # lists in cells: by type, as before
        ("mask=[0, 1, 0]", "mask=[0, 0, 1]", {"data:MASKED"}),
        ('("b", "<f8")', '("c", "<f8")', {"data:RECORDS"}),  # the same bytes, renamed
    ],
)
def test_numpy_arrays_and_pandas_objects_in_globals_are_keyed_by_their_contents(
    tmp_path: Path, old: str, new: str, changed: set[str]
):
    """A lookup table or weights in a module global are data: an edited one was served the
    old result, as its type alone entered the key."""
    project = write_project(tmp_path / "project", {"data.py": DATA})
    before = fingerprint_in_new_process(project, "data:score")
    assert before == fingerprint_in_new_process(project, "data:score", hash_seed="5")
    edit(project, "data.py", old, new)
    assert changed_parts(before, fingerprint_in_new_process(project, "data:score")) == changed


HIDDEN = """\
import argparse
import functools
from dataclasses import dataclass

import pandas as pd


class Scaler:
    def apply(self, x):
        return x * 3


@dataclass
class Config:
    op: Scaler


MODELS = {"small": Scaler()}
CFG = Config(op=Scaler())
FACTOR = 2
ARGS = argparse.Namespace(lr=0.1)
TABLE = pd.DataFrame({"v": [1]}, index=pd.Index([0], name="row"))


@functools.singledispatch
def times(x):
    raise TypeError(x)


@times.register
def _(x: int):
    return x * 4


class Model:
    @functools.cached_property
    def factor(self):
        return FACTOR


def from_registry(x):
    return MODELS["small"].apply(x)


def from_config(x):
    return CFG.op.apply(x)


def dispatched(x):
    return times(x)


def cached(x):
    return Model().factor


def configured():
    return ARGS.lr


def tabled():
    return TABLE
"""


@pytest.mark.parametrize(
    ("target", "old", "new", "changed"),
    [
        ("hidden:from_registry", "x * 3", "x * 5", "hidden:Scaler"),
        ("hidden:from_config", "x * 3", "x * 5", "hidden:Scaler"),
        ("hidden:dispatched", "x * 4", "x * 6", "hidden:_"),
        ("hidden:cached", "FACTOR = 2", "FACTOR = 3", "hidden:FACTOR"),
        ("hidden:configured", "lr=0.1", "lr=0.5", "hidden:ARGS"),
        ("hidden:tabled", 'name="row"', 'name="rows"', "hidden:TABLE"),
    ],
)
def test_code_and_values_reached_through_instances_dispatch_and_namespaces_are_keyed(
    tmp_path: Path, target: str, old: str, new: str, changed: str
):
    """Each edit was a stale hit: a class whose instances sit in a registry or a config's
    field, a `singledispatch` implementation, a `cached_property`'s body, an argparse
    namespace, a DataFrame's index name."""
    project = write_project(tmp_path / "project", {"hidden.py": HIDDEN})
    before = fingerprint_in_new_process(project, target)
    assert before == fingerprint_in_new_process(project, target, hash_seed="3")
    edit(project, "hidden.py", old, new)
    assert changed in changed_parts(before, fingerprint_in_new_process(project, target))


def test_each_of_two_closures_of_one_factory_enters_the_key():
    """Both hold a cell `scale.<closure>.k`: only the first was kept."""

    def make(k: int) -> Any:
        def scale(x: int) -> int:
            return x * k

        return scale

    def using(k: int) -> Any:
        double, other = make(2), make(k)

        def use(x: int) -> int:
            return double(x) + other(x)

        return use

    assert fingerprint(using(3)).digest != fingerprint(using(30)).digest
    assert fingerprint(using(3)).digest == fingerprint(using(3)).digest


def double(x: int) -> int:
    return 2 * x


def test_the_steps_code_hash_is_its_fingerprints_digest_computed_once():
    @step
    def doubling(x: int) -> int:
        return double(x)

    found = fingerprint(doubling)
    assert doubling.code_hash == found.digest
    assert fingerprint(doubling.func) is found
    assert {name.partition(":")[2] for name in found.parts} == {"double", doubling.__qualname__}


def test_steps_made_by_one_factory_with_other_values_have_other_digests():
    """The old key hashed the function's source alone: both steps shared one cache entry,
    and the second got the first one's result."""

    def make(factor: int) -> Step[[int], int]:
        @step(name=f"times_{factor}")
        def times(x: int) -> int:
            return x * factor

        return times

    twice, thrice = make(2), make(3)
    assert twice.code_hash != thrice.code_hash
    assert twice.code_hash == make(2).code_hash


def test_a_walk_longer_than_its_bound_stops_at_the_nearest_pieces_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(code_hash, "MAX_PIECES", 10)
    namespace: dict[str, Any] = {"__name__": "chain"}
    exec("".join(f"def f{i}(x):\n    return f{i + 1}(x)\n" for i in range(30)), namespace)
    found = fingerprint(namespace["f0"])
    assert list(found.parts) == [
        *(f"chain:f{i}" for i in range(10)),
        "<more pieces than MAX_PIECES>",
    ]
    assert "The cache key of f0 covers only the first 10 pieces" in caplog.text


def test_library_versions_by_distribution_or_import_name():
    import pytest as pytest_module
    import xdist

    assert library_versions(["pytest", "xdist", "no-such-distribution-here"]) == {
        "pytest": pytest_module.__version__,
        "xdist": xdist.__version__,
        "no-such-distribution-here": "not installed",
    }


# ---- end to end: a rerun in a new process ---------------------------------------------------

SCRIPT = """\
import helpers
from branchwork import pipeline, step


@step
def scale(values: list) -> list:
    # scale them
    return helpers.normalize(values)


@pipeline
def scaling():
    return scale([1, 2, 4])


if __name__ == "__main__":
    print(scaling(), scaling.last_run.steps["scale"].status)
"""


def run_script(project: Path, home: Path) -> str:
    done = subprocess.run(
        [sys.executable, "script.py"],
        cwd=project,
        env=python_env(home, PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_rerun_recomputes_after_a_helper_changed_and_not_after_a_comment(
    tmp_path: Path, branchwork_home: Path
):
    project = write_project(tmp_path / "project", {"helpers.py": HELPERS, "script.py": SCRIPT})
    by_max, by_sum = [v / 4 * 2 for v in (1, 2, 4)], [v / 7 * 2 for v in (1, 2, 4)]
    assert run_script(project, branchwork_home) == f"{by_max} completed"
    assert run_script(project, branchwork_home) == f"{by_max} cached"
    edit(project, "helpers.py", "/ max(values) * SCALE", "/ sum(values) * SCALE")
    assert run_script(project, branchwork_home) == f"{by_sum} completed"
    edit(project, "script.py", "# scale them", "# scale them by their sum")
    edit(project, "helpers.py", "Scale values to their maximum.", "Scale values to their sum.")
    assert run_script(project, branchwork_home) == f"{by_sum} cached"


REGISTRY_STEPS = """\
import models
from branchwork import step

MODELS = {"small": models.build_small, "nested": [(models.Big,)]}
FAR = [("first", [models.build_small])] + [("padding", [i]) for i in range(20_000)]
HANDLERS = {lambda x: x + 1, lambda x: x * 2, lambda x: x - 3}  # numbered in a fixed order


@step
def dispatch(x: int) -> int:
    return MODELS["small"](x)


@step
def far(x: int) -> int:
    return FAR[0][1][0](x)


@step
def handled(x: int) -> int:
    return sum(handle(x) for handle in HANDLERS)


@step
def lazy(x: int) -> int:
    import json

    from features import feature

    return feature(x) + len(json.dumps(x))


@step
def lazy_module(x: int) -> int:
    import features

    return features.feature(x)
"""
LAZY_PROJECT = {
    "registry.py": REGISTRY_STEPS,
    "models.py": "def build_small(x):\n    return x + 1\n\n\nclass Big:\n    size = 1\n",
    "features.py": "from basics import base\n\n\ndef feature(x):\n    return base(x) + 1\n",
    "basics.py": "def base(x):\n    return x\n",
}


@pytest.mark.parametrize(
    ("target", "file", "old", "new", "changed"),
    [
        ("registry:dispatch", "models.py", "x + 1", "x + 2", "models:build_small"),
        ("registry:dispatch", "models.py", "size = 1", "size = 2", "models:Big"),
        ("registry:far", "models.py", "x + 1", "x + 2", "models:build_small"),
        ("registry:lazy", "features.py", "base(x) + 1", "base(x) + 2", "features:feature"),
        ("registry:lazy", "basics.py", "return x", "return -x", "basics:base"),
        ("registry:lazy_module", "basics.py", "return x", "return -x", "basics:base"),
    ],
)
def test_code_in_a_registry_or_imported_in_the_body_is_followed(
    tmp_path: Path, target: str, file: str, old: str, new: str, changed: str
):
    """A step calling a helper through a module-level dict, or importing it in its body, was
    served a stale result when the helper changed: the dict's functions were hashed by their
    type's name and the body's imports not followed. Libraries imported in the body (json)
    still enter keys only by their versions."""
    project = write_project(tmp_path / "project", LAZY_PROJECT)
    before = fingerprint_in_new_process(project, target)
    assert not any(part.startswith("json") for part in before["parts"])
    edit(project, file, old, new)
    after = fingerprint_in_new_process(project, target)
    assert after["digest"] != before["digest"]
    assert changed in changed_parts(before, after)


def test_a_library_imported_in_a_body_is_not_imported_to_fingerprint_it(tmp_path: Path):
    """`import heavylib.sub` in a step's body: finding `heavylib.sub` imports `heavylib`, a
    library's package (torch, matplotlib): it is left alone, as libraries enter keys by
    their versions only."""
    project = write_project(
        tmp_path / "project",
        {
            "steps.py": "def uses(x):\n    import heavylib.sub\n\n    return heavylib.sub.f(x)\n",
            "site-packages/heavylib/__init__.py": "raise SystemExit('imported heavylib')\n",
            "site-packages/heavylib/sub.py": "def f(x):\n    return x\n",
        },
    )
    check = PRINT_FINGERPRINT + "assert 'heavylib' not in sys.modules\n"
    done = subprocess.run(
        [sys.executable, "-c", check, "steps:uses"],
        cwd=project,
        env=python_env(
            project / "home", PYTHONPATH=f"{project}{os.pathsep}{project / 'site-packages'}"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["parts"]) == {"steps:uses"}


def test_functions_in_a_set_get_one_digest_whatever_their_addresses(tmp_path: Path):
    """Lambdas in a set were walked in the order of their addresses: their numbered names
    (`<lambda>#2`) and so the digest changed from one process to another."""
    project = write_project(tmp_path / "project", LAZY_PROJECT)
    (project / "driver.py").write_text(  # another program: other addresses
        "import sys\njunk = [object() for _ in range(int(sys.argv[2]))]\n" + PRINT_FINGERPRINT
    )
    digests = set()
    for driver in (["-c", PRINT_FINGERPRINT], ["driver.py"]):
        done = subprocess.run(
            [sys.executable, *driver, "registry:handled", "7"],
            cwd=project,
            env=python_env(project / "home", PYTHONPATH=str(project)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        digests.add(json.loads(done.stdout)["digest"])
    assert len(digests) == 1


def test_a_comment_in_a_module_imported_whole_in_a_body_changes_nothing(tmp_path: Path):
    project = write_project(tmp_path / "project", LAZY_PROJECT)
    before = fingerprint_in_new_process(project, "registry:lazy_module")
    edit(project, "features.py", "def feature(x):", "# adds one\ndef feature(x):  # to base")
    assert fingerprint_in_new_process(project, "registry:lazy_module") == before


MODEL_SCRIPT = """\
{future}
from dataclasses import dataclass

from branchwork import pipeline, step


@dataclass
class Model:
    w: float

    def predict(self, x: float) -> float:
        return self.w * x


@step
def make() -> Model:
    return Model(3.0)


@step
def score({argument}) -> float:
    return model.predict(10)  # a method of its argument: no name the bytecode loads


@pipeline
def scoring():
    return score(make())


if __name__ == "__main__":
    print(scoring(), scoring.last_run.steps["score"].status)
"""


@pytest.mark.parametrize(
    ("future", "argument"),
    [
        ("", "model: Model"),
        ("", "model: list[Model] | Model"),
        ("from __future__ import annotations", "model: Model"),  # annotations as text
        ("", "model"),  # the class of the value it receives
    ],
)
def test_a_method_of_an_arguments_class_is_part_of_the_steps_key(
    tmp_path: Path, branchwork_home: Path, future: str, argument: str
):
    """`make` returns the same bytes after the edit, so only its consumer's own key can say
    that `score` now runs other code: a stale 30.0 was served."""
    script = MODEL_SCRIPT.format(future=future, argument=argument)
    project = write_project(tmp_path / "project", {"script.py": script})
    assert run_script(project, branchwork_home) == "30.0 completed"
    assert run_script(project, branchwork_home) == "30.0 cached"
    edit(project, "script.py", "return self.w * x", "return self.w * x + 1000")
    assert run_script(project, branchwork_home) == "1030.0 completed"


ANNOTATED_STEPS = """\
from typing import Annotated, Generic, List, Literal, Optional, TypeVar

from pydantic import BaseModel

T = TypeVar("T")
epochs = 3


class Item(BaseModel):
    w: float


class Page(BaseModel, Generic[T]):
    items: list[T]


class Model:
    def predict(self, x):
        return x


def train():
    return 1


def total(page: Page[Item]) -> Page[Item]:
    return page


def forward(models: List["Model"], other: Optional["Model"] = None) -> float:
    return 0.0


def report(mode: Literal["train", "eval"], n: Annotated[int, "epochs"]) -> str:
    return mode
"""


def test_annotations_reach_generic_arguments_and_forward_references_not_literal_values(
    tmp_path: Path,
):
    project = write_project(tmp_path / "project", {"annotated.py": ANNOTATED_STEPS})
    # a parametrized pydantic model (`Page[Item]`, a class pydantic makes, with ids in its
    # schema) is its generic class and arguments: the same digest in every process
    first = fingerprint_in_new_process(project, "annotated:total")
    assert fingerprint_in_new_process(project, "annotated:total", "1") == first
    assert {"annotated:Page", "annotated:Item"} <= set(first["parts"])
    assert "annotated:Page[Item]" not in first["parts"]
    forward = fingerprint_in_new_process(project, "annotated:forward")
    assert "annotated:Model" in forward["parts"]
    report = fingerprint_in_new_process(project, "annotated:report")
    assert set(report["parts"]) == {"annotated:report"}  # not `train`, nor `epochs`


# ---- what defining code runs, and the state behind what a step calls ------------------------

DEFINED_SETTINGS = """\
DEFAULT_LR = 0.1
"""

DEFINED_SCRIPT = """\
from dataclasses import dataclass, field

from pydantic import BaseModel

from branchwork import pipeline, step
from settings import DEFAULT_LR


def default_layers():
    return [64, 64]


class TrainConfig(BaseModel):
    lr: float = DEFAULT_LR  # pydantic keeps field defaults out of the class's namespace


@dataclass
class Arch:
    layers: list = field(default_factory=default_layers)


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        return x * self.k


scale = Scaler(2).apply
OPS = {"double": Scaler(2).apply}


class Runner:
    def __init__(self, factor):
        self.factor = factor
        self.handlers = {"run": self.run}  # its own bound methods in its state

    def run(self, x):
        return x * self.factor


RUNNER = Runner(2)


@step
def train() -> float:
    return TrainConfig().lr


@step
def width() -> int:
    return sum(Arch().layers)


@step
def scaled() -> int:
    return scale(10)


@step
def registered() -> int:
    return OPS["double"](10)


@step
def dispatched() -> int:
    return RUNNER.handlers["run"](10)


@pipeline
def defined():
    return train(), width(), scaled(), registered(), dispatched()


if __name__ == "__main__":
    print(list(defined()), sorted({str(s.status) for s in defined.last_run.steps.values()}))
"""


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("settings.py", "DEFAULT_LR = 0.1", "DEFAULT_LR = 0.5", [0.5, 128, 20, 20, 20]),
        ("script.py", "return [64, 64]", "return [32, 32]", [0.1, 64, 20, 20, 20]),
        ("script.py", "scale = Scaler(2)", "scale = Scaler(3)", [0.1, 128, 30, 20, 20]),
        ("script.py", '"double": Scaler(2)', '"double": Scaler(3)', [0.1, 128, 20, 30, 20]),
        ("script.py", "RUNNER = Runner(2)", "RUNNER = Runner(3)", [0.1, 128, 20, 20, 30]),
    ],
)
def test_what_a_class_body_reads_and_the_instance_behind_a_bound_method_are_keyed(
    tmp_path: Path, branchwork_home: Path, file: str, old: str, new: str, expected: list[Any]
):
    """A pydantic field's default, a dataclass's default_factory, the instance behind a bound
    method (global or in a registry): each edited, the step that reads it recomputes (each
    was served the stale result). An instance holding its own bound methods is keyed by its
    state still (encoding them with it went round in circles, and it was keyed by its type)."""
    project = write_project(
        tmp_path / "project", {"settings.py": DEFINED_SETTINGS, "script.py": DEFINED_SCRIPT}
    )
    assert run_script(project, branchwork_home) == "[0.1, 128, 20, 20, 20] ['completed']"
    assert run_script(project, branchwork_home) == "[0.1, 128, 20, 20, 20] ['cached']"
    edit(project, file, old, new)
    assert run_script(project, branchwork_home) == f"{expected} ['cached', 'completed']"

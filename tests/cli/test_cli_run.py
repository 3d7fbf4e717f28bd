"""`branchwork run TARGET`: loading targets, parameters, --no-cache, and failures."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from branchwork import Client
from branchwork.cli.run import parse_params

PIPELINES = """
from branchwork import pipeline, step

from helper_for_cli_run import double  # a neighbour of this file


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def total(values: list, label: str) -> dict:
    return {"label": label, "total": double(sum(values))}


@step
def explode(values: list) -> int:
    raise ValueError(f"cannot handle {len(values)} values\\nsecond line of the message")


@pipeline
def summing(n: int = 3, label: str = "sum"):
    return total(numbers(n), label)


@pipeline
def failing(n: int = 2):
    return explode(numbers(n))


not_a_pipeline = 42
"""


@pytest.fixture
def target_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # `run` puts the file's folder on it
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "helper_for_cli_run.py").write_text("def double(x):\n    return 2 * x\n")
    path = folder / "my_pipelines.py"
    path.write_text(textwrap.dedent(PIPELINES))
    yield path
    sys.modules.pop("helper_for_cli_run", None)


def test_run_prints_the_run_status_and_result(cli, target_file):
    result = cli("run", f"{target_file}:summing", "--param", "n=4", "--param", "label=abc")
    assert result.exit_code == 0, result.output
    run = Client().list_pipeline_runs(pipeline="summing")[0]
    lines = result.stdout.splitlines()
    assert lines == [
        f"Run:    {run.name}",
        "Status: completed",
        "Result: {'label': 'abc', 'total': 12}",
    ]
    assert run.parameters == {"n": 4, "label": "abc"}  # 4 parsed as JSON, abc kept as text


def test_parameters_are_json_when_they_parse():
    assert parse_params(["n=3", "name=abc", "flag=true", "xs=[1, 2]", 's="3"', "e="]) == {
        "n": 3,
        "name": "abc",
        "flag": True,
        "xs": [1, 2],
        "s": "3",
        "e": "",
    }


def test_a_malformed_param_is_a_usage_error(cli, target_file):
    result = cli("run", f"{target_file}:summing", "--param", "n")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


def test_second_run_is_cached_unless_no_cache(cli, target_file):
    assert cli("run", f"{target_file}:summing").exit_code == 0
    assert cli("run", f"{target_file}:summing").exit_code == 0
    cached = Client().list_pipeline_runs(pipeline="summing", limit=1)[0]
    assert {str(s.status) for s in cached.steps.values()} == {"cached"}

    result = cli("run", f"{target_file}:summing", "--no-cache")
    assert result.exit_code == 0, result.output
    fresh = Client().list_pipeline_runs(pipeline="summing", limit=1)[0]
    assert {str(s.status) for s in fresh.steps.values()} == {"completed"}
    assert "Result: {'label': 'sum', 'total': 6}" in result.stdout


def test_a_value_repr_refuses_is_printed_as_such_not_as_an_error(cli, pipeline_file):
    """An int longer than Python writes as text: the run completed, and printing its value
    failed the command with `Error: ValueError`; `artifacts load` too."""
    target = pipeline_file(
        "power",
        """
        from branchwork import pipeline, step

        @step
        def power(n: int) -> int:
            return 10**n

        @pipeline
        def powers(n: int = 5000):
            return power(n)
        """,
    )
    result = cli("run", f"{target}:powers", "--no-progress")
    assert result.exit_code == 0, result.output
    refused = (
        "<int value that repr() refuses: ValueError: Exceeds the limit (4300 digits) for "
        "integer string conversion"
    )
    assert result.stdout.splitlines()[-1].startswith(f"Result: {refused}")
    loaded = cli("artifacts", "load", "latest/power", "--allow-pickle")
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.startswith(refused)


def test_a_value_whose_repr_raises_is_printed_as_such(cli, pipeline_file):
    """A class whose `__repr__` raises (a bug in it): the command failed with a bare
    `Error: IndexError: list index out of range` after the run completed."""
    target = pipeline_file(
        "shaky",
        """
        from branchwork import pipeline, step

        class Shaky:
            def __repr__(self):
                return [][0]

        @step
        def make() -> Shaky:
            return Shaky()

        @pipeline
        def shaky():
            return make()
        """,
    )
    result = cli("run", f"{target}:shaky", "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "Result: <Shaky value that repr() refuses: IndexError: list index out of range>"
    )


def test_a_failing_run_exits_1_with_one_line_naming_the_step(cli, target_file, assert_error):
    result = cli("run", f"{target_file}:failing")
    line = assert_error(result, "step 'explode'", "ValueError: cannot handle 2 values")
    run = Client().list_pipeline_runs(pipeline="failing")[0]
    assert run.name in line
    assert str(run.status) == "failed"
    assert "second line" not in result.output


def test_a_module_target_is_imported_from_the_working_directory(cli, target_file, monkeypatch):
    monkeypatch.chdir(target_file.parent)
    result = cli("run", "my_pipelines:summing", "-p", "n=2")
    assert result.exit_code == 0, result.output
    assert "Result: {'label': 'sum', 'total': 2}" in result.stdout
    sys.modules.pop("my_pipelines", None)


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("{file}:nope", ["has no pipeline 'nope'", "pipelines there: failing, summing"]),
        ("{file}:not_a_pipeline", ["is not a @pipeline", "int"]),
        ("{folder}/missing.py:summing", ["No such file", "missing.py"]),
        ("{file}", ["names no pipeline", "path/to/file.py:pipeline_name"]),
        ("no_such_module_for_cli:summing", ["No module named 'no_such_module_for_cli'"]),
    ],
)
def test_bad_targets_are_one_line_errors(cli, target_file, assert_error, target, fragments):
    text = target.format(file=target_file, folder=target_file.parent)
    assert_error(cli("run", text), *fragments)


def test_a_file_that_fails_to_import_is_a_one_line_error(cli, tmp_path, assert_error):
    broken = tmp_path / "broken.py"
    broken.write_text("import does_not_exist_anywhere\n")
    assert_error(cli("run", f"{broken}:p"), "Importing", "broken.py", "ModuleNotFoundError")


def test_a_file_of_a_package_importing_its_package_says_to_run_it_as_a_module(
    cli, tmp_path, assert_error
):
    """`branchwork run myproj/pipeline.py:train` from the project: the file imports
    `myproj.features`, which only the module form finds."""
    package = tmp_path / "myproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text("SCALE = 2\n")
    (package / "pipeline.py").write_text("from myproj.features import SCALE\n")
    assert_error(
        cli("run", f"{package / 'pipeline.py'}:train"),
        "No module named 'myproj'",
        f"pipeline.py is part of package 'myproj': run it as a module from {tmp_path}, as "
        "`myproj.pipeline:PIPELINE`",
    )


def test_wrong_parameters_are_one_line_errors(cli, target_file, assert_error):
    assert_error(cli("run", f"{target_file}:summing", "-p", "bogus=1"), "bogus", "summing")


TYPED = """
from branchwork import pipeline, step


@step
def describe(n: int, name: str, cfg: dict) -> dict:
    return {"n": n, "name": name, "name_type": type(name).__name__, "cfg": cfg}


@pipeline
def typed(n: int = 1, name: str = "x", cfg: dict = {}):
    return describe(n, name, cfg)
"""


def test_a_param_its_annotation_refuses_is_one_line_naming_pipeline_and_parameter(
    cli, pipeline_file, assert_error
):
    path = pipeline_file("typed_params", TYPED)
    assert_error(
        cli("run", f"{path}:typed", "--param", "n=abc"),
        "Error: Pipeline 'typed': parameter 'n' expects int, got 'abc' (str): Input should be "
        "a valid integer",
    )
    assert Client().list_pipeline_runs() == []


def test_a_dict_param_that_is_not_valid_json_says_so(cli, pipeline_file, assert_error):
    path = pipeline_file("typed_params", TYPED)
    assert_error(
        cli("run", f"{path}:typed", "--param", "cfg={bad json"),
        "Error: Pipeline 'typed': parameter 'cfg' expects dict, got '{bad json' (str)",
        "the value is not valid JSON (Expecting property name enclosed in double quotes",
    )
    assert Client().list_pipeline_runs() == []


def test_a_str_param_gets_the_text_as_typed_and_the_others_their_json(cli, pipeline_file):
    path = pipeline_file("typed_params", TYPED)
    result = cli("run", f"{path}:typed", "-p", "name=3", "-p", "n=4", "-p", 'cfg={"k": [1, 2]}')
    assert result.exit_code == 0, result.output
    assert "Result: {'n': 4, 'name': '3', 'name_type': 'str', 'cfg': {'k': [1, 2]}}" in (
        result.stdout.splitlines()
    )
    run = Client().list_pipeline_runs(pipeline="typed")[0]
    assert run.parameters == {"n": 4, "name": "3", "cfg": {"k": [1, 2]}}


TOP_LEVEL_CALL = """
from pathlib import Path

from branchwork import pipeline, step


@step(enable_cache=False)
def train() -> float:
    with open(Path(__file__).with_name("calls.log"), "a") as log:
        log.write("train\\n")
    return 0.9


@pipeline
def training():
    return train()


training()  # no __main__ guard


@pipeline
def later():
    return train()
"""


def test_the_cli_never_runs_a_scripts_top_level_pipeline_call(pipeline_file):
    """`branchwork graph` recorded a run of the script's top-level call, and `branchwork run`
    ran the pipeline twice: the import now stops at that call, as the README says."""
    script = pipeline_file("toplevel", TOP_LEVEL_CALL)
    calls = script.with_name("calls.log")

    def branchwork(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "branchwork"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    drawn = branchwork("graph", f"{script}:training")
    assert drawn.returncode == 0, drawn.stderr
    assert not calls.exists() and Client().list_pipeline_runs() == []
    done = branchwork("run", f"{script}:training", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert calls.read_text() == "train\n"
    assert len(Client().list_pipeline_runs()) == 1
    refused = branchwork("run", f"{script}:later")
    assert refused.returncode == 1
    assert refused.stderr == (
        f"Error: {script} calls pipeline 'training' at {script}:19 before defining 'later': "
        'put the file\'s top-level calls under `if __name__ == "__main__":`.\n'
    )
    assert calls.read_text() == "train\n" and len(Client().list_pipeline_runs()) == 1


def test_two_scripts_run_in_one_process_each_get_their_own_classes(cli, pipeline_file):
    """Both define `Settings` (recorded as `__main__.Settings`): the second run loaded the
    first script's class, and failed."""
    first = pipeline_file(
        "first_script",
        """
        from dataclasses import dataclass
        from branchwork import pipeline, step

        @dataclass
        class Settings:
            lr: float

        @step
        def make() -> Settings:
            return Settings(0.1)

        @step
        def show(settings: Settings) -> str:
            return repr(settings)

        @pipeline
        def p():
            return show(make())
        """,
    )
    second = pipeline_file(
        "second_script",
        """
        from dataclasses import dataclass
        from branchwork import pipeline, step

        @dataclass
        class Settings:
            name: str
            size: int

        @step
        def make() -> Settings:
            return Settings("big", 3)

        @step
        def show(settings: Settings) -> str:
            return repr(settings)

        @pipeline
        def q():
            return show(make())
        """,
    )
    results = [cli("run", target, "--no-progress") for target in (f"{first}:p", f"{second}:q")]
    assert [r.exit_code for r in results] == [0, 0], [r.output for r in results]
    assert results[0].stdout.splitlines()[-1] == "Result: 'Settings(lr=0.1)'"
    assert results[1].stdout.splitlines()[-1] == "Result: \"Settings(name='big', size=3)\""

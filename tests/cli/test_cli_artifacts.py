"""`branchwork artifacts list|show|load`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest

from branchwork import ArtifactConfig, Client, log_artifact_metadata, pipeline, step
from branchwork.exceptions import PipelineRunFailedError


@step
def make_words(n: int) -> list:
    return [f"w{i}" for i in range(n)]


@step
def join_words(words: list) -> str:
    return " ".join(words)


@pipeline
def cli_words(n: int = 3):
    return join_words(make_words(n))


def run_words(n: int):
    cli_words(n=n)
    return Client().list_pipeline_runs(pipeline="cli_words", limit=1)[0]


WORDS = "cli_words::make_words::output"
JOINED = "cli_words::join_words::output"


def test_artifacts_list_names_with_version_counts(cli, cli_json):
    run_words(2)
    run_words(3)
    run_words(3)  # cached: no new versions
    data = cli_json("artifacts", "list")
    assert {item["name"]: item["versions"] for item in data} == {WORDS: 2, JOINED: 2}
    assert {item["name"]: item["latest_version"] for item in data} == {WORDS: 2, JOINED: 2}
    assert {"id", "name", "versions", "latest_version", "latest"} <= set(data[0])
    table = cli("artifacts", "list").stdout.splitlines()
    assert table[0].split() == ["ARTIFACT", "VERSIONS", "LATEST", "UPDATED"]
    assert sorted(line.split()[:3] for line in table[1:]) == [
        [JOINED, "2", "2"],
        [WORDS, "2", "2"],
    ]


def test_artifacts_list_of_one_name_lists_its_versions(cli, cli_json):
    first = run_words(2)
    second = run_words(4)
    versions = cli_json("artifacts", "list", JOINED)
    assert [(v["id"], v["version"]) for v in versions] == [
        (second.steps["join_words"].output.id, 2),
        (first.steps["join_words"].output.id, 1),
    ]
    assert cli_json("artifacts", "list", "--name", JOINED) == versions
    lines = cli("artifacts", "list", JOINED).stdout.splitlines()
    assert lines[0].split() == ["VERSION", "TAGS", "CREATED", "TYPE", "PRODUCED", "BY", "ID"]
    assert lines[1].split()[:2] == ["2", "-"]
    assert f"{second.name}/join_words" in lines[1] and "builtins.str" in lines[1]


def test_artifacts_show_and_load(cli, cli_json):
    run = run_words(3)
    version = run.steps["join_words"].output
    data = cli_json("artifacts", "show", version.id)
    assert data["id"] == version.id
    assert data["artifact"] == JOINED
    assert data["uri"] == version.uri
    assert data["producer_run"] == run.name
    assert data["producer_invocation"] == "join_words"
    assert data["used_by_runs"] == [run.name]
    out = cli("artifacts", "show", version.id).stdout
    for fragment in (version.id, JOINED, version.uri, "builtins.str", f"{run.name}/join_words"):
        assert fragment in out

    loaded = cli("artifacts", "load", version.id)
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout == "'w0 w1 w2'\n"
    words = run.steps["make_words"].output.id
    assert cli("artifacts", "load", words).stdout == "['w0', 'w1', 'w2']\n"


def test_artifacts_list_when_empty(cli):
    assert cli("artifacts", "list").stdout.strip() == "No artifacts yet."


def test_unknown_artifacts_are_one_line_errors(cli, assert_error):
    unknown = (
        "Error: No artifact named 'nope' and no artifact version with that id; "
        "`branchwork artifacts list` shows the names."
    )
    assert assert_error(cli("artifacts", "show", "nope")) == unknown
    assert assert_error(cli("artifacts", "load", "nope")) == unknown
    assert assert_error(cli("artifacts", "list", "no::such::name")) == (
        "Error: No artifact named 'no::such::name' (or it has no versions); "
        "`branchwork artifacts list` shows the names."
    )


# ---- RUN/INVOCATION[/OUTPUT] ---------------------------------------------------------------


@step
def split_words(words: list) -> tuple[Annotated[list, "evens"], Annotated[list, "odds"]]:
    return words[::2], words[1::2]


@pipeline
def cli_split(n: int = 5):
    return split_words(make_words(n))


def test_an_artifact_is_addressed_by_run_and_invocation(cli, cli_json):
    first = run_words(2)
    second = run_words(3)
    assert cli("artifacts", "load", "latest/join_words").stdout == "'w0 w1 w2'\n"
    assert cli("artifacts", "load", f"{first.name}/join_words").stdout == "'w0 w1'\n"
    assert cli("artifacts", "load", "latest:cli_words/make_words/output").stdout == (
        "['w0', 'w1', 'w2']\n"
    )
    shown = cli_json("artifacts", "show", f"{second.name[:-2]}/join_words")  # a prefix
    assert shown["id"] == second.steps["join_words"].output.id
    assert shown["producer_run"] == second.name
    table = cli("artifacts", "show", "latest/make_words").stdout
    assert second.steps["make_words"].output.id in table


def test_a_step_with_several_outputs_needs_the_output_name(cli, assert_error):
    cli_split()
    run = Client().get_pipeline_run("latest")
    assert cli("artifacts", "load", "latest/split_words/odds").stdout == "['w1', 'w3']\n"
    assert cli("artifacts", "load", f"{run.name}/split_words/evens").stdout == (
        "['w0', 'w2', 'w4']\n"
    )
    assert assert_error(cli("artifacts", "show", "latest/split_words")) == (
        f"Error: Invocation 'split_words' of run '{run.name}' has 2 outputs (evens, odds); "
        f"name one, as in {run.name}/split_words/evens."
    )
    assert assert_error(cli("artifacts", "load", "latest/split_words/all")) == (
        f"Error: Invocation 'split_words' of run '{run.name}' has no output 'all'; "
        "its outputs: evens, odds."
    )


def test_bad_artifact_addresses_are_one_line_errors(cli, assert_error):
    run = run_words(2)
    assert assert_error(cli("artifacts", "load", "latest/join")) == (
        f"Error: Run '{run.name}' has no invocation 'join'; invocations like it: join_words "
        f"(`branchwork runs show {run.name}` lists them)."
    )
    assert_error(
        cli("artifacts", "show", "nope/join_words"), "No pipeline run with id or name 'nope'"
    )
    assert_error(
        cli("artifacts", "load", "latest/join_words/output/x"),
        "'latest/join_words/output/x' is not an artifact address; use a version id or "
        "RUN/INVOCATION[/OUTPUT].",
    )
    assert_error(cli("artifacts", "load", "latest/"), "is not an artifact address")


@step
def refuse(words: list) -> str:
    raise ValueError("not today")


@pipeline
def cli_refusing(n: int = 2):
    return refuse(make_words(n))


def test_a_failed_invocation_has_no_outputs_to_address(cli, assert_error):
    with pytest.raises(PipelineRunFailedError):
        cli_refusing()
    run = Client().get_pipeline_run("latest")
    assert assert_error(cli("artifacts", "load", "latest/refuse")) == (
        f"Error: Invocation 'refuse' of run '{run.name}' has no outputs (its latest attempt is "
        "failed)."
    )


# ---- names, versions, tags, metadata, previews ---------------------------------------------


@step(enable_cache=False)
def fit(depth: int) -> Annotated[dict, ArtifactConfig(name="model", tags=["candidate"])]:
    log_artifact_metadata({"depth": depth, "accuracy": depth / 10})
    return {"depth": depth}


@pipeline(enable_cache=False)
def cli_fitting(depth: int = 3):
    return fit(depth)


@step(enable_cache=False)
def promote() -> Annotated[dict, ArtifactConfig(name="model", tags=["prod", "candidate"])]:
    return {"depth": 9}


@pipeline(enable_cache=False)
def cli_promoting():
    return promote()


def fitted_three_versions():
    cli_fitting(depth=3)
    cli_promoting()
    cli_fitting(depth=5)


def test_a_named_artifact_is_listed_by_name_tag_pipeline_and_metadata(cli, cli_json):
    fitted_three_versions()
    summary = [item for item in cli_json("artifacts", "list") if item["name"] == "model"]
    assert [(s["versions"], s["latest_version"]) for s in summary] == [(3, 3)]

    def listed(*filters):
        return [(v["version"], v["tags"]) for v in cli_json("artifacts", "list", *filters)]

    assert listed("--name", "model") == [
        (3, ["candidate"]),
        (2, ["candidate", "prod"]),
        (1, ["candidate"]),
    ]
    assert listed("--name", "model", "--tag", "prod") == [(2, ["candidate", "prod"])]
    assert listed("--tag", "candidate", "--pipeline", "cli_fitting") == [
        (3, ["candidate"]),
        (1, ["candidate"]),
    ]
    assert listed("--metadata", "depth=5") == [(3, ["candidate"])]
    assert listed("--metadata", "depth=5", "--metadata", "accuracy=0.3") == []
    assert listed("--metadata", "accuracy=0.3") == [(1, ["candidate"])]

    table = cli("artifacts", "list", "--tag", "candidate").stdout.splitlines()
    assert table[0].split()[:3] == ["ARTIFACT", "VERSION", "TAGS"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["model", "3", "candidate"],
        ["model", "2", "candidate,"],  # "candidate, prod"
        ["model", "1", "candidate"],
    ]
    assert cli("artifacts", "list", "--tag", "nope").stdout == "No artifact versions match.\n"


def test_show_and_load_a_version_by_name(cli, cli_json):
    fitted_three_versions()
    latest = Client().get_artifact_version("model")
    second = Client().get_artifact_version("model", version=2)
    assert cli("artifacts", "load", "model:2").stdout == "{'depth': 9}\n"
    assert cli("artifacts", "load", "model").stdout == "{'depth': 5}\n"

    shown = cli_json("artifacts", "show", "model")
    assert (shown["id"], shown["artifact"], shown["version"]) == (latest.id, "model", 3)
    assert shown["tags"] == ["candidate"]
    assert shown["metadata"] == {"depth": 5, "accuracy": 0.5}
    assert shown["preview"]["text"] == "{'depth': 5}"
    assert cli_json("artifacts", "show", "model:2")["id"] == second.id

    out = cli("artifacts", "show", "model:1").stdout
    lines = [line.split(maxsplit=1) for line in out.splitlines() if line.strip()]
    fields = {line[0]: line[1].strip() if len(line) > 1 else "" for line in lines}
    assert fields["Artifact"] == "model"
    assert fields["Version"] == "1"
    assert fields["Tags"] == "candidate"
    assert fields["depth"] == "3" and fields["accuracy"] == "0.3"  # the Metadata section
    assert "\nPreview\n{'depth': 3}\n" in out
    assert "\nPreview metadata\nlength  1\n" in out  # what the materializer measured


def test_unknown_versions_list_the_versions_there_are(cli, assert_error):
    fitted_three_versions()
    assert assert_error(cli("artifacts", "show", "model:7")) == (
        "Error: Artifact 'model' has no version 7; its versions: 1-3."
    )
    assert assert_error(cli("artifacts", "load", "modle:1")) == (
        "Error: No artifact named 'modle' (or it has no versions); `branchwork artifacts list` "
        "shows the names."
    )
    assert assert_error(cli("artifacts", "list", "--name", "modle", "--tag", "prod")) == (
        "Error: No artifact named 'modle' (or it has no versions); `branchwork artifacts list` "
        "shows the names."
    )


def test_artifacts_load_finds_the_projects_classes_or_says_which_it_needs(tmp_path):
    """From the project's folder a model of the project loads (the CLI did not look there);
    elsewhere, and for a class of the script itself, the error names the class and what
    to do (it said only that the class was 'asked for as typing.Any')."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "models.py").write_text(
        "from pydantic import BaseModel\nclass Cfg(BaseModel):\n    lr: float\n"
    )
    (project / "pipe.py").write_text(
        "from dataclasses import dataclass\n"
        "from typing import Annotated\n"
        "from branchwork import pipeline, step\n"
        "from models import Cfg\n"
        "@dataclass\n"
        "class Local:\n"
        "    y: int\n"
        "@step\n"
        "def make() -> tuple[Annotated[Cfg, 'cfg'], Annotated[Local, 'local']]:\n"
        "    return Cfg(lr=0.5), Local(3)\n"
        "@pipeline\n"
        "def p():\n"
        "    return make()\n"
    )
    branchwork = str(Path(sys.executable).parent / "branchwork")

    def run(*args: str, cwd: Path = project) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [branchwork, *args], cwd=cwd, capture_output=True, text=True, timeout=120
        )

    assert run("run", "pipe.py:p").returncode == 0
    assert run("artifacts", "load", "cfg").stdout == "Cfg(lr=0.5)\n"
    elsewhere = run("artifacts", "load", "cfg", cwd=tmp_path)
    assert elsewhere.stderr == (
        "Error: This artifact holds a pydantic model as JSON, and loading it needs its class, "
        "models.Cfg, which cannot be imported here: run from the project's folder, or put its "
        "module on PYTHONPATH.\n"
    )
    assert run("artifacts", "load", "local").stderr == (
        "Error: This artifact holds a dataclass as JSON, and loading it needs its class, "
        "Local, defined in the script that ran the pipeline: load it in a process that ran or "
        "imported that script, or move the class to a module the script imports.\n"
    )


@step
def count_by_id(n: int) -> dict:
    return {i: f"w{i}" for i in range(n)}  # int keys: no JSON form, so a pickle


@pipeline
def cli_counts(n: int = 3):
    return count_by_id(n)


@pytest.mark.filterwarnings("ignore:dict values with int keys are stored as cloudpickles")
def test_artifacts_show_says_a_value_was_stored_as_a_pickle(cli):
    cli_counts(n=3)
    pickled = cli_counts.last_run.steps["count_by_id"].output.id
    shown = " ".join(cli("artifacts", "show", pickled).stdout.split())
    assert "Stored as a pickle: `--allow-pickle` loads it, if you trust the store" in shown
    assert "pickled" not in shown  # once, as the field above
    assert cli("artifacts", "load", pickled, "--allow-pickle").stdout == (
        "{0: 'w0', 1: 'w1', 2: 'w2'}\n"
    )
    words = run_words(2).steps["make_words"].output.id
    assert "Stored as" not in cli("artifacts", "show", words).stdout

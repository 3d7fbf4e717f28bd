"""`branchwork runs diff RUN_A RUN_B`: where two runs' graphs differ."""

from __future__ import annotations

import re

from branchwork import Client, pipeline, step


@step
def load(size: int) -> list:
    return list(range(size))


@step
def small_model(data: list) -> str:
    return "small"


@step
def big_model(data: list) -> str:
    return "big"


@step
def check(data: list) -> bool:
    return bool(data)


@step
def report(model: str, checks: list) -> str:
    return f"{model}: {sum(checks)} checks"


@pipeline
def cli_branching(size: int = 10):
    data = load(size)
    small = len(data) < 20  # the graph depends on a step's output, so on the parameter
    model = small_model(data, id="model") if small else big_model(data, id="model")
    checks = [check(data) for _ in range(1 if small else 2)]
    return report(model, checks)


def run(size: int):
    cli_branching(size=size)
    return Client().list_pipeline_runs(pipeline="cli_branching", limit=1)[0]


def test_diff_of_runs_whose_branch_depends_on_a_parameter(cli, cli_json):
    small, big = run(10), run(30)
    data = cli_json("runs", "diff", small.name, big.name)
    assert data["run_a"] == small.name and data["run_b"] == big.name
    assert data["same"] is False
    assert data["only_in_a"] == []
    assert data["only_in_b"] == ["check_2"]
    assert data["different_step"] == [{"invocation": "model", "a": "small_model", "b": "big_model"}]
    keys = {item["invocation"]: item for item in data["different_cache_key"]}
    assert set(keys) == {"load", "check", "report"}
    assert keys["load"]["reasons"] == ["inputs"]
    assert keys["load"]["inputs"] == {"size": ["10", "30"]}
    assert keys["check"]["reasons"] == ["input contents"]  # same wiring, other data
    assert keys["report"]["reasons"] == ["inputs"]
    assert keys["report"]["inputs"]["checks"] == [
        "[check.output]",
        "[check.output, check_2.output]",
    ]
    assert data["different_parents"] == [
        {"invocation": "report", "a": ["check", "model"], "b": ["check", "check_2", "model"]}
    ]
    assert data["parameters"] == {"size": ["10", "30"]}

    result = cli("runs", "diff", small.name, big.name)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{small.name} and {big.name} differ in 7 places:"
    assert lines[1].split() == ["DIFFERENCE", "INVOCATION", "DETAIL"]
    rows = [" ".join(line.split()) for line in lines[2:]]
    assert rows == [
        "different parameter size 10 → 30",
        f"only in {big.name} check_2",
        "different step model small_model → big_model",
        "different cache key load inputs (size: 10 → 30)",
        "different cache key check input contents",
        "different cache key report inputs (checks: [check.output] → "
        "[check.output, check_2.output])",
        "different parents report check, model → check, check_2, model",
    ]
    assert cli("runs", "diff", small.name, big.name, "--exit-code").exit_code == 1


def test_diff_of_identical_graphs_says_same_graph(cli, cli_json):
    first = run(10)
    second = run(10)  # served from the cache: same ids, same keys, same parents
    result = cli("runs", "diff", first.name, second.id)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"same graph: {first.name} and {second.name}"
    assert cli("runs", "diff", first.name, second.name, "--exit-code").exit_code == 0
    data = cli_json("runs", "diff", first.name, second.name)
    assert data["same"] is True and data["different_cache_key"] == []
    assert data["parameters"] == {}


@step
def constant(flag: bool) -> int:
    return 1


@pipeline
def ignores_its_parameter(verbose: bool = False, note: str = ""):
    return constant(True)


def test_diff_of_the_same_graph_from_other_parameters_names_them(cli, cli_json):
    """The graph is the same (the parameter reaches no step), the parameters are not: they
    are listed, and --exit-code, which is about the graph, exits 0."""
    ignores_its_parameter(verbose=False)
    first = ignores_its_parameter.last_run
    ignores_its_parameter(verbose=True, note="retry")
    second = ignores_its_parameter.last_run
    data = cli_json("runs", "diff", first.name, second.name)
    assert data["same"] is True
    assert data["parameters"] == {"note": ["''", "'retry'"], "verbose": ["False", "True"]}
    result = cli("runs", "diff", first.name, second.name, "--exit-code")
    assert result.exit_code == 0, result.output
    assert [" ".join(line.split()) for line in result.stdout.splitlines()] == [
        f"{first.name} and {second.name} differ in 2 places:",
        "DIFFERENCE INVOCATION DETAIL",
        "different parameter note '' → 'retry'",
        "different parameter verbose False → True",
    ]


def test_diff_of_a_missing_run_is_a_one_line_error(cli, assert_error):
    first = run(10)
    assert_error(cli("runs", "diff", first.name, "nope"), "No pipeline run with id or name 'nope'")


@pipeline
def cli_chunks(size: int):
    return check.map(load(4), chunk_size=size)


def test_diff_names_the_items_each_chunk_of_a_map_got(cli_json):
    cli_chunks(size=2)
    cli_chunks(size=3)
    b, a = Client().list_pipeline_runs(pipeline="cli_chunks", limit=2)
    data = cli_json("runs", "diff", a.name, b.name)
    keys = {item["invocation"]: item["inputs"] for item in data["different_cache_key"]}
    assert keys == {
        "check": {"data": ["load.output[0:2]", "load.output[0:3]"]},
        "check_2": {"data": ["load.output[2:4]", "load.output[3:4]"]},
    }


@step
def echo(value: object) -> str:
    return repr(value)


@pipeline
def echoes(value: object = 1):
    return echo(value)


def test_diff_tells_one_from_one_point_zero_and_true(cli_json):
    """Three values to a step (`repr` gives 1, 1.0, True): they compared equal, and the diff
    said the input's contents changed, with no parameter named."""
    runs = []
    for value in (1, 1.0, True, 1):
        echoes(value=value)
        runs.append(echoes.last_run.name)
    for other, shown in ((runs[1], "1.0"), (runs[2], "True")):
        data = cli_json("runs", "diff", runs[0], other)
        assert data["parameters"] == {"value": ["1", shown]}
        (difference,) = data["different_cache_key"]
        assert difference["reasons"] == ["inputs"]
        assert difference["inputs"] == {"value": ["1", shown]}
    same = cli_json("runs", "diff", runs[0], runs[3])
    assert (same["same"], same["parameters"], same["different_cache_key"]) == (True, {}, [])


def test_in_a_narrow_terminal_every_column_stays_and_cells_fold(cli, monkeypatch):
    """80 columns: the INVOCATION column was squeezed to nothing (rows then said "only in"
    without the invocation) and run names were cut with "…"."""
    small, big = run(10), run(30)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a terminal, as Rich sees one
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("runs", "diff", small.name, big.name)
    assert result.exit_code == 0, result.output
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # the header's bold
    lines = [line.rstrip() for line in plain.splitlines()]
    assert max(len(line) for line in lines) <= 80 and "…" not in plain
    header = next(i for i, line in enumerate(lines) if line.startswith("DIFFERENCE"))
    assert lines[header].split() == ["DIFFERENCE", "INVOCATION", "DETAIL"]
    only_in = next(i for i, line in enumerate(lines) if line.startswith("only in"))
    assert lines[only_in].split() == ["only", "in", "check_2"]
    name_column = lines[header].index("INVOCATION")
    folded = "".join(line[:name_column].strip() for line in lines[only_in + 1 : only_in + 3])
    assert folded == big.name

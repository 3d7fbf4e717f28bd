"""Replay: a new run of a run's pipeline and parameters, some step arguments overridden,
reusing by invocation id what the original finished, except the overridden invocations and
everything after them."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import replay_pipelines as rp
from typer.testing import CliRunner

from branchwork import Client
from branchwork.cli.app import app
from branchwork.exceptions import ConfigurationError


def newest(pipeline_name: str):
    return Client().list_pipeline_runs(pipeline=pipeline_name, limit=1)[0]


def statuses(run) -> dict[str, tuple[str, str | None]]:
    return {name: (str(s.status), s.cache_verdict) for name, s in run.steps.items()}


def test_replay_reruns_the_overridden_step_and_what_comes_after_it(tmp_path, local_flavor):
    assert rp.tuning(folder=str(tmp_path)) == ("score=0.06", "n=3", "published 3")
    original = rp.tuning.last_run
    before = rp.executions(tmp_path)

    value = Client().replay(
        original.id, skip_successful=True, step_input_overrides={"train": {"lr": 0.5}}
    )
    assert value == ("score=3", "n=3", "published 3")
    assert rp.executions(tmp_path) - before == Counter(["train lr=0.5", "evaluate 3.0", "publish"])
    run = newest("tuning")
    assert run.id != original.id and run.replay_of == original.id
    assert run.status == "completed" and run.orchestrator == local_flavor
    assert statuses(run) == {
        "load": ("cached", "hit"),
        "train": ("completed", "replayed"),
        "evaluate": ("completed", "replayed"),
        "describe": ("cached", "hit"),
        "publish": ("completed", "replayed"),  # after `train` through the value the body read
    }
    for name in ("load", "describe"):
        reused = run.steps[name]
        assert reused.original_step_run_id == original.steps[name].id
        assert reused.output.id == original.steps[name].output.id
        assert reused.cache_reason == f"reused invocation '{name}' of run '{original.name}'"
    replayed = f"replay of run '{original.name}': "
    after_train = "it comes after 'train', which did not reuse the original's result"
    assert run.steps["train"].cache_reason == replayed + "its arguments are overridden (lr=0.5)"
    assert run.steps["evaluate"].cache_reason == replayed + after_train
    assert run.steps["publish"].cache_reason == replayed + after_train
    assert run.steps["train"].configuration.config["inputs"]["lr"] == 0.5
    assert run.snapshot.parameters == original.snapshot.parameters
    assert run.snapshot.spec["replay"] == {
        "skip_successful": True,
        "overrides": {"by_step": {"train": {"lr": 0.5}}, "by_invocation": {}},
        "inherited": [],
    }
    untouched = Client().get_pipeline_run(original.id)
    assert untouched.load_output() == ("score=0.06", "n=3", "published 3")


def test_a_call_comes_after_every_value_read_before_it_not_only_the_last(tmp_path):
    assert rp.two_reads(folder=str(tmp_path)) == ("score=1", "score=2")
    original = rp.two_reads.last_run
    assert original.steps["evaluate_2"].configuration.config["value_inputs"] == ["describe"]
    replayed = f"replay of run '{original.name}': it comes after "

    Client().replay(original.id, True, {"train": {"lr": 0.5}})
    run = newest("two_reads")
    assert statuses(run)["evaluate"] == statuses(run)["evaluate_2"] == ("completed", "replayed")
    after_train = replayed + "'train', which did not reuse the original's result"
    assert run.steps["evaluate"].cache_reason == after_train
    assert run.steps["evaluate_2"].cache_reason == after_train

    Client().replay(original.id, True, {"describe": {"n": 4}})
    run = newest("two_reads")
    assert statuses(run)["evaluate"] == ("cached", "hit")
    assert statuses(run)["evaluate_2"] == ("completed", "replayed")
    after_describe = replayed + "'describe', which did not reuse the original's result"
    assert run.steps["evaluate_2"].cache_reason == after_describe


def test_a_replay_of_a_replay_keeps_its_overrides(tmp_path):
    rp.tuning(folder=str(tmp_path))
    first = Client().replay(rp.tuning.last_run.id, True, {"train": {"lr": 0.5}})
    assert first == ("score=3", "n=3", "published 3")
    replay = newest("tuning")
    before = rp.executions(tmp_path)
    assert Client().replay(replay.id, True, {"describe": {"n": 7}}) == (
        "score=3",
        "n=7",
        "published 3",
    )
    assert rp.executions(tmp_path) - before == Counter(["describe"])
    again = newest("tuning")
    assert again.replay_of == replay.id
    assert statuses(again)["train"] == ("cached", "hit")  # lr=0.5 still, as its record
    assert again.steps["train"].configuration.config["inputs"]["lr"] == 0.5
    shown = " ".join(CliRunner().invoke(app, ["runs", "show", again.name]).stdout.split())
    assert (
        f"Replay of {replay.name} (overrides describe.n=7; inherited train.lr=0.5; finished "
        "steps reused)"
    ) in shown


def test_a_later_replays_override_of_a_step_wins_over_an_earlier_ones_of_an_invocation(
    tmp_path,
):
    """Replay 1 sets part_2's scale to 10; replay 2, of replay 1, sets every part's to 3:
    part_2 ran with 10 still (an invocation's override won whatever its age)."""
    rp.parts(folder=str(tmp_path), n=3)
    assert Client().replay(rp.parts.last_run.id, True, {"part_2": {"scale": 10}}) == 12
    first = newest("parts")
    assert Client().replay(first.id, True, {"part": {"scale": 3}}) == (0 + 1 + 2) * 3
    second = newest("parts")
    assert {
        name: s.configuration.config["inputs"]["scale"]
        for name, s in second.steps.items()
        if name != "total"
    } == {"part": 3, "part_2": 3, "part_3": 3}
    assert second.snapshot.spec["replay"]["inherited"] == [
        {"by_step": {}, "by_invocation": {"part_2": {"scale": 10}}}
    ]
    assert Client().replay(second.id, True, {}) == 9  # a third layer: the second still wins
    assert set(statuses(newest("parts")).values()) == {("cached", "hit")}


def test_replay_reuses_by_invocation_id_with_caching_off(tmp_path):
    uncached = rp.tuning.with_options(enable_cache=False)
    uncached(folder=str(tmp_path))
    original = uncached.last_run
    before = rp.executions(tmp_path)

    assert Client().replay(original.id, skip_successful=True) == (
        "score=0.06",
        "n=3",
        "published 3",
    )
    assert rp.executions(tmp_path) == before  # nothing ran again
    assert set(statuses(newest("tuning")).values()) == {("cached", "hit")}

    value = Client().replay(original.id, step_input_overrides={"train": {"lr": 0.5}})
    assert value == ("score=3", "n=3", "published 3")
    assert rp.executions(tmp_path) - before == Counter(
        ["load", "train lr=0.5", "evaluate 3.0", "describe", "publish"]
    )  # without skip_successful, a new run like any other: the options say no cache
    assert set(statuses(newest("tuning")).values()) == {("completed", "off")}


def test_overriding_an_argument_fed_by_a_step_replaces_it_with_the_value(tmp_path):
    rp.tuning(folder=str(tmp_path))
    original = rp.tuning.last_run
    before = rp.executions(tmp_path)
    value = Client().replay(
        original.id, skip_successful=True, step_input_overrides={"evaluate": {"score": 42}}
    )
    assert value == ("score=42", "n=3", "published 3")
    assert rp.executions(tmp_path) - before == Counter(["evaluate 42"])
    run = newest("tuning")
    assert run.steps["train"].status == "cached"
    assert run.steps["evaluate"].parent_step_run_ids == ()  # no longer fed by `train`
    assert run.steps["evaluate"].inputs == {}


def test_an_override_names_a_step_or_one_invocation(tmp_path, local_flavor):
    assert rp.parts(folder=str(tmp_path)) == 0 + 1 + 2
    original = rp.parts.last_run
    assert original.snapshot.is_dynamic is False
    before = rp.executions(tmp_path)

    one = Client().replay(original.id, True, {"part_2": {"scale": 10}})
    assert one == 0 + 10 + 2
    assert rp.executions(tmp_path) - before == Counter(["part 1 x10"])
    run = newest("parts")
    assert statuses(run) == {
        "part": ("cached", "hit"),
        "part_2": ("completed", "replayed"),
        "part_3": ("cached", "hit"),
        "total": ("completed", "replayed"),
    }
    assert run.snapshot.step_configurations["part_2"].config["inputs"]["scale"] == 10

    every = Client().replay(original.id, True, {"part": {"scale": 2}})
    assert every == (0 + 1 + 2) * 2
    assert rp.executions(tmp_path) - before == Counter(
        ["part 1 x10", "part 0 x2", "part 1 x2", "part 2 x2"]
    )


def test_overrides_that_do_not_fit_the_run_are_refused_before_anything_runs(tmp_path):
    rp.tuning(folder=str(tmp_path))
    original = rp.tuning.last_run
    names = "describe, evaluate, load, publish, train"
    refusals = [
        (
            {"trian": {"lr": 1}},
            f"Run '{original.name}' has no step or invocation 'trian' to override; its steps: "
            f"{names}; its invocations: {names}.",
        ),
        (
            {"train": {"rate": 1}},
            f"Run '{original.name}': invocation 'train' takes no argument 'rate' to override; "
            "its arguments: data, folder, lr.",
        ),
        (
            {"train": {"lr": object()}},
            "The override train.lr (object) cannot be recorded: overrides are None, bools, "
            "numbers, strs, and lists, tuples and dicts of them.",
        ),
    ]
    for overrides, message in refusals:
        with pytest.raises(ConfigurationError) as refused:
            Client().replay(original.id, True, overrides)
        assert str(refused.value) == message
    assert [run.id for run in Client().list_pipeline_runs()] == [original.id]


def test_an_override_reaches_the_step_as_passed_through_replays_of_the_replay(tmp_path):
    """Overrides were recorded as plain JSON: a tuple reached the step as a list, an int
    key as a str, and a replay of the replay kept the converted values."""
    rp.tuning(folder=str(tmp_path))
    overrides = {"describe": {"n": (1, 2)}, "publish": {"n": {1: "a"}}}
    assert Client().replay(rp.tuning.last_run.id, True, overrides)[1:] == (
        "n=(1, 2)",
        "published {1: 'a'}",
    )
    replay = newest("tuning")
    assert Client().replay(replay.id, False, {"train": {"lr": 0.5}}) == (
        "score=3",
        "n=(1, 2)",
        "published {1: 'a'}",
    )


def test_the_cli_replays_and_shows_what_a_run_replays(tmp_path):
    runner = CliRunner()
    rp.tuning(folder=str(tmp_path))
    original = rp.tuning.last_run
    args = ["runs", "replay", original.name, "--skip-successful", "--override", "train.lr=0.5"]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    run = newest("tuning")
    assert result.stdout.splitlines() == [
        f"Run:    {run.name}",
        "Status: completed",
        "Result: ('score=3', 'n=3', 'published 3')",
    ]
    shown = runner.invoke(app, ["runs", "show", run.name]).stdout
    assert f"Replay of     {original.name} (overrides train.lr=0.5; finished steps reused)" in (
        shown
    )
    data = json.loads(runner.invoke(app, ["runs", "show", run.name, "-o", "json"]).stdout)
    assert data["replay_of"] == original.id
    assert (
        json.loads(runner.invoke(app, ["runs", "show", original.name, "-o", "json"]).stdout)[
            "replay_of"
        ]
        is None
    )

    bad = runner.invoke(app, ["runs", "replay", original.name, "--override", "lr=0.5"])
    assert bad.exit_code == 2
    assert "'lr' is not STEP.ARG (e.g. train.lr=0.1)." in " ".join(
        bad.stderr.replace("│", " ").split()
    )


def test_a_replay_reads_the_original_a_step_name_at_a_time_not_whole(tmp_path, monkeypatch):
    """Neither checking the overrides nor reusing the original's results reads the original
    whole (every step run with its inputs, parents and configuration: 15 KB each, a replay
    of a million-step run did not fit in memory)."""
    from branchwork.metadata import queries

    assert rp.parts(folder=str(tmp_path), n=25) == sum(range(25))
    original = rp.parts.last_run
    whole_reads: list[str] = []
    read_whole = queries._step_runs
    monkeypatch.setattr(
        queries,
        "_step_runs",
        lambda conn, run_id, *a: whole_reads.append(run_id) or read_whole(conn, run_id, *a),
    )
    assert Client().replay(original.id, True, {"part_3": {"scale": 10}}) == sum(range(25)) + 18
    run = newest("parts")
    assert statuses(run)["part_3"] == ("completed", "replayed")
    assert statuses(run)["part_4"] == ("cached", "hit")
    assert original.id not in whole_reads and run.id in whole_reads  # the spy does spy


def test_an_unknown_override_lists_at_most_twenty_invocations(tmp_path):
    rp.parts(folder=str(tmp_path), n=25)
    original = rp.parts.last_run
    first = sorted(original.steps)[:20]
    with pytest.raises(ConfigurationError) as refused:
        Client().replay(original.id, True, {"prat": {"scale": 2}})
    assert str(refused.value) == (
        f"Run '{original.name}' has no step or invocation 'prat' to override; its steps: "
        f"part, total; its invocations: {', '.join(first)}, ... (26 in all)."
    )


def test_a_replay_runs_again_what_was_invalidated_since_the_original(tmp_path):
    rp.tuning(folder=str(tmp_path))
    original = rp.tuning.last_run
    assert Client().invalidate_cache("train", "tuning") == 1
    before = rp.executions(tmp_path)

    assert Client().replay(original.id, skip_successful=True) == (
        "score=0.06",
        "n=3",
        "published 3",
    )
    assert rp.executions(tmp_path) - before == Counter(
        ["train lr=0.01", "evaluate 0.06", "publish"]
    )
    run = newest("tuning")
    assert statuses(run)["train"] == ("completed", "replayed")
    assert run.steps["train"].cache_reason == (
        f"replay of run '{original.name}': its result there was invalidated (branchwork cache "
        "invalidate)"
    )
    assert statuses(run)["load"] == ("cached", "hit")


def test_a_sidecar_started_with_a_replayed_step_runs_again_with_it(tmp_path):
    rp.watched(folder=str(tmp_path))
    original = rp.watched.last_run
    before = rp.executions(tmp_path)
    replayed = Client().replay(original.id, True, {"train": {"lr": 1.0}})
    assert replayed == (6.0, "watched")
    assert rp.executions(tmp_path) - before == Counter(["train lr=1.0", "watch"])
    run = newest("watched")
    assert statuses(run)["watch"] == ("completed", "replayed")
    assert run.steps["watch"].cache_reason == (
        f"replay of run '{original.name}': it comes after 'train', which did not reuse the "
        "original's result"
    )

"""The orchestrator conformance suite: one set of pipelines every orchestrator must run alike.

An orchestrator's tests inherit the suite and say only how to build the orchestrator:

    class TestMyOrchestratorConformance(OrchestratorConformance):
        def make_orchestrator(self) -> BaseOrchestrator:
            return MyOrchestrator()

Each inherited test runs one pipeline of `branchwork.testing.pipelines` on a stack made of
that orchestrator and the default local artifact store (override `make_artifact_store` for
a remote one, `make_store_url` for a metadata store other than SQLite; the `make_*`
methods may use fixtures: `self.request.getfixturevalue(name)`),
then checks what a user sees: the returned value, the run's status, whether its snapshot
is dynamic, the exact invocation ids, step statuses, parent edges, cache hits
and errors. It checks recorded facts only, never how or where steps ran, so in-process,
process-isolated and cluster orchestrators all run it. An isolated orchestrator may rebuild
a step's exception in another process, so errors are compared by type name and message.

Every test gets its own branchwork home (metadata store and artifacts) under `tmp_path`,
so the suite needs no conftest from this repository.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from branchwork.artifact_stores import BaseArtifactStore, LocalArtifactStore
from branchwork.artifact_stores.inline import INLINE_LIMIT, inline_uri, is_inline
from branchwork.config.home import artifacts_dir
from branchwork.exceptions import OrchestratorError, PipelineRunFailedError
from branchwork.metadata.queries import child_run_ids, get_run
from branchwork.metadata.store import dispose_engines, get_engine
from branchwork.models import PipelineRunResponse
from branchwork.orchestrators import BaseOrchestrator
from branchwork.pipelines.pipeline import Pipeline
from branchwork.stack import Stack, active_stack
from branchwork.testing import hook_and_command_pipelines as hc
from branchwork.testing import pipelines as p
from branchwork.testing import scheduling_pipelines as sp
from branchwork.testing import waiting_pipelines as wp

__all__ = ["OrchestratorConformance"]


def _ids(prefix: str, count: int) -> set[str]:
    """The ids `count` calls of step `prefix` get: prefix, prefix_2, ..., prefix_<count>."""
    return {prefix if i == 1 else f"{prefix}_{i}" for i in range(1, count + 1)}


def _statuses(run: PipelineRunResponse) -> dict[str, str]:
    return {name: str(step_run.status) for name, step_run in run.steps.items()}


def _parents(run: PipelineRunResponse, invocation_id: str) -> set[str]:
    """The invocation ids of a step run's recorded parents."""
    name_of = {step_run.id: name for name, step_run in run.steps.items()}
    return {name_of[parent] for parent in run.steps[invocation_id].parent_step_run_ids}


def _most_at_once(records: list[dict[str, Any]]) -> int:
    """The most steps running at one moment, from the (start, end) each step returned."""
    moments = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


def _log_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _assert_cause(error: BaseException, type_name: str, message: str) -> None:
    """The original exception is the cause, of its own type, wherever the loop ran (rebuilt
    from the store when it ran in another process)."""
    cause = error.__cause__
    assert cause is not None, f"{error!r} has no __cause__"
    assert type(cause).__name__ == type_name, f"cause {type(cause).__name__}: {cause}"
    assert message in str(cause)


class OrchestratorConformance:
    """Base of an orchestrator's conformance tests; see the module docstring."""

    stack: Stack
    orchestrator: BaseOrchestrator
    request: pytest.FixtureRequest  # the running test's: `make_*` may ask it for fixtures

    def make_orchestrator(self) -> BaseOrchestrator:
        """The orchestrator under test; every subclass overrides this."""
        raise NotImplementedError(
            f"{type(self).__name__} must override make_orchestrator() to return the "
            "orchestrator the conformance suite runs on."
        )

    def make_artifact_store(self) -> BaseArtifactStore:
        """Where artifacts go; the default local store unless the orchestrator needs another."""
        return LocalArtifactStore(artifacts_dir())

    def make_store_url(self) -> str | None:
        """The metadata store the runs are recorded in: None for SQLite in the test's home,
        or the URL of an empty database of this test's own (e.g. PostgreSQL)."""
        return None

    @pytest.fixture(autouse=True)
    def _conformance_stack(
        self, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Stack]:
        # The same folder the repository's conftest uses, so the two never disagree.
        monkeypatch.setenv("BRANCHWORK_HOME", str(tmp_path / "branchwork-home"))
        monkeypatch.delenv("BRANCHWORK_STORE_URL", raising=False)
        self.request = request
        store_url = self.make_store_url()
        if store_url is not None:
            monkeypatch.setenv("BRANCHWORK_STORE_URL", store_url)
        self.orchestrator = self.make_orchestrator()
        self.stack = Stack(
            f"conformance-{self.orchestrator.flavor}",
            self.orchestrator,
            self.make_artifact_store(),
        )
        yield self.stack
        dispose_engines()

    # ---- helpers ------------------------------------------------------------------------

    def run(self, pipeline: Pipeline[Any, Any], **params: Any) -> tuple[Any, PipelineRunResponse]:
        """Run a pipeline on the stack under test: its value and its recorded run."""
        with active_stack(self.stack):
            value = pipeline(**params)
        run = pipeline.last_run
        assert str(run.status) == "completed", f"{run.name}: {run.status} {run.exception_message}"
        assert run.load_output() == value, "the recorded output differs from the returned value"
        assert run.orchestrator == self.orchestrator.flavor
        assert run.orchestrator_run_id, "the run records no orchestrator run id"
        assert run.start_time is not None and run.end_time is not None
        return value, run

    def run_failing(
        self, pipeline: Pipeline[Any, Any], **params: Any
    ) -> tuple[PipelineRunFailedError, PipelineRunResponse]:
        """Run a pipeline that must fail: the error raised and the recorded run."""
        with active_stack(self.stack), pytest.raises(PipelineRunFailedError) as info:
            pipeline(**params)
        run = pipeline.last_run
        assert run.id == info.value.run_id
        assert str(run.status) == "failed"
        assert run.end_time is not None
        return info.value, run

    def require_dynamic_support(self) -> None:
        if not self.orchestrator.supports_dynamic_pipelines:
            pytest.skip(f"{type(self.orchestrator).__name__} does not run dynamic pipelines")

    # ---- dynamic support ----------------------------------------------------------------

    def test_dynamic_pipelines_run_exactly_when_supported(self) -> None:
        if not self.orchestrator.supports_dynamic_pipelines:
            with active_stack(self.stack), pytest.raises(OrchestratorError, match="dynamic"):
                p.conditional_branch(size=5)
            return
        value, run = self.run(p.conditional_branch, size=5)
        assert value == "small-5"
        assert run.snapshot.is_dynamic is True

    # ---- graph shapes -------------------------------------------------------------------

    def test_static_chain(self) -> None:
        value, run = self.run(p.static_chain, value=3)
        assert value == "value=6"
        assert run.snapshot.is_dynamic is False
        assert _statuses(run) == dict.fromkeys(("load_number", "double", "describe"), "completed")
        assert set(run.snapshot.step_configurations) == {"load_number", "double", "describe"}
        assert _parents(run, "load_number") == set()
        assert _parents(run, "double") == {"load_number"}
        assert _parents(run, "describe") == {"double"}
        assert run.steps["describe"].inputs["x"].id == run.steps["double"].output.id

    @pytest.mark.parametrize(
        ("size", "expected", "branch"),
        [(50, "small-50", "small_branch"), (200, "large-200", "large_branch")],
    )
    def test_conditional_branch_runs_only_the_chosen_branch(
        self, size: int, expected: str, branch: str
    ) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.conditional_branch, size=size)
        assert value == expected
        assert run.snapshot.is_dynamic is True
        assert _statuses(run) == {"measure": "completed", branch: "completed"}
        assert _parents(run, branch) == {"measure"}
        # dynamic steps are configured as they are discovered, linked to their step run
        configuration = run.steps[branch].configuration
        assert configuration is not None and configuration.step_run_id == run.steps[branch].id

    @pytest.mark.parametrize(("n", "total"), [(5, 0 + 1 + 4 + 9 + 16), (0, 0)])
    def test_fan_out_over_a_runtime_count_then_fan_in(self, n: int, total: int) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.fan_out_fan_in, n=n)
        assert value == total
        assert run.snapshot.is_dynamic is True
        parts = _ids("square_part", n)
        assert set(run.steps) == {"emit_count", "sum_values", *parts}
        assert set(_statuses(run).values()) == {"completed"}
        for part in parts:
            assert _parents(run, part) == {"emit_count"}
        assert _parents(run, "sum_values") == parts

    def test_nested_fan_out_merges_each_group_then_all(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.nested_fan_out, n_groups=3)
        # group g holds items 10g + j for j < g + 1
        assert value == {"groups": [0, 21, 63], "total": 84}
        assert run.snapshot.is_dynamic is True
        assert set(run.steps) == {
            "emit_count",
            *_ids("group_size", 3),
            *_ids("item_value", 6),
            *_ids("sum_values", 4),
        }
        assert set(_statuses(run).values()) == {"completed"}
        assert _parents(run, "sum_values") == {"item_value"}
        assert _parents(run, "sum_values_2") == {"item_value_2", "item_value_3"}
        assert _parents(run, "sum_values_3") == _ids("item_value", 6) - _ids("item_value", 3)
        assert _parents(run, "sum_values_4") == {"sum_values", "sum_values_2", "sum_values_3"}

    def test_loop_until_the_output_converges(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.halve_until_small, value=20.0)
        assert value == 0.625  # 20 -> 10 -> 5 -> 2.5 -> 1.25 -> 0.625
        assert run.snapshot.is_dynamic is True
        halvings = ["halve", "halve_2", "halve_3", "halve_4", "halve_5"]
        assert set(run.steps) == {"start_value", *halvings}
        assert set(_statuses(run).values()) == {"completed"}
        for previous, current in zip(["start_value", *halvings], halvings):
            assert _parents(run, current) == {previous}

    def test_loop_stops_at_its_iteration_bound(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.halve_until_small, value=20.0, max_iterations=2)
        assert value == 5.0
        assert set(run.steps) == {"start_value", "halve", "halve_2"}

    def test_multi_output_step_feeds_different_steps(self) -> None:
        value, run = self.run(p.multi_output, n=4)
        assert value == (9, "N=4")
        assert run.snapshot.is_dynamic is False
        assert _statuses(run) == dict.fromkeys(("split_number", "increment", "shout"), "completed")
        outputs = run.steps["split_number"].outputs
        assert set(outputs) == {"a", "b"}
        assert outputs["a"].load() == 8 and outputs["b"].load() == "n=4"
        assert run.steps["increment"].inputs["x"].id == outputs["a"].id
        assert run.steps["shout"].inputs["text"].id == outputs["b"].id
        assert _parents(run, "increment") == _parents(run, "shout") == {"split_number"}

    def test_map_over_a_runtime_list_with_an_unmapped_argument(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.mapped_scale, n=3, factor=10)
        assert value == [10, 20, 30]
        assert run.snapshot.is_dynamic is True
        scaled = _ids("scale", 3)
        assert set(run.steps) == {"emit_list", "emit_factor", *scaled}
        assert set(_statuses(run).values()) == {"completed"}
        for invocation_id in scaled:
            assert _parents(run, invocation_id) == {"emit_list", "emit_factor"}
            assert (
                run.steps[invocation_id].inputs["factor"].id == run.steps["emit_factor"].output.id
            )

    def test_map_over_a_list_output_in_chunks_then_unpack(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.mapped_in_chunks, n=10, chunk_size=4)
        assert value == (55, [4, 4, 2])
        assert set(run.steps) == {"emit_list", *_ids("sum_and_count", 3), "sum_values"}
        assert set(_statuses(run).values()) == {"completed"}
        assert run.steps["emit_list"].output.item_count == 10
        assert run.steps["sum_and_count_3"].outputs["sum"].load() == 9 + 10

    def test_nested_pipelines_run_as_child_runs_or_embedded(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.nested_children, n=3)
        assert value == 6 + 10 + 15
        assert set(run.steps) == {
            "summed_list",
            "summed_list_2",
            "summed_list.emit_list",
            "summed_list.sum_values",
            "sum_values",
        }
        assert set(_statuses(run).values()) == {"completed"}
        children = [get_run(get_engine(), child) for child in child_run_ids(get_engine(), run.id)]
        assert [(c.parent_invocation_id, c.snapshot.parameters) for c in children] == [
            ("summed_list", {"n": 3}),
            ("summed_list_2", {"n": 4}),
        ]
        assert {(str(c.status), c.parent_run_id) for c in children} == {("completed", run.id)}

    def test_a_big_output_is_a_file_in_the_artifact_store_and_a_small_one_inline(self) -> None:
        n = INLINE_LIMIT  # a list of n ints is over INLINE_LIMIT bytes of JSON; its sum is not
        value, run = self.run(p.summed_list, n=n)
        assert value == n * (n + 1) // 2
        big, small = run.steps["emit_list"].output, run.steps["sum_values"].output
        assert not is_inline(big.uri) and self.stack.artifact_store.exists(big.uri)
        assert big.load() == list(range(1, n + 1))
        assert small.uri == inline_uri(small.content_hash) and small.load() == value

    def test_pipeline_returns_a_dict_and_tuple_of_outputs(self) -> None:
        value, run = self.run(p.structured_return, n=2)
        assert value == {"numbers": (4, 5), "label": "n=2"}
        assert isinstance(value["numbers"], tuple)
        assert set(run.steps) == {"split_number", "increment"}

    # ---- settings and context -----------------------------------------------------------

    def test_step_with_resource_settings_runs_and_records_them(self) -> None:
        self.require_dynamic_support()
        value, run = self.run(p.with_resources, n=3)
        assert value == [100, 101, 102]
        assert set(run.steps) == {"emit_count", *_ids("one_cpu_step", 3)}
        for invocation_id in _ids("one_cpu_step", 3):
            configuration = run.steps[invocation_id].configuration
            assert configuration is not None
            assert configuration.config["resources"]["cpu_count"] == 1

    def test_get_step_context_names_each_invocation(self) -> None:
        value, run = self.run(p.step_context_ids)
        expected_ids = ["report_context", "report_context_2", "named_context"]
        assert [context["invocation_id"] for context in value] == expected_ids
        assert set(run.steps) == set(expected_ids)
        for context in value:
            step_run = run.steps[context["invocation_id"]]
            assert context["step_run_id"] == step_run.id
            assert context["step_name"] == step_run.step_name == "report_context"
            assert context["run_id"] == run.id and context["run_name"] == run.name
            assert context["pipeline_name"] == "step_context_ids"
            assert context["attempt"] == 1

    # ---- executions and caching ---------------------------------------------------------

    def test_each_invocation_runs_exactly_once(self, tmp_path: Path) -> None:
        self.require_dynamic_support()
        log = tmp_path / "executions.log"
        value, run = self.run(p.counted_fan_out, log_path=str(log), n=4)
        assert value == 1 + 2 + 3 + 4
        executions = _ids("record_execution", 4)
        assert Counter(_log_lines(log)) == dict.fromkeys(executions, 1)
        assert set(run.steps) == {"emit_count", "sum_values", *executions}

    @pytest.mark.parametrize(
        ("pipeline_name", "params", "expected"),
        [
            ("counted_chain", {"value": 1}, 3),
            ("counted_fan_out", {"n": 3}, 1 + 2 + 3),
        ],
    )
    def test_second_run_is_served_from_the_cache(
        self, tmp_path: Path, pipeline_name: str, params: dict[str, Any], expected: int
    ) -> None:
        pipeline = getattr(p, pipeline_name)
        if pipeline_name == "counted_fan_out":
            self.require_dynamic_support()
        log = tmp_path / "executions.log"
        first_value, first = self.run(pipeline, log_path=str(log), **params)
        lines_after_first = _log_lines(log)
        second_value, second = self.run(pipeline, log_path=str(log), **params)
        assert first_value == second_value == expected
        assert second.id != first.id
        assert set(second.steps) == set(first.steps)
        assert set(_statuses(first).values()) == {"completed"}
        assert set(_statuses(second).values()) == {"cached"}
        assert _log_lines(log) == lines_after_first, "a cached step ran its function again"
        for name, step_run in second.steps.items():
            assert step_run.original_step_run_id == first.steps[name].id
            assert step_run.output.id == first.steps[name].output.id

    def test_disabled_cache_runs_every_step_again(self, tmp_path: Path) -> None:
        log = tmp_path / "executions.log"
        self.run(p.counted_chain, log_path=str(log), value=1)
        value, run = self.run(
            p.counted_chain.with_options(enable_cache=False), log_path=str(log), value=1
        )
        assert value == 3
        assert _statuses(run) == dict.fromkeys(_ids("record_execution", 2), "completed")
        assert Counter(_log_lines(log)) == dict.fromkeys(_ids("record_execution", 2), 2)

    # ---- failures -----------------------------------------------------------------------

    def test_failing_step_in_a_fan_out_fails_the_run(self) -> None:
        self.require_dynamic_support()
        error, run = self.run_failing(p.fail_in_fan_out, n=4, fail_at=2)
        failed = "fragile_part_3"  # the third part, index 2
        assert error.invocation_id == failed
        assert f"'{failed}'" in str(error) and "ConformanceStepError" in str(error)
        _assert_cause(error, "ConformanceStepError", "part 2 failed on purpose")
        assert run.snapshot.is_dynamic is True
        assert run.failed_step == failed
        assert run.exception_type == "ConformanceStepError"
        assert "part 2 failed on purpose" in (run.exception_message or "")
        failed_run = run.steps[failed]
        assert str(failed_run.status) == "failed"
        assert failed_run.exception_type == "ConformanceStepError"
        assert "ConformanceStepError" in (failed_run.traceback or "")
        # what finished before the failure is kept; the merge that needed it never ran
        assert str(run.steps["emit_count"].status) == "completed"
        assert "sum_values" not in run.steps
        others = set(run.steps) - {"emit_count", failed}
        assert others <= _ids("fragile_part", 4)
        assert all(str(run.steps[name].status) == "completed" for name in others)

    def test_failing_pipeline_body_fails_the_run_and_keeps_finished_steps(self) -> None:
        self.require_dynamic_support()
        error, run = self.run_failing(p.fail_in_pipeline_body, n=2)
        assert "the pipeline function raised" in str(error)
        _assert_cause(error, "ConformancePipelineError", "cannot plan 2 parts")
        assert run.failed_step is None
        assert run.exception_type == "ConformancePipelineError"
        assert _statuses(run) == {"emit_count": "completed"}

    # ---- pipeline hooks and command steps -----------------------------------------------

    def test_pipeline_hooks_run_once_each_with_the_run(self, tmp_path: Path) -> None:
        log = tmp_path / "hooks.log"
        value, run = self.run(hc.hooked, log_path=str(log), value=2)
        assert value == 6
        assert _log_lines(log) == [
            f"on_start running {run.id}",
            f"on_success completed {run.id}",
            f"on_end completed {run.id}",
        ]

    def test_on_start_that_raises_fails_the_run_before_any_step(self, tmp_path: Path) -> None:
        log = tmp_path / "hooks.log"
        error, run = self.run_failing(hc.refused, log_path=str(log), value=2)
        _assert_cause(error, "PipelineHookError", f"run {run.name} may not start")
        assert run.exception_type == "PipelineHookError"
        assert run.steps == {}
        assert _log_lines(log) == [f"on_end failed {run.id}"]
        assert [e["exception_type"] for e in run.hook_errors] == ["ConformanceHookError"]

    def test_command_step_output_feeds_a_python_step(self) -> None:
        from branchwork.client import Client

        value, run = self.run(hc.command_then_python, prefix="n", value=5)
        assert value == "n:15"
        assert _statuses(run) == dict.fromkeys(
            ("triple", "write_result", "read_result"), "completed"
        )
        assert _parents(run, "write_result") == {"triple"}
        assert run.steps["write_result"].output.load().read_text() == "n:15"
        logs = Client().get_step_logs(run.id, "write_result")["write_result"]
        assert "wrote n:15\n" in logs and "to stderr\n" in logs
        _, second = self.run(hc.command_then_python, prefix="n", value=5)
        assert set(_statuses(second).values()) == {"cached"}

    def test_failing_command_fails_its_step_with_the_exit_code(self) -> None:
        error, run = self.run_failing(hc.failing_command)
        _assert_cause(error, "CommandFailedError", "exited with code 3")
        assert run.failed_step == "exit_code_three"

    # ---- async steps, concurrency limits, start_after -----------------------------------

    def test_async_steps_are_awaited_and_capped_by_max_concurrency(self) -> None:
        value, run = self.run(sp.async_limited, n=8)
        assert [record["item"] for record in value] == list(range(8))
        assert _most_at_once(value) <= 3  # never over; how close to it is the backend's
        assert set(_statuses(run).values()) == {"completed"}

    def test_a_named_concurrency_limit_caps_its_steps(self) -> None:
        value, _ = self.run(sp.named_limit, n=6)
        assert _most_at_once(value) <= 2

    def test_a_step_started_after_another_runs_while_it_runs(self, tmp_path: Path) -> None:
        value, run = self.run(sp.sidecar, folder=str(tmp_path))
        assert value == ("done", "saw it")  # each waited for the other: they ran at once
        assert _parents(run, "watcher") == set()
        configuration = run.steps["watcher"].configuration
        assert configuration is not None and configuration.config["start_after"] == ["watched"]

    # ---- waiting for an answer, replay --------------------------------------------------

    def test_a_run_pauses_for_an_answer_and_goes_on_with_it(self, tmp_path: Path) -> None:
        from branchwork.client import Client
        from branchwork.exceptions import RunPaused

        self.require_dynamic_support()
        log = tmp_path / "executions.log"
        with active_stack(self.stack), pytest.raises(RunPaused) as paused:
            wp.approve_release(log_path=str(log))
        run = Client().get_pipeline_run(paused.value.run_id)
        assert str(run.status) == "paused" and run.orchestrator == self.orchestrator.flavor
        assert _statuses(run) == {"build_candidate": "completed"}
        assert paused.value.question == "Release the candidate?"
        with active_stack(self.stack):
            assert Client().answer_run(run.id, True) == "released model:v2"
        run = Client().get_pipeline_run(run.id)
        assert _statuses(run) == dict.fromkeys(
            ("build_candidate", "release_candidate"), "completed"
        )
        assert _log_lines(log) == ["build_candidate"]  # taken over by the resumed run
        (question,) = Client().get_run_waits(run.id)
        assert (question.answer, question.answered_by) == (True, "answer")

    def test_replay_reruns_an_overridden_invocation_and_reuses_the_rest(
        self, tmp_path: Path
    ) -> None:
        from branchwork.client import Client

        self.require_dynamic_support()
        log = tmp_path / "executions.log"
        _, original = self.run(p.counted_fan_out, log_path=str(log), n=3)
        overrides = {"record_execution_2": {"value": 10}}
        with active_stack(self.stack):
            value = Client().replay(original.id, True, overrides)
        assert value == 1 + 11 + 3
        (run,) = [r for r in Client().list_pipeline_runs() if r.replay_of == original.id]
        assert str(run.status) == "completed"
        assert _statuses(run) == {
            "emit_count": "cached",
            "record_execution": "cached",
            "record_execution_2": "completed",
            "record_execution_3": "cached",
            "sum_values": "completed",
        }
        assert run.steps["record_execution"].original_step_run_id == (
            original.steps["record_execution"].id
        )
        assert Counter(_log_lines(log)) == {
            "record_execution": 1,
            "record_execution_2": 2,
            "record_execution_3": 1,
        }

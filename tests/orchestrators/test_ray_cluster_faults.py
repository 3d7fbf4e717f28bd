"""Faults on the two-node Ray cluster (tests/ray_cluster.py): PostgreSQL restarted while the
loop runs on the cluster, and the second node killed (raylet, agents, workers: its whole
process tree) while four parts of a fan-out run there, with and without a retry policy.

Killing a node is the last thing this session's cluster tests do: the file sorts after
test_ray_cluster.py and test_ray_cluster_conformance.py. A test that needs both nodes
again gets the second one restarted by the `node_ids` fixture (~10 s), which is also how
the test without retries brings it back before resuming its run."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")

import ray_team as rt  # noqa: E402

from branchwork import Client  # noqa: E402
from branchwork.exceptions import PipelineRunFailedError  # noqa: E402
from branchwork.metadata.runs import request_stop  # noqa: E402
from branchwork.metadata.store import get_engine  # noqa: E402
from branchwork.orchestrators.ray import RayOrchestrator  # noqa: E402
from branchwork.stack import Stack, active_stack  # noqa: E402
from ray_cluster import RayCluster, wait_for_nodes  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")

PARTS = 8


@contextlib.contextmanager
def in_background(action: Callable[[], None]) -> Iterator[None]:
    """Run `action` in a thread beside the block; its exception is raised after the block."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=120)
    if errors:
        raise errors[0]


def kill_node_b_under_running_parts(cluster: RayCluster, marker_dir: Path) -> Callable[[], None]:
    """Once every part runs (four on each node), kill the second node, then let the parts
    that are left finish."""

    def act() -> None:
        rt.wait_for(lambda: len(rt.started(str(marker_dir))) >= PARTS, 120, "every part")
        assert cluster.kill_node_b() > 0
        (marker_dir / "hold").unlink()

    return act


def parts_on(marker_dir: Path, node: str) -> set[str]:
    """The parts whose first attempt ran on `node`."""
    started = rt.started(str(marker_dir))
    return {invocation for invocation, attempt, where in started if (attempt, where) == ("1", node)}


def assert_each_part_completed_once(marker_dir: Path, run_id: str) -> None:
    """Each part's side effect (its line in completed.log) happened exactly once, and the
    store records exactly one completed attempt of it."""
    once = dict.fromkeys(["part", *(f"part_{i}" for i in range(2, PARTS + 1))], 1)
    assert Counter(invocation for invocation, _ in rt.completed(str(marker_dir))) == once
    run = Client().get_pipeline_run(run_id)
    completed = [a.name for a in run.attempts if str(a.status) == "completed"]
    assert Counter(name for name in completed if name.startswith("part")) == once


# ---- the metadata store restarts ---------------------------------------------------------


def completed_links(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM step_run WHERE status = 'completed'"
            return int(conn.execute(text(query)).scalar_one())
    except Exception:  # noqa: BLE001 - down, or not created yet
        return 0
    finally:
        engine.dispose()


def test_a_postgres_restart_while_the_loop_runs_on_the_cluster_lets_the_run_complete(
    ray_two_nodes, node_ids, postgres_server, s3_store, monkeypatch
):
    url = postgres_server.create_database(f"ray_outage_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("BRANCHWORK_STORE_URL", url)

    completed_before_restart: list[int] = []

    def restart_after_two_links() -> None:
        rt.wait_for(lambda: completed_links(url) >= 2, 120, "two links to complete")
        completed_before_restart.append(completed_links(url))
        postgres_server.restart(down_for=1.0)

    orchestrator = RayOrchestrator(address=ray_two_nodes.address, loop="cluster")
    stack = Stack("team", orchestrator, s3_store)
    with active_stack(stack), in_background(restart_after_two_links):
        assert rt.chain(8) == 8
    assert completed_before_restart[0] < 8, "the run was over before the restart"
    run = Client().get_pipeline_run(rt.chain.last_run.id)
    assert run.status == "completed"
    assert sorted(run.steps) == sorted(["link", *(f"link_{i}" for i in range(2, 9))])
    assert [(a.name, str(a.status)) for a in run.attempts if str(a.status) != "completed"] == []


# ---- the second node dies ------------------------------------------------------------------


def test_without_retries_a_lost_node_fails_the_run_naming_it_and_the_run_resumes(
    team_stack, ray_two_nodes, node_ids, tmp_path
):
    (tmp_path / "hold").touch()
    with (
        in_background(kill_node_b_under_running_parts(ray_two_nodes, tmp_path)),
        pytest.raises(PipelineRunFailedError) as info,
    ):
        rt.spread(str(tmp_path), PARTS)

    lost = parts_on(tmp_path, node_ids["node_b"])
    assert len(lost) == 4
    node_b = node_ids["node_b"]
    assert f"was lost with Ray node {node_b} (" in str(info.value)
    assert info.value.invocation_id in lost
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.status == "failed" and run.exception_type == "NodeLostError"
    failed = {name: step for name, step in run.steps.items() if str(step.status) == "failed"}
    assert set(failed) == lost, "only the parts on the lost node failed"
    for step_run in failed.values():
        assert step_run.exception_type == "NodeLostError"
        assert step_run.exception_message.startswith(
            f"The Ray task of step '{step_run.name}' was lost with Ray node {node_b} ("
        )
        assert step_run.exception_message.endswith(
            f"or resume the run once the cluster is whole: branchwork runs resume {run.name}"
        )
    every_part = {name for name in run.steps if name.startswith("part")}
    assert {name for name, _ in rt.completed(str(tmp_path))} == every_part - lost

    ray_two_nodes.start_node_b()
    wait_for_nodes(2)
    result = Client().resume_run(run.id)
    assert result["total"] == rt.spread_total(PARTS)
    assert_each_part_completed_once(tmp_path, run.id)
    resumed = Client().get_pipeline_run(run.id)
    assert resumed.status == "completed"
    assert {str(step.status) for step in resumed.steps.values()} == {"completed"}


def test_with_retries_the_parts_of_a_lost_node_run_again_on_the_head(
    ray_two_nodes, node_ids, team_stack, tmp_path
):
    (tmp_path / "hold").touch()
    with in_background(kill_node_b_under_running_parts(ray_two_nodes, tmp_path)):
        result = rt.spread_with_retries(str(tmp_path), PARTS)

    assert result["nodes"] == [node_ids["head"]], "a part completed on the lost node"
    assert result["total"] == rt.spread_total(PARTS)
    run = Client().get_pipeline_run(rt.spread_with_retries.last_run.id)
    assert_each_part_completed_once(tmp_path, run.id)
    lost = parts_on(tmp_path, node_ids["node_b"])
    assert len(lost) == 4
    assert run.status == "completed"
    attempts: dict[str, list[tuple[int, str, str | None]]] = {}
    for attempt in run.attempts:
        attempts.setdefault(attempt.name, []).append(
            (attempt.attempt, str(attempt.status), attempt.exception_type)
        )
    for name in lost:
        assert attempts[name] == [(1, "retried", "NodeLostError"), (2, "completed", None)]
    for name in set(attempts) - lost:
        assert attempts[name] == [(1, "completed", None)]


def test_a_retry_that_only_the_lost_node_could_run_is_refused_at_once(
    ray_two_nodes, node_ids, team_stack, tmp_path
):
    """The launcher checked the retry against the nodes it saw when the run started: it was
    submitted, to wait in Ray's queue for a node that was gone, and the run never ended."""

    def kill_node_b_under_the_step() -> None:
        rt.wait_for(lambda: (tmp_path / "on_node_b").exists(), 120, "the step on node b")
        assert ray_two_nodes.kill_node_b() > 0
        (run,) = Client().list_pipeline_runs(pipeline="pinned_and_retried", limit=1)
        try:
            rt.wait_for(lambda: Client().get_pipeline_run(run.id).status.is_finished, 90, "the end")
        except TimeoutError:  # the retry waits for a node that is gone: end it, and fail
            request_stop(get_engine(), run.id, "abandon")
            raise

    with (
        in_background(kill_node_b_under_the_step),
        pytest.raises(PipelineRunFailedError) as info,
    ):
        rt.pinned_and_retried(str(tmp_path))
    assert "UnsatisfiableResourcesError" in str(info.value)
    run = Client().get_pipeline_run(rt.pinned_and_retried.last_run.id)
    attempts = [(a.attempt, str(a.status), a.exception_type) for a in run.attempts]
    assert attempts == [
        (1, "retried", "NodeLostError"),
        (2, "failed", "UnsatisfiableResourcesError"),
    ]

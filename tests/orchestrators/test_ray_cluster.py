"""The Ray orchestrator on a real cluster of two nodes on this machine (tests/ray_cluster.py),
as a team runs it: connected by address with the cluster's token in the environment, the
S3 store (a real SeaweedFS server) and PostgreSQL as the metadata store (SQLite where
PostgreSQL is not installed). Steps say on which node they ran."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")

import ray_team as rt  # noqa: E402

from branchwork import Client  # noqa: E402
from branchwork.artifact_stores.inline import inline_uri  # noqa: E402
from branchwork.exceptions import PipelineRunFailedError  # noqa: E402
from free_ports import free_port  # noqa: E402
from processes import python_env  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")

HERE = Path(__file__).parent

TEAM_SCRIPT = """
import json, sys
import ray_team as rt
from branchwork.artifact_stores import FsspecArtifactStore
from branchwork.orchestrators.ray import RayOrchestrator
from branchwork.stack import Stack, active_stack

address, loop, store = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
orchestrator = RayOrchestrator(address=address, loop=loop)
with active_stack(Stack("team", orchestrator, FsspecArtifactStore(**store))):
    print(json.dumps(rt.pinned()))
"""


def run_team_script(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A team member's script, in a fresh process: only its environment says how to reach
    the cluster and the stores."""
    script = tmp_path / "team.py"
    script.write_text(TEAM_SCRIPT)
    env = {**env, "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def every_row(url: str) -> str:
    """Every row of every table of the metadata store, as text."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(
                repr(row) for table in metadata.sorted_tables for row in conn.execute(select(table))
            )
    finally:
        engine.dispose()


# ---- placement --------------------------------------------------------------------------


def test_a_fan_out_runs_on_both_nodes_and_the_fan_in_reads_every_output(
    team_stack, node_ids, s3_store, tmp_path
):
    result = rt.spread(str(tmp_path), 8)

    assert result["nodes"] == sorted(node_ids.values())
    assert result["total"] == rt.spread_total(8)
    ran_on = Counter(node for _, node in rt.completed(str(tmp_path)))
    assert ran_on == {node_ids["head"]: 4, node_ids["node_b"]: 4}
    run = Client().get_pipeline_run(rt.spread.last_run.id)
    assert run.status == "completed" and run.orchestrator == "ray"
    assert len(run.steps) == 10 and {str(s.status) for s in run.steps.values()} == {"completed"}
    parts = {step_run.id for name, step_run in run.steps.items() if name.startswith("part")}
    assert set(run.steps["gather"].parent_step_run_ids) == parts
    for name, step_run in run.steps.items():
        output = step_run.output
        if name.startswith("part"):  # 1000 numbers each: files in the bucket, read by gather
            assert output.uri.startswith(s3_store.root + "/"), name
        else:  # the count and the summary are small: kept in the metadata store
            assert output.uri == inline_uri(output.content_hash), name
    assert run.steps["emit"].output.load() == 8
    assert run.steps["gather"].output.load() == result


def test_a_step_asking_for_a_resource_of_one_node_runs_there(team_stack, node_ids):
    on_b, elsewhere = rt.pinned()
    assert on_b == [node_ids["node_b"]] * 3
    assert elsewhere in node_ids.values()
    configuration = rt.pinned.last_run.snapshot.step_configurations["on_node_b"]
    assert configuration.config["resources"]["custom_resources"] == {"node_b": 1.0}


def test_a_step_asking_for_a_resource_no_node_has_is_refused_before_anything_runs(
    team_stack, node_ids
):
    with pytest.raises(PipelineRunFailedError) as info:
        rt.nowhere()
    message = str(info.value)
    assert "Step 'on_node_c' (invocation 'on_node_c') asks for cpu_count=0.25, node_c=1" in message
    assert "no node of the Ray cluster (2 alive) can ever run it" in message
    assert "memory=" in message and "GB, node_c=0. Lower the step's ResourceSettings" in message
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.exception_type == "UnsatisfiableResourcesError" and run.steps == {}


# ---- connecting as a team --------------------------------------------------------------


def test_a_team_script_connects_by_address_and_the_token_is_in_nothing_stored(
    ray_two_nodes, node_ids, s3_server, s3_store, team_store_url, branchwork_home, tmp_path
):
    """A fresh process with the token in its environment connects by address; the loop
    runs on the cluster and records into the team's store. Then everything branchwork
    wrote is searched for the token."""
    env = {**ray_two_nodes.environment(), "BRANCHWORK_STORE_URL": team_store_url}
    store = json.dumps({"root": s3_store.root, **s3_server.store_settings()})
    out = run_team_script(tmp_path, env, ray_two_nodes.address, "cluster", store)
    assert out.returncode == 0, out.stderr
    on_b, _ = json.loads(out.stdout.splitlines()[-1])
    assert on_b == [node_ids["node_b"]] * 3

    token = ray_two_nodes.token
    run = Client().get_pipeline_run("latest")
    assert run.status == "completed" and run.orchestrator_run_id.startswith("ray-")
    logs = Client().get_step_logs(run.id)
    assert set(logs) == {"on_node_b", "on_node_b_2", "on_node_b_3", "anywhere", "placement"}
    texts = {
        "run": repr(run),  # snapshot, parameters, steps, errors
        "logs": "\n".join(logs.values()),
        "store rows": every_row(team_store_url),
        "script output": out.stdout + out.stderr,
    }
    for path in branchwork_home.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("latin-1")
    # the node ids are kept inline (in the store rows above); the placement table, over
    # INLINE_LIMIT, is the artifact in the bucket to be searched
    placement = run.steps["placement"].output
    assert placement.load().split() == [*on_b, run.steps["anywhere"].output.load()]
    objects = s3_server.filesystem().find(s3_store.root)
    assert objects and all(key.startswith(placement.uri.removeprefix("s3://")) for key in objects)
    for key in objects:
        texts[key] = s3_server.filesystem().cat_file(key).decode("latin-1")
    assert [where for where, text in texts.items() if token in text] == []


def test_an_address_nothing_answers_at_fails_at_once(tmp_path, monkeypatch):
    """A wrong port: `ray.init` waited there for ever (minutes, then killed), the run
    `initializing`."""
    home = tmp_path / "home"
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    address = f"127.0.0.1:{free_port()}"  # Ray reaches it at this node's address
    env = python_env(home)
    store = json.dumps({"root": "memory://team"})
    out = run_team_script(tmp_path, env, address, "driver", store)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "branchwork.exceptions.OrchestratorError: Could not connect to the Ray cluster at "
        f"{address}: nothing accepts connections at "
    )
    assert last.endswith("(`ray status` there prints it).") and "Connection refused" in last
    run = Client().get_pipeline_run("latest")
    assert run.status == "failed" and "nothing accepts connections" in run.exception_message


def test_a_wrong_token_fails_at_once_saying_where_the_token_goes(ray_two_nodes, tmp_path):
    wrong = "0" * 64
    env = {
        **ray_two_nodes.environment(),
        "RAY_AUTH_TOKEN": wrong,
        "RAY_gcs_server_port_wait_time_s": "1",  # Ray tries again for 20 s by default
    }
    store = json.dumps({"root": "memory://team"})
    out = run_team_script(tmp_path, env, ray_two_nodes.address, "driver", store)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "branchwork.exceptions.OrchestratorError: Could not connect to the Ray cluster at "
        f"{ray_two_nodes.address}: it refused this process's token; set RAY_AUTH_TOKEN (or "
        "RAY_AUTH_TOKEN_PATH, a file) in this process's environment to the cluster's token "
        "(`ray get-auth-token` on its head node prints it)."
    )
    assert wrong not in out.stderr and ray_two_nodes.token not in out.stderr
    run = Client().get_pipeline_run("latest")
    assert run.status == "failed" and "refused this process's token" in run.exception_message

"""Pipelines whose steps are defined in a Jupyter notebook, run by executing real `.ipynb`
files in fresh ipykernel kernels (nbclient), as a user re-running a notebook would: on
`local`, on `local_process` (the pipeline travels to its orchestration process by value),
and on Ray. The cache holds across kernel restarts for unchanged cells, and a changed cell
reruns its step and the steps whose inputs it changed, nothing else."""

from __future__ import annotations

import json
import sys
import types
import uuid
from pathlib import Path

import pytest

from branchwork.graph.code_hash import fingerprint

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the dev extra)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (the dev extra)")

CELL_TIMEOUT = 120  # seconds per cell: a hung kernel fails the test instead of blocking it
MARK = "NOTEBOOK-RESULT "

IMPORTS = """\
import json, os
from branchwork import pipeline, step
from branchwork.stack import Stack, active_stack, get_active_stack
"""
LOAD = """\
@step
def load(n: int) -> list:
    return list(range(n))
"""
SCALE = """\
def scale(value):
    return value * 2
"""
DOUBLE = """\
@step
def double(values: list) -> list:
    return [scale(v) for v in values]
"""
TOTAL = """\
@step(runtime="isolated")
def total(values: list) -> dict:
    return {"sum": sum(values), "pid": os.getpid()}
"""
PIPELINE = """\
@pipeline
def notebook_sum(n: int = 4):
    values = load(n)
    if len(values) > 100:  # uses an output: dynamic, so keys are made where the loop runs
        values = load(100)
    return total(double(values))
"""
LOCAL = """\
value = notebook_sum()
"""
LOCAL_PROCESS = """\
from branchwork.orchestrators import LocalProcessOrchestrator

with active_stack(Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)):
    value = notebook_sum()
"""
RAY_START = """\
import ray
from branchwork.orchestrators.ray import RayOrchestrator

ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
"""
RAY_RUN = """\
with active_stack(Stack("ray", RayOrchestrator(loop={loop!r}), get_active_stack().artifact_store)):
    value = notebook_sum()
"""
RAY_STOP = "ray.shutdown()"
REPORT = f"""\
steps = {{name: str(run.status) for name, run in notebook_sum.last_run.steps.items()}}
print({MARK!r} + json.dumps({{"value": value, "steps": steps, "kernel": os.getpid()}}))
"""


def notebook_cells(*run_cells: str, **edits: str) -> list[str]:
    cells = {"load": LOAD, "scale": SCALE, "double": DOUBLE, "total": TOTAL, **edits}
    return [IMPORTS, *cells.values(), PIPELINE, *run_cells]


def run_notebook(folder: Path, cells: list[str]) -> list[dict]:
    """Write the cells as a notebook and execute it in a fresh kernel; what its REPORT
    cells printed, in order."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = folder / f"pipeline-{uuid.uuid4().hex[:6]}.ipynb"
    nbformat.write(notebook, path)
    client = nbclient.NotebookClient(
        nbformat.read(path, as_version=4),
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    executed = client.execute()  # starts a kernel, runs every cell, shuts the kernel down
    return [
        json.loads(line.removeprefix(MARK))
        for cell in executed.cells
        for output in cell.outputs
        for line in output.get("text", "").splitlines()
        if line.startswith(MARK)
    ]


COMPUTED = {"load": "completed", "double": "completed", "total": "completed"}
CACHED = {"load": "cached", "double": "cached", "total": "cached"}
RECOMPUTED = {"load": "cached", "double": "completed", "total": "completed"}
TIMES_THREE = SCALE.replace("value * 2", "value * 3")


def test_a_notebook_pipeline_on_local_is_cached_across_kernels_until_a_cell_changes(tmp_path):
    (first,) = run_notebook(tmp_path, notebook_cells(LOCAL, REPORT))
    assert (first["value"]["sum"], first["steps"]) == (12, COMPUTED)

    again, same_output, changed = run_notebook(
        tmp_path,
        notebook_cells(
            LOCAL,
            REPORT,
            SCALE.replace("value * 2", "value + value"),  # a cell edited and run again
            LOCAL,
            REPORT,
            TIMES_THREE,
            LOCAL,
            REPORT,
        ),
    )
    assert (again["value"]["sum"], again["steps"]) == (12, CACHED)
    assert same_output["value"]["sum"] == 12
    assert same_output["steps"] == {"load": "cached", "double": "completed", "total": "cached"}
    assert (changed["value"]["sum"], changed["steps"]) == (18, RECOMPUTED)

    (restarted,) = run_notebook(
        tmp_path,
        notebook_cells(
            LOCAL, REPORT, load=LOAD.replace("return", "# a comment\n    return"), scale=TIMES_THREE
        ),
    )
    assert (restarted["value"]["sum"], restarted["steps"]) == (18, CACHED)


def test_a_notebook_pipeline_on_local_process_runs_isolated_steps_and_is_cached(tmp_path):
    (first,) = run_notebook(tmp_path, notebook_cells(LOCAL_PROCESS, REPORT))
    assert (first["value"]["sum"], first["steps"]) == (12, COMPUTED)
    assert first["value"]["pid"] != first["kernel"]  # the isolated step ran elsewhere

    again, changed = run_notebook(
        tmp_path, notebook_cells(LOCAL_PROCESS, REPORT, TIMES_THREE, LOCAL_PROCESS, REPORT)
    )
    assert (again["value"]["sum"], again["steps"]) == (12, CACHED)
    assert (changed["value"]["sum"], changed["steps"]) == (18, RECOMPUTED)


@pytest.mark.xdist_group("ray")
def test_a_notebook_pipeline_on_ray_with_the_loop_here_and_on_the_cluster(tmp_path):
    """One kernel, one Ray instance: the loop in the kernel, then as a Ray task (the
    pipeline sent by value, its keys made in a Ray worker), each time after a cell edit."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")
    here, edited, cluster, cluster_edited = run_notebook(
        tmp_path,
        notebook_cells(
            RAY_START,
            RAY_RUN.format(loop="driver"),
            REPORT,
            TIMES_THREE,
            RAY_RUN.format(loop="driver"),
            REPORT,
            RAY_RUN.format(loop="cluster"),
            REPORT,
            SCALE.replace("value * 2", "value * 4"),
            RAY_RUN.format(loop="cluster"),
            REPORT,
            RAY_STOP,
        ),
    )
    assert (here["value"]["sum"], here["steps"]) == (12, COMPUTED)
    assert here["value"]["pid"] != here["kernel"]  # a Ray worker ran it
    assert (edited["value"]["sum"], edited["steps"]) == (18, RECOMPUTED)
    assert cluster["value"]["sum"] == 18
    assert (cluster_edited["value"]["sum"], cluster_edited["steps"]) == (24, RECOMPUTED)


def test_code_from_a_notebook_cell_is_the_users_in_any_process(monkeypatch):
    """A step sent by value from a notebook is fingerprinted where the loop runs, whose own
    __main__ is an installed runner (or Ray worker): the helpers it calls still count."""
    cell = f"/tmp/ipykernel_0/{uuid.uuid4().hex}.py"  # as ipykernel names cells: no such file
    monkeypatch.setitem(sys.modules, "__main__", json)  # an installed module, like the runner
    digests = []
    for body in ("value * 2", "value * 3"):
        namespace = {"__name__": "__main__"}
        code = f"def scale(value):\n    return {body}\n\ndef double(v):\n    return scale(v)\n"
        exec(compile(code, cell, "exec"), namespace)
        digests.append(fingerprint(namespace["double"]))
    assert "__main__:scale" in digests[0].parts
    assert digests[0].digest != digests[1].digest


def test_a_notebook_pipeline_too_big_to_send_by_value_is_refused_saying_why(monkeypatch):
    """Its steps reach a big value defined in the notebook: refused before any process
    starts (an environment variable holds 128 KiB), with what to do."""
    from branchwork import pipeline, step
    from branchwork.exceptions import PipelineDefinitionError
    from branchwork.user_code import PIPELINE_BY_VALUE_ENV, pipeline_by_value

    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # a kernel's
    namespace = {"__name__": "__main__", "step": step, "pipeline": pipeline}
    cell = f"/tmp/ipykernel_0/{uuid.uuid4().hex}.py"
    code = (
        "TABLE = list(range({size}))\n\n"
        "@step\ndef lookup(i: int) -> int:\n    return TABLE[i]\n\n"
        "@pipeline\ndef notebook_lookup():\n    return lookup(3)\n"
    )
    exec(compile(code.format(size=10), cell, "exec"), namespace)
    assert set(pipeline_by_value(namespace["notebook_lookup"])) == {PIPELINE_BY_VALUE_ENV}

    exec(compile(code.format(size=100_000), cell, "exec"), namespace)
    with pytest.raises(PipelineDefinitionError) as refused:
        pipeline_by_value(namespace["notebook_lookup"])
    assert str(refused.value).startswith(
        "Pipeline 'notebook_lookup' is defined in a notebook, so it travels to its "
        "orchestration process by value, but it pickles to "
    )
    assert str(refused.value).endswith(
        "more than an environment variable holds: its steps reach big values defined in the "
        "notebook. Pass them as parameters or load them in a step, or move the pipeline into "
        "a module."
    )


FLAKY = """\
from branchwork import Client

@step
def part(i: int) -> int:
    if i == 1 and not os.path.exists("fixed"):  # the outage a rerun of the cell outlives
        raise ConnectionError("the service is down")
    return i * 10

@pipeline
def parts():
    return [part(i) for i in range(3)]

try:
    parts()
except Exception as error:
    failed = parts.last_run
"""
RESUME = """\
open("fixed", "w").close()
value = Client().resume_run(failed.id)
run = Client().get_pipeline_run(failed.id)
steps = {{name: str(step.status) for name, step in run.steps.items()}}
print({mark!r} + json.dumps({{"value": value, "status": str(run.status), "steps": steps}}))
"""
RESUME_UNDEFINED = """\
import subprocess, sys
cli = subprocess.run(
    [sys.executable, "-m", "branchwork.cli", "runs", "resume", failed.id],
    capture_output=True, text=True, timeout=60, env={{**os.environ, "COLUMNS": "400"}},
)
del parts
try:
    Client().resume_run(failed.id)
except Exception as error:
    found = {{"error": f"{{type(error).__name__}}: {{error}}", "cli": cli.stderr}}
    print({mark!r} + json.dumps(found))
"""


def test_a_run_a_notebook_started_resumes_from_its_kernel(tmp_path):
    """Its pipeline has no file to load again from: the kernel's definition is taken (it
    was refused: "No such file or directory: '/tmp/ipykernel_.../....py'")."""
    resumed, undefined = run_notebook(
        tmp_path,
        [
            IMPORTS,
            FLAKY,
            RESUME.format(mark=MARK),
            # a new run, failed (new code: not served the resumed run's results); then the
            # kernel forgets its pipeline
            'os.remove("fixed")\n' + FLAKY.replace("i * 10", "i * 100"),
            RESUME_UNDEFINED.format(mark=MARK),
        ],
    )
    assert resumed == {
        "value": [0, 10, 20],
        "status": "completed",
        "steps": {"part": "completed", "part_2": "completed", "part_3": "completed"},
    }
    assert undefined["error"] == (
        "PipelineDefinitionError: Pipeline 'parts' was defined in a notebook or an "
        "interactive session, and this one defines no pipeline 'parts' as `parts`: run the "
        "cell that defines it first, then resume the run from here."
    )
    # another process has no notebook to take it from, and says where to resume it
    assert "Cannot load pipeline 'parts' from '__main__:parts'" in undefined["cli"]
    assert (
        "A pipeline defined in a notebook resumes in that notebook's kernel: "
        "`Client().resume_run(...)` there." in " ".join(undefined["cli"].split())
    )

"""Loading a user's pipeline in another process: scripts with top-level calls never start
runs there (no runaway orchestration processes), and a run imports its project's modules
from wherever it is resumed. Every test runs real `python script.py` / `branchwork`
processes, bounded in time and in how many orchestration processes may live at once."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from branchwork import Client
from processes import Spawned, python, python_env

README = Path(__file__).parents[2] / "README.md"
BRANCHWORK = [str(Path(sys.executable).parent / "branchwork")]  # the installed command


def readme_first_example() -> str:
    """The README's first Python snippet, exactly as printed."""
    return re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)


def use_local_process_stack(home: Path) -> None:
    """`branchwork stack register ... --set` with a local_process orchestrator, as the
    README's terminal session does."""
    for args in (
        ["orchestrator", "register", "lp", "--flavor", "local_process"],
        ["stack", "register", "proc", "--orchestrator", "lp", "--set"],
    ):
        with Spawned([*BRANCHWORK, *args], env=python_env(home)) as done:
            code, _, err = done.wait(60)
            assert code == 0, err


def test_the_readme_example_as_printed_runs_once_on_local_process(tmp_path):
    home = tmp_path / "home"
    use_local_process_stack(home)
    script = tmp_path / "readme_example.py"
    script.write_text(readme_first_example())
    assert "__main__" not in script.read_text()  # the case that ran away: no guard
    with Spawned(python(str(script)), env=python_env(home), max_runners=2) as run:
        code, out, err = run.wait(120)
    assert not run.runaway, f"nested orchestration processes: {run.most_runners}"
    assert code == 0, err
    assert run.most_runners == 1  # the run's own orchestration process, no nested one
    assert "completed True" in out  # the snippet's own print: status, is_dynamic, steps
    runs = Client(f"sqlite:///{home / 'branchwork.db'}").list_pipeline_runs()
    assert [(r.pipeline_name, r.status, r.orchestrator) for r in runs] == [
        ("fan_out", "completed", "local_process")
    ]


TOO_EARLY = """
from branchwork import pipeline, step

@step
def one() -> int:
    return 1

@pipeline
def first():
    return one()

first()          # a top-level call, no __main__ guard, before `second` exists

@pipeline
def second():
    return one()

second()
"""


def test_a_script_that_calls_a_pipeline_before_defining_it_fails_in_one_line(tmp_path):
    home = tmp_path / "home"
    use_local_process_stack(home)
    script = tmp_path / "too_early.py"
    script.write_text(TOO_EARLY)
    with Spawned(python(str(script)), env=python_env(home), max_runners=2) as run:
        code, _, err = run.wait(120)
    assert not run.runaway and run.most_runners == 1
    assert code == 1
    store = Client(f"sqlite:///{home / 'branchwork.db'}")
    first, second = sorted(store.list_pipeline_runs(), key=lambda r: r.pipeline_name)
    assert first.status == "completed"  # its module defines it before the call
    assert second.status == "failed"
    assert second.exception_message == (
        f"Cannot load pipeline 'second' from {script}: importing it calls pipeline 'first' at "
        f"{script}:12 before defining 'second'. Put the script's top-level calls under "
        '`if __name__ == "__main__":`.'
    )
    assert second.exception_message in err


RECURSIVE = """
from branchwork import pipeline, step

@step
def again(depth: int) -> int:
    return recursive(depth + 1)   # a step that runs the pipeline it belongs to

@pipeline(enable_cache=False)
def recursive(depth: int = 0):
    return again(depth)

if __name__ == "__main__":
    recursive()
"""


def test_runs_that_start_runs_without_end_stop_at_the_depth_limit(tmp_path):
    home = tmp_path / "home"
    use_local_process_stack(home)
    script = tmp_path / "recursive.py"
    script.write_text(RECURSIVE)
    env = python_env(home, BRANCHWORK_MAX_DEPTH="3")
    with Spawned(python(str(script)), env=env, max_runners=4) as run:
        code, _, err = run.wait(180)
    assert not run.runaway, f"{run.most_runners} orchestration processes at once"
    assert code == 1
    assert run.most_runners == 3
    assert "3 levels deep (the limit, $BRANCHWORK_MAX_DEPTH, is 3)" in err
    runs = Client(f"sqlite:///{home / 'branchwork.db'}").list_pipeline_runs()
    assert len(runs) == 3 and {r.status for r in runs} == {"failed"}


HELPERS = """
def double(x):
    return 2 * x
"""

FLOW = """
import os
from branchwork import pipeline, step
from helpers import double

@step
def compute(x: int) -> int:
    if os.path.exists(os.environ["FAIL_MARKER"]):
        raise RuntimeError("the first session fails")
    return double(x)

@pipeline
def flow(x: int = 21):
    return compute(x)

if __name__ == "__main__":
    flow()
"""


@pytest.mark.parametrize("stack", ["default", "proc"])
def test_a_project_that_imports_its_neighbours_resumes_from_another_folder(tmp_path, stack):
    home = tmp_path / "home"
    if stack == "proc":
        use_local_process_stack(home)
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "helpers.py").write_text(textwrap.dedent(HELPERS))
    (project / "flow.py").write_text(FLOW)
    marker = tmp_path / "fail"
    marker.write_text("")
    env = python_env(home, FAIL_MARKER=str(marker))
    with Spawned(python("flow.py"), env=env, cwd=project) as first:
        code, _, err = first.wait(120)
    assert code == 1 and "the first session fails" in err
    marker.unlink()
    with Spawned([*BRANCHWORK, "runs", "resume", "latest"], env=env, cwd=elsewhere) as resume:
        code, out, err = resume.wait(120)
    assert code == 0, err
    assert "Result: 42" in out
    (run,) = Client(f"sqlite:///{home / 'branchwork.db'}").list_pipeline_runs()
    assert run.status == "completed"
    assert str(project) in run.snapshot.import_path
    assert run.snapshot.working_dir == str(project)

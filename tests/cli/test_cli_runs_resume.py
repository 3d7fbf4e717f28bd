"""`branchwork runs resume RUN [--accept-new-graph]`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from branchwork import Client
from processes import Spawned

PIPELINES = """
from pathlib import Path

from branchwork import pipeline, step


@step
def first(folder: str) -> int:
    with open(Path(folder, "first.log"), "a") as log:
        log.write("ran\\n")
    return 1


@step
def flaky(folder: str, x: int) -> int:
    if Path(folder, "fail").exists():
        raise RuntimeError("told to fail by the flag file")
    return x + 1


@step
def variant_a(x: int) -> int:
    return x + 10


@step
def variant_b(x: int) -> int:
    return x + 20


@pipeline
def resumable(folder: str):
    return flaky(folder, first(folder))


@pipeline
def switching(folder: str):
    x = first(folder)
    use_b = Path(folder, "use-b").exists()  # not deterministic: a resume can diverge
    second = variant_b(x, id="second") if use_b else variant_a(x, id="second")
    return flaky(folder, second)
"""


def test_resume_a_failed_run_after_removing_the_flag(cli, pipeline_file, tmp_path, assert_error):
    target = pipeline_file("resumable", PIPELINES)
    (tmp_path / "fail").touch()
    failed = cli("run", f"{target}:resumable", "-p", f"folder={tmp_path}")
    assert_error(failed, "step 'flaky'", "told to fail")
    run = Client().list_pipeline_runs(pipeline="resumable", limit=1)[0]
    assert run.status == "failed"

    (tmp_path / "fail").unlink()
    result = cli("runs", "resume", run.name)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"Run:    {run.name}", "Status: completed", "Result: 2"]
    resumed = Client().get_pipeline_run(run.id)
    assert resumed.status == "completed"
    assert resumed.steps["first"].attempt == 1  # reused, not run again
    assert resumed.steps["flaky"].attempt == 2
    assert (tmp_path / "first.log").read_text() == "ran\n"

    assert_error(cli("runs", "resume", run.name), "is completed", "only failed or stopped runs")
    assert_error(cli("runs", "resume", "no-such-run"), "No pipeline run")


def test_a_resumed_runs_duration_is_the_sum_of_its_sessions(cli, cli_json, pipeline_file, tmp_path):
    """Failed, then resumed: its duration counts both sessions' running time, not the time
    it sat failed between them (from the recorded start and end of each)."""
    target = pipeline_file("resumable", PIPELINES)
    (tmp_path / "fail").touch()
    assert cli("run", f"{target}:resumable", "-p", f"folder={tmp_path}").exit_code == 1
    failed = Client().list_pipeline_runs(pipeline="resumable", limit=1)[0]
    assert failed.start_time is not None and failed.end_time is not None
    first = failed.end_time - failed.start_time
    assert failed.duration_seconds() == first.total_seconds() > 0

    (tmp_path / "fail").unlink()
    assert cli("runs", "resume", failed.name).exit_code == 0
    resumed = Client().get_pipeline_run(failed.id)
    assert resumed.status == "completed"
    assert resumed.start_time is not None and resumed.end_time is not None
    assert resumed.start_time > failed.end_time  # the second session's own times
    both = (first + (resumed.end_time - resumed.start_time)).total_seconds()
    assert resumed.duration_seconds() == pytest.approx(both, abs=1e-6)
    assert both < (resumed.end_time - failed.start_time).total_seconds()  # the gap is left out
    for shown in (cli_json("runs", "show", failed.name), cli_json("runs", "list")[0]):
        assert shown["duration_seconds"] == pytest.approx(both, abs=1e-6)


def test_resume_that_diverges_names_the_invocation(cli, pipeline_file, tmp_path, assert_error):
    target = pipeline_file("switching", PIPELINES)
    (tmp_path / "fail").touch()
    assert cli("run", f"{target}:switching", "-p", f"folder={tmp_path}").exit_code == 1
    run = Client().list_pipeline_runs(pipeline="switching", limit=1)[0]
    (tmp_path / "fail").unlink()
    (tmp_path / "use-b").touch()

    line = assert_error(
        cli("runs", "resume", run.name),
        f"Resumed run '{run.name}'",
        "invocation 'second' now names step 'variant_b', but ran step 'variant_a'",
        "--accept-new-graph",
    )
    assert "accept_new_graph=True" not in line, line
    assert Client().get_pipeline_run(run.id).status == "failed"

    result = cli("runs", "resume", run.name, "--accept-new-graph")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == ["Status: completed", "Result: 22"]
    assert Client().get_pipeline_run(run.id).steps["second"].step_name == "variant_b"


def test_resume_in_a_fresh_process_loads_the_pipeline_from_its_file(cli, pipeline_file, tmp_path):
    target = pipeline_file("resumable", PIPELINES)
    (tmp_path / "fail").touch()
    assert cli("run", f"{target}:resumable", "-p", f"folder={tmp_path}").exit_code == 1
    run = Client().list_pipeline_runs(pipeline="resumable", limit=1)[0]
    (tmp_path / "fail").unlink()
    script = Path(sys.executable).parent / "branchwork"
    done = subprocess.run(
        [str(script), "runs", "resume", run.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"Run:    {run.name}", "Status: completed", "Result: 2"]
    assert "completed, 0 failed" in done.stderr  # plain progress: not a terminal


SCRIPT = """\
import os
from dataclasses import dataclass

from branchwork import pipeline, step


@dataclass
class Settings:
    rate: float
    name: str


@step
def configure(rate: float) -> list[Settings]:
    return [Settings(rate, "small"), Settings(rate * 10, "large")]


@step
def train(settings: list[Settings]) -> str:
    if os.path.exists(os.environ["FAIL_FLAG"]):
        raise RuntimeError("the flag is set")
    return ",".join(f"{s.name}={s.rate}" for s in settings)


@pipeline(dynamic=True)
def tuned(rate: float = 0.5):
    return train(configure(rate))


if __name__ == "__main__":
    print(tuned())
"""


def in_folder(folder: Path, **env: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run(*command)`: the command run in `folder`, with `env` added to this environment."""

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
            cwd=folder,
        )

    return run


def test_resume_of_a_script_whose_step_returns_a_class_of_the_script(tmp_path):
    """`python pipe.py` fails; `branchwork runs resume` loads the script under another name
    and reuses `configure`, whose output is of the script's own class: it used to refuse,
    saying 'configure' had different inputs. A later `python pipe.py` reuses both."""
    script = tmp_path / "pipe.py"
    script.write_text(SCRIPT)
    flag = tmp_path / "fail"
    flag.touch()
    run = in_folder(tmp_path, FAIL_FLAG=str(flag))

    assert "the flag is set" in run(sys.executable, str(script)).stderr
    flag.unlink()
    resumed = run(str(Path(sys.executable).parent / "branchwork"), "runs", "resume", "latest")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == "Result: 'small=0.5,large=5.0'"
    steps = Client().get_pipeline_run("latest").steps
    assert [(s.status, s.attempt) for s in steps.values()] == [("completed", 1), ("completed", 2)]
    again = run(sys.executable, str(script))
    assert again.stdout == "small=0.5,large=5.0\n", again.stderr
    steps = Client().get_pipeline_run("latest").steps
    assert [s.status for s in steps.values()] == ["cached", "cached"]


def test_a_driver_with_a_class_of_the_same_name_resumes_a_scripts_run(tmp_path):
    """A notebook or driver defining its own `Settings` resumed a `branchwork run` of a
    script whose step returns the script's `Settings`: the driver's class was used."""
    (tmp_path / "job.py").write_text(
        "import os\n"
        "from dataclasses import dataclass\n"
        "from branchwork import pipeline, step\n"
        "@dataclass\n"
        "class Settings:\n"
        "    name: str\n"
        "@step\n"
        "def configure() -> Settings:\n"
        "    return Settings('big')\n"
        "@step\n"
        "def use(settings: Settings) -> str:\n"
        "    if os.path.exists(os.environ['FAIL_FLAG']):\n"
        "        raise RuntimeError('the flag is set')\n"
        "    return repr(settings)\n"
        "@pipeline(dynamic=True)\n"
        "def tuned():\n"
        "    return use(configure())\n"
    )
    (tmp_path / "driver.py").write_text(
        "from dataclasses import dataclass\n"
        "from branchwork import Client\n"
        "@dataclass\n"
        "class Settings:  # the driver's own, unrelated to job.py's\n"
        "    lr: float\n"
        "print(Client().resume_run('latest'))\n"
    )
    flag = tmp_path / "fail"
    flag.touch()
    run = in_folder(tmp_path, FAIL_FLAG=str(flag))

    branchwork = str(Path(sys.executable).parent / "branchwork")
    assert "the flag is set" in run(branchwork, "run", "job.py:tuned").stderr
    flag.unlink()
    resumed = run(sys.executable, "driver.py")
    assert resumed.stdout == "Settings(name='big')\n", resumed.stderr


STATIC = """
from branchwork import pipeline, step


@step
def a() -> int:
    return 1


@step
def b() -> int:
    raise ValueError("b failed")


@pipeline
def pair():
    return [a(), b()]
"""


def edited_pair(tmp_path: Path) -> tuple[Path, Callable[..., subprocess.CompletedProcess[str]]]:
    """pair.py in a folder, and `run(*args)`: the real `branchwork` run there (each command
    in a fresh process, as a user edits the file between two)."""
    (tmp_path / "pair.py").write_text(STATIC)
    branchwork = str(Path(sys.executable).parent / "branchwork")
    run = in_folder(tmp_path)
    return tmp_path / "pair.py", lambda *args: run(branchwork, *args, "--no-progress")


def edit(path: Path, old: str, new: str) -> None:
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def test_a_static_body_that_now_raises_fails_the_resume_with_its_error(tmp_path):
    """It was taken for an empty graph: the resume recorded the run completed around its
    failed step, returned None, and the run could not be resumed again."""
    source, branchwork = edited_pair(tmp_path)
    assert "step 'b' raised ValueError: b failed" in branchwork("run", "pair.py:pair").stderr
    run = Client().list_pipeline_runs(pipeline="pair", limit=1)[0]
    edit(source, "[a(), b()]", "[a(), bb()]")  # a typo
    resumed = branchwork("runs", "resume", run.name)
    assert resumed.returncode == 1
    assert "the pipeline function raised NameError: name 'bb' is not defined" in resumed.stderr
    again = Client().get_pipeline_run(run.id)
    statuses = {name: str(step_run.status) for name, step_run in again.steps.items()}
    assert (again.status, statuses) == ("failed", {"a": "completed", "b": "failed"})
    edit(source, "bb()", "b()")
    edit(source, 'raise ValueError("b failed")', "return 2")
    resumed = branchwork("runs", "resume", run.name)
    assert resumed.stdout.splitlines()[-2:] == ["Status: completed", "Result: [1, 2]"], resumed


def test_a_resume_that_no_longer_calls_a_failed_invocation_diverges(tmp_path):
    """It completed, recording the run completed beside its failed invocation."""
    source, branchwork = edited_pair(tmp_path)
    assert branchwork("run", "pair.py:pair").returncode == 1
    run = Client().list_pipeline_runs(pipeline="pair", limit=1)[0]
    edit(source, "[a(), b()]", "[a()]")
    resumed = branchwork("runs", "resume", run.name)
    assert resumed.returncode == 1
    assert (
        f"Resumed run '{run.name}': invocation 'b' failed in an earlier session, and the "
        "pipeline no longer calls it. Resume with --accept-new-graph"
    ) in resumed.stderr
    assert Client().get_pipeline_run(run.id).status == "failed"
    resumed = branchwork("runs", "resume", run.name, "--accept-new-graph")
    assert resumed.stdout.splitlines()[-2:] == ["Status: completed", "Result: [1]"], resumed


def test_resuming_a_completed_run_is_refused_before_its_code_is_imported(tmp_path):
    """The refusal came after importing the user's module, running its top-level code."""
    source = tmp_path / "counted.py"
    source.write_text(
        f"open({str(tmp_path / 'imports.log')!r}, 'a').write('imported\\n')\n"
        + STATIC.replace('raise ValueError("b failed")', "return 2")
    )
    branchwork = str(Path(sys.executable).parent / "branchwork")
    run = in_folder(tmp_path)
    assert run(branchwork, "run", "counted.py:pair", "--no-progress").returncode == 0
    name = Client().list_pipeline_runs(pipeline="pair", limit=1)[0].name
    refused = run(branchwork, "runs", "resume", name)
    assert refused.returncode == 1
    assert f"Run '{name}' is completed: only failed or stopped runs" in refused.stderr
    assert (tmp_path / "imports.log").read_text() == "imported\n"


SEEDED = """
import os
from branchwork import pipeline, step

@step
def sample(seed: int, rows: int) -> int:
    return seed * rows

@step
def train(sample: int) -> int:
    if os.path.exists("fail"):
        raise RuntimeError("the flag is set")
    return sample + 1

@pipeline
def seeded():
    return train(sample(int(os.environ.get("SEED", "1")), 100))

if __name__ == "__main__":
    print(seeded())
"""


def test_a_resume_whose_call_has_other_inputs_names_what_differs(tmp_path):
    """The divergence named the invocation, not which of its inputs changed."""
    (tmp_path / "seeded.py").write_text(SEEDED)
    (tmp_path / "fail").touch()
    assert "the flag is set" in in_folder(tmp_path)(sys.executable, "seeded.py").stderr
    (tmp_path / "fail").unlink()
    name = Client().list_pipeline_runs(pipeline="seeded", limit=1)[0].name

    branchwork = str(Path(sys.executable).parent / "branchwork")
    resumed = in_folder(tmp_path, SEED="7")(branchwork, "runs", "resume", name)
    assert resumed.returncode == 1
    assert (
        f"Error: Resumed run '{name}': invocation 'sample' calls step 'sample' with different "
        "inputs than it did. What differs: argument 'seed' changed: 1 → 7. Resume with "
        "--accept-new-graph to run the new graph instead."
    ) in resumed.stderr
    run = Client().get_pipeline_run(name)
    assert (run.status, run.failed_step) == ("failed", "sample")
    assert {n: str(s.status) for n, s in run.steps.items()} == {
        "sample": "completed",  # its record is kept as it was
        "train": "failed",
    }


def test_a_resume_whose_body_cannot_be_traced_leaves_the_run_resumable(tmp_path):
    """It was reopened before its body was traced: a body now using a value under
    dynamic=False failed the resume and left the run `initializing` for good."""
    source, branchwork = edited_pair(tmp_path)
    edit(source, "@pipeline", "@pipeline(dynamic=False)")
    assert branchwork("run", "pair.py:pair").returncode == 1
    run = Client().list_pipeline_runs(pipeline="pair", limit=1)[0]
    edit(source, "return [a(), b()]", "return [a(), b()] if a() > 0 else []")
    resumed = branchwork("runs", "resume", run.name)
    assert resumed.returncode == 1
    assert "Pipeline 'pair' is declared dynamic=False, but" in resumed.stderr
    assert str(Client().get_pipeline_run(run.id).status) == "failed"
    edit(source, "return [a(), b()] if a() > 0 else []", "return [a(), b()]")
    edit(source, 'raise ValueError("b failed")', "return 2")
    resumed = branchwork("runs", "resume", run.name)
    assert resumed.stdout.splitlines()[-2:] == ["Status: completed", "Result: [1, 2]"], resumed


SLOW_BODY = """
import os, pathlib, time
from branchwork import pipeline, step

@step
def flaky() -> int:
    if os.path.exists("fail"):
        raise RuntimeError("the flag is set")
    return 1

@pipeline
def slow():
    if os.path.exists("slow"):
        pathlib.Path("tracing").touch()
        time.sleep(60)
    return flaky()
"""


def test_a_resume_terminated_while_its_body_is_traced_leaves_the_run_resumable(tmp_path):
    """SIGTERM (`timeout`, `docker stop`, a cancelled CI job) while the resume traced a slow
    static body left the run `initializing` for good: not lost, not resumable."""
    (tmp_path / "slow.py").write_text(SLOW_BODY)
    (tmp_path / "fail").touch()
    branchwork = str(Path(sys.executable).parent / "branchwork")
    assert in_folder(tmp_path)(branchwork, "run", "slow.py:slow").returncode == 1
    name = Client().list_pipeline_runs(pipeline="slow", limit=1)[0].name
    (tmp_path / "fail").unlink()
    (tmp_path / "slow").touch()

    with Spawned([branchwork, "runs", "resume", name], env=dict(os.environ), cwd=tmp_path) as run:
        deadline = time.monotonic() + 60
        while not (tmp_path / "tracing").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "tracing").exists(), run.wait(5)
        run.signal(signal.SIGTERM)
        returncode, _, _ = run.wait(30)
    assert returncode == -signal.SIGTERM
    assert str(Client().get_pipeline_run(name).status) == "failed"
    (tmp_path / "slow").unlink()
    resumed = in_folder(tmp_path)(branchwork, "runs", "resume", name, "--no-progress")
    assert resumed.stdout.splitlines()[-2:] == ["Status: completed", "Result: 1"], resumed


READS_A_FILE = """
import os
from branchwork import FileInput, pipeline, step

@step
def load(path: FileInput) -> int:
    return len(open(path).read())

@step
def total(n: int) -> int:
    if os.path.exists("fail"):
        raise RuntimeError("the flag is set")
    return n * 10

@pipeline
def reads_a_file():
    return total(load(FileInput("data.txt")))
"""


def test_resume_and_replay_from_another_folder_read_the_runs_files(tmp_path):
    """From another folder, `load` looked for data.txt there: it ran again and failed, and
    the resume failed the run it should have finished."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "pipe.py").write_text(READS_A_FILE)
    (project / "data.txt").write_text("12345")
    (project / "fail").touch()
    branchwork = str(Path(sys.executable).parent / "branchwork")
    assert in_folder(project)(branchwork, "run", "pipe.py:reads_a_file").returncode == 1
    (project / "fail").unlink()
    name = Client().list_pipeline_runs(pipeline="reads_a_file", limit=1)[0].name

    in_elsewhere = in_folder(elsewhere)
    resumed = in_elsewhere(branchwork, "runs", "resume", name, "--no-progress")
    assert resumed.stdout.splitlines()[-2:] == ["Status: completed", "Result: 50"], resumed
    steps = Client().get_pipeline_run(name).steps
    assert [(s.status, s.attempt) for s in steps.values()] == [("completed", 1), ("completed", 2)]

    replayed = in_elsewhere(branchwork, "runs", "replay", name, "--skip-successful")
    assert replayed.stdout.splitlines()[-1] == "Result: 50", replayed
    replay = Client().list_pipeline_runs(pipeline="reads_a_file", limit=1)[0]
    assert [str(s.status) for s in replay.steps.values()] == ["cached", "cached"]
    assert not list(elsewhere.iterdir())

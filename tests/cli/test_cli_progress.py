"""Progress while `branchwork run` waits: plain lines when not on a terminal (or in CI),
a Rich live view on one."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys

import pytest
from rich.console import Console

from branchwork import Client
from branchwork.cli.progress import Counts, PlainSink, RunProgress, live_view, progress_mode

SLOW = """
import time

from branchwork import pipeline, step


@step
def slow_count(n: int) -> int:
    time.sleep(0.6)
    return n


@step
def slow_item(i: int) -> int:
    time.sleep(0.6)
    return i


@step
def slow_total(values: list) -> int:
    time.sleep(0.6)
    return sum(values)


@pipeline
def slow_dynamic(n: int = 3):
    count = slow_count(n)
    return slow_total([slow_item(i) for i in range(count)])
"""

LINE = re.compile(
    r"^\[\s*(\d+\.\d)s\] (\S+): (\d+) discovered, (\d+) running, (\d+) cached, "
    r"(\d+) completed, (\d+) failed$"
)


def test_plain_progress_lines_when_not_on_a_terminal(cli, pipeline_file, progress_lines):
    target = pipeline_file("slow", SLOW)
    result = cli("run", f"{target}:slow_dynamic", "-p", "n=3")
    assert result.exit_code == 0, result.output
    run = Client().list_pipeline_runs(pipeline="slow_dynamic", limit=1)[0]
    # stdout keeps exactly what scripts read
    assert result.stdout.splitlines() == [f"Run:    {run.name}", "Status: completed", "Result: 3"]

    lines = progress_lines(result.stderr)
    assert lines == result.stderr.splitlines()  # nothing else on stderr
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert len(lines) >= 2, lines
    assert {m.group(2) for m in parsed if m} == {run.name}
    times = [float(m.group(1)) for m in parsed if m]
    assert all(b - a >= 0.95 for a, b in zip(times[:-1], times[1:-1])), lines  # ≤ 1 a second
    discovered = [int(m.group(3)) for m in parsed if m]
    assert discovered == sorted(discovered) and discovered[0] < 5  # grows as steps appear
    assert lines[-1].endswith(": 5 discovered, 0 running, 0 cached, 5 completed, 0 failed")
    counts = [m.groups()[2:] for m in parsed if m]
    assert len(set(counts)) == len(counts)  # a line only when the counts change


def test_no_progress_prints_none(cli, pipeline_file):
    target = pipeline_file("slow", SLOW)
    result = cli("run", f"{target}:slow_dynamic", "-p", "n=1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_cached_rerun_counts_cached_steps(cli, pipeline_file, progress_lines):
    target = pipeline_file("slow", SLOW)
    assert cli("run", f"{target}:slow_dynamic", "-p", "n=1", "--no-progress").exit_code == 0
    result = cli("run", f"{target}:slow_dynamic", "-p", "n=1")
    assert result.exit_code == 0, result.output
    assert progress_lines(result.stderr)[-1].endswith(
        ": 3 discovered, 0 running, 3 cached, 0 completed, 0 failed"
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress(*, discovered=1, running=0, completed=0, failed=0, status="running"):
    counts = Counts(discovered, running, 0, completed, failed)
    return RunProgress("id", "run-1", status, counts)


def test_plain_sink_prints_changes_at_most_once_a_second():
    clock, out = FakeClock(), io.StringIO()
    sink = PlainSink(out, clock=clock)
    sink.update(None)  # the run is not created yet
    sink.update(progress(discovered=0))  # created, nothing to count yet
    sink.update(progress(running=1))
    clock.now += 0.3
    sink.update(progress(running=1))  # unchanged
    sink.update(progress(discovered=4, running=4))  # changed, but too soon
    clock.now += 0.8
    sink.update(progress(discovered=4, running=4))  # 1.1 s after the last line: printed now
    clock.now += 0.2
    sink.finish(progress(discovered=4, completed=4, status="completed"))  # the end, always
    assert out.getvalue().splitlines() == [
        "[   0.0s] run-1: 1 discovered, 1 running, 0 cached, 0 completed, 0 failed",
        "[   1.1s] run-1: 4 discovered, 4 running, 0 cached, 0 completed, 0 failed",
        "[   1.3s] run-1: 4 discovered, 0 running, 0 cached, 4 completed, 0 failed",
    ]
    sink.finish(progress(discovered=4, completed=4, status="completed"))
    assert len(out.getvalue().splitlines()) == 3  # the same counts are not repeated


def test_progress_mode(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert progress_mode(True, terminal=True) == "live"
    assert progress_mode(True, terminal=False) == "plain"
    assert progress_mode(False, terminal=True) == "off"
    assert progress_mode(True) == "plain"  # pytest captures stdout: not a terminal
    monkeypatch.setenv("CI", "true")
    assert progress_mode(True, terminal=True) == "plain"
    monkeypatch.setenv("CI", "0")
    assert progress_mode(True, terminal=True) == "live"


def test_live_view_shows_the_counts_and_a_bar():
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(live_view(progress(discovered=7, running=2, completed=4, failed=1), "p", 65))
    text = console.file.getvalue()
    assert "Run run-1  running  01:05" in text
    assert re.search(r"7 discovered\s+2 running\s+0 cached\s+4 completed\s+1 failed", text)
    assert "5/7 finished" in text
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(live_view(None, "my_pipeline", 2))
    assert "Starting pipeline my_pipeline" in console.file.getvalue()


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_live_view_on_a_real_terminal(pipeline_file, tmp_path):
    target = pipeline_file("slow", SLOW)
    script = tmp_path / "bw.sh"
    branchwork = os.path.join(os.path.dirname(sys.executable), "branchwork")
    script.write_text(f"exec {branchwork} run {target}:slow_dynamic -p n=2\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    done = subprocess.run(
        ["script", "-qec", f"bash {script}", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.stdout)
    assert "discovered" in plain and "finished" in plain  # the live view was drawn
    assert "4/4 finished" in plain
    assert re.search(r"Run:\s+slow_dynamic-\S+\s+Status: completed\s+Result: 1", plain), plain

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
from rich.spinner import Spinner

from branchwork import Client, pipeline, step
from branchwork.cli.progress import (
    Counts,
    LiveSink,
    PlainSink,
    RunProgress,
    live_view,
    progress_mode,
    read_progress,
)
from branchwork.metadata.store import get_engine

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


def progress(*, discovered=1, running=0, completed=0, failed=0, status="running", static=True):
    counts = Counts(discovered, running, 0, completed, failed)
    return RunProgress("id", "run-1", status, counts, total_known=static)


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
    view = live_view(
        progress(discovered=7, running=2, completed=4, failed=1), "p", 65, Spinner("dots")
    )
    console.print(view)
    text = console.file.getvalue()
    assert "Run run-1  running  01:05" in text
    assert re.search(r"7 discovered\s+2 running\s+0 cached\s+4 completed\s+1 failed", text)
    assert "5/7 finished" in text
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(live_view(None, "my_pipeline", 2, Spinner("dots")))
    assert "Starting pipeline my_pipeline" in console.file.getvalue()


SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # Rich's "dots"


def recording_console(clock: FakeClock, color: bool = False) -> Console:
    return Console(
        file=io.StringIO(),
        record=True,
        width=100,
        get_time=clock,
        force_terminal=color,
        color_system="truecolor" if color else None,
    )


def frame(console: Console, view: object, styles: bool = False) -> list[str]:
    """What one refresh of the live view draws."""
    console.print(view)
    return console.export_text(clear=True, styles=styles).splitlines()


def test_the_spinner_moves_from_one_reading_to_the_next():
    clock = FakeClock()
    console = recording_console(clock)
    spinner = Spinner("dots")
    reading = progress(discovered=4, running=2, completed=2)
    first = frame(console, live_view(reading, "p", 5, spinner))
    clock.now += 0.25  # the watcher's interval
    second = frame(console, live_view(reading, "p", 5, spinner))
    assert first[0] == "⠋ Run run-1  running  00:05"
    assert second[0] == "⠸ Run run-1  running  00:05"  # 3 frames of 80 ms later
    assert first[1:] == second[1:]


def test_a_running_dynamic_run_says_its_total_is_still_growing():
    clock = FakeClock()
    console = recording_console(clock, color=True)
    reading = progress(discovered=38, running=1, completed=37, static=False)
    first = frame(console, live_view(reading, "p", 5.0, Spinner("dots")), styles=True)
    later = frame(console, live_view(reading, "p", 5.5, Spinner("dots")), styles=True)
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in first]
    assert plain[-1].endswith("37 finished of 38 found so far")
    assert "37/38" not in "\n".join(plain)
    assert first[-1] != later[-1]  # a pulsing bar, not one stuck at 97 %

    done = progress(discovered=38, completed=38, status="completed", static=False)
    finished = frame(console, live_view(done, "p", 6, Spinner("dots")))
    assert finished[-1].endswith("38/38 finished")


def test_a_static_runs_bar_fills_up():
    clock = FakeClock()
    console = recording_console(clock, color=True)
    reading = progress(discovered=38, running=1, completed=37)
    first = frame(console, live_view(reading, "p", 5.0, Spinner("dots")), styles=True)
    later = frame(console, live_view(reading, "p", 5.5, Spinner("dots")), styles=True)
    assert re.sub(r"\x1b\[[0-9;]*m", "", first[-1]).endswith("37/38 finished")
    assert first[-1] == later[-1]


def test_the_live_sink_keeps_one_spinner_turning():
    clock = FakeClock()
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None, get_time=clock)
    sink = LiveSink(console, "p", clock=clock)
    for _ in range(3):
        clock.now += 0.25
        sink.update(progress(discovered=3, running=3, static=False))
    sink.finish(progress(discovered=3, completed=3, status="completed", static=False))
    drawn = re.findall(f"([{SPINNER_FRAMES}]) Run run-1  running  00:00", out.getvalue())
    assert drawn == ["⠋", "⠸", "⠦"]  # 3 frames (of 80 ms) further at every reading
    assert "✓ Run run-1  completed  00:00" in out.getvalue()
    assert "3/3 finished" in out.getvalue()


@step
def progress_numbers(n: int) -> list:
    return list(range(n))


@step
def progress_sum(values: list) -> int:
    return sum(values)


@pipeline
def progress_static(n: int = 3):
    return progress_sum(progress_numbers(n))


@pipeline
def progress_dynamic(n: int = 3):
    values = progress_numbers(n)
    return progress_sum(values) if len(values) > 1 else 0


def test_the_store_tells_whether_the_total_is_known():
    progress_static()
    progress_dynamic()
    engine = get_engine()
    static = read_progress(engine, Client().get_pipeline_run("latest:progress_static").id)
    dynamic = read_progress(engine, Client().get_pipeline_run("latest:progress_dynamic").id)
    assert static is not None and static.total_known
    assert dynamic is not None and not dynamic.total_known


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

"""Progress of a run while `branchwork run` / `runs resume` wait for it, read from the store.

The pipeline runs in the command's main thread, exactly as a script calling it would, so
Ctrl-C reaches it there (the local loop records the run STOPPED; a local_process
submission forwards SIGTERM to its orchestration process). A watcher thread reads the run's
step runs from the metadata store four times a second and hands the counts to a sink:

- on a terminal (stdout and stderr are TTYs, $CI unset): a Rich live view on stdout with a
  spinner, the counts — discovered / running / cached / completed / failed — and a bar. A
  static run's total is known from its snapshot, so its bar fills; a running dynamic run's
  total is only what it discovered so far (it would sit near 100 % all along), so its bar
  pulses and says "37 finished of 38 found so far" until the run ends;
- otherwise: plain lines on stderr, one when the counts change but at most one a second,
  plus the final counts; stdout keeps only the run, status and result lines for scripts.

Reading the store (and not the loop's memory) is what makes this work the same for every
orchestrator, the in-process one and those whose loop runs in another process. The store
knows an invocation once it is launched or cached (static runs: once the run is created, from
the snapshot), so "discovered" counts those; steps a dynamic loop holds back, waiting for
inputs, appear when they launch. The run is the one of this pipeline created after the
command started (or, for resume, the run itself).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from branchwork.cli.render import STATUS_STYLES

INTERVAL = 0.25  # seconds between reads of the store
PLAIN_INTERVAL = 1.0  # at most one plain line per this many seconds


@dataclass(frozen=True)
class Counts:
    discovered: int = 0
    running: int = 0
    cached: int = 0
    completed: int = 0
    failed: int = 0
    stopped: int = 0
    paused: int = 0  # invocations whose child run waits for an answer

    @property
    def finished(self) -> int:
        return self.cached + self.completed + self.failed + self.stopped + self.paused

    def fields(self) -> list[tuple[str, int]]:
        shown = [
            ("discovered", self.discovered),
            ("running", self.running),
            ("cached", self.cached),
            ("completed", self.completed),
            ("failed", self.failed),
        ]
        rare = [("stopped", self.stopped), ("paused", self.paused)]
        return shown + [(label, count) for label, count in rare if count]

    def line(self) -> str:
        return ", ".join(f"{count} {label}" for label, count in self.fields())


@dataclass(frozen=True)
class RunProgress:
    run_id: str
    run_name: str
    status: str
    counts: Counts
    total_known: bool  # the snapshot lists every step (static): `discovered` is the total

    @property
    def done(self) -> bool:
        return self.status not in ("initializing", "running")


# ---- reading the store ---------------------------------------------------------------------


def read_progress(engine: Any, run_id: str) -> RunProgress | None:
    """The run's status and step counts (latest attempt of each invocation)."""
    from branchwork.metadata.queries import run_progress

    found = run_progress(engine, run_id)
    if found is None:
        return None
    name, status, planned, latest = found
    statuses = list(latest.values())

    def count(*names: str) -> int:
        return sum(1 for status in statuses if status in names)

    counts = Counts(
        discovered=len(planned | set(latest)),
        running=count("running", "retried", "initializing"),
        cached=count("cached"),
        completed=count("completed"),
        failed=count("failed"),
        stopped=count("stopped"),
        paused=count("paused"),
    )
    return RunProgress(run_id, name, status, counts, total_known=bool(planned))


class RunLocator:
    """Finds the run to watch: a known one, or the first run of `pipeline_name` created after
    this object was (runs newer than the ones it saw then)."""

    def __init__(self, engine: Any, pipeline_name: str | None, run_id: str | None = None) -> None:
        from branchwork.metadata.queries import list_run_ids

        self._engine = engine
        self._pipeline = pipeline_name
        self.run_id = run_id
        self._seen: set[str] = set()
        if run_id is None:
            self._seen = set(list_run_ids(engine, pipeline_name, 20))

    def __call__(self) -> str | None:
        if self.run_id is None:
            from branchwork.metadata.queries import list_run_ids

            fresh = [
                i for i in list_run_ids(self._engine, self._pipeline, 20) if i not in self._seen
            ]
            if fresh:
                self.run_id = fresh[-1]  # the oldest of the new ones: started first, ours
        return self.run_id


# ---- sinks ---------------------------------------------------------------------------------


class PlainSink:
    """A line on `stream` when the counts change, at most one per `interval` seconds."""

    def __init__(
        self,
        stream: IO[str],
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._printed: tuple[str, Counts] | None = None
        self._printed_at: float | None = None

    def _write(self, progress: RunProgress) -> None:
        elapsed = self._clock() - self._start
        self._stream.write(f"[{elapsed:6.1f}s] {progress.run_name}: {progress.counts.line()}\n")
        self._stream.flush()
        self._printed = (progress.status, progress.counts)
        self._printed_at = self._clock()

    def update(self, progress: RunProgress | None) -> None:
        if progress is None or not progress.counts.discovered:
            return  # nothing to count yet
        if self._printed == (progress.status, progress.counts):
            return
        if self._printed_at is None or self._clock() - self._printed_at >= self._interval:
            self._write(progress)

    def finish(self, progress: RunProgress | None) -> None:
        if progress is not None and (self._printed or ("", None))[1] != progress.counts:
            self._write(progress)


def live_view(
    progress: RunProgress | None, pipeline_name: str, elapsed: float, spinner: Spinner
) -> Any:
    """What the live view shows for one reading of the store. `spinner` is the view's one
    spinner, given its new text here: its frame follows the time since it was first drawn,
    so a spinner made anew for every reading would never move."""
    clock = f"{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}"
    if progress is None:
        spinner.update(text=Text(f"Starting pipeline {pipeline_name} … {clock}"))
        return spinner
    head = Text.assemble(
        ("Run ", "bold"),
        progress.run_name,
        "  ",
        (progress.status, STATUS_STYLES.get(progress.status, "")),
        f"  {clock}",
    )
    counts = Table.grid(padding=(0, 3))
    fields = progress.counts.fields()
    for _ in fields:
        counts.add_column(justify="right")
    styles = {"running": "yellow", "discovered": "bold"}
    counts.add_row(
        *(
            Text.assemble(
                (str(count), STATUS_STYLES.get(label, styles.get(label, ""))), f" {label}"
            )
            for label, count in fields
        )
    )
    bar = _bar(progress, elapsed)
    if progress.done:
        mark = Text("✓ " if progress.status == "completed" else "✗ ", style="bold")
        return Group(mark + head, counts, bar)
    spinner.update(text=head)
    return Group(spinner, counts, bar)


def _bar(progress: RunProgress, elapsed: float) -> Table:
    """A filling bar when the total is known (a static run, or any finished one), else a
    pulsing one that says the total is still growing."""
    finished, found = progress.counts.finished, progress.counts.discovered
    if progress.total_known or progress.done:
        bar = ProgressBar(total=max(found, 1), completed=finished, width=40)
        label = f"{finished}/{found} finished"
    else:
        bar = ProgressBar(total=None, width=40, animation_time=elapsed)
        label = f"{finished} finished of {found} found so far"
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=40)
    grid.add_column()
    grid.add_row(bar, Text(label, style="dim"))
    return grid


class LiveSink:
    """A Rich live view, refreshed by the watcher (no refresh thread of Rich's own)."""

    def __init__(
        self, console: Console, pipeline_name: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pipeline = pipeline_name
        self._clock = clock
        self._start = clock()
        self._spinner = Spinner("dots")
        self._live = Live(
            live_view(None, pipeline_name, 0, self._spinner),
            console=console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()

    def _show(self, progress: RunProgress | None) -> None:
        view = live_view(progress, self._pipeline, self._clock() - self._start, self._spinner)
        self._live.update(view, refresh=True)

    def update(self, progress: RunProgress | None) -> None:
        self._show(progress)

    def finish(self, progress: RunProgress | None) -> None:
        if progress is None:  # it never started (a bad parameter, say): leave no spinner
            self._live.update(Text(""), refresh=True)
        else:
            self._show(progress)
        self._live.stop()


# ---- the watcher ---------------------------------------------------------------------------


def on_terminal() -> bool:
    """Whether both stdout and stderr are terminals (as Rich sees stdout, too)."""
    return Console().is_terminal and sys.stdout.isatty() and sys.stderr.isatty()


def progress_mode(enabled: bool, terminal: bool | None = None) -> str:
    """The progress to show: off, live (on a terminal) or plain (a pipe, a file, $CI set)."""
    if not enabled:
        return "off"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return "plain"
    return "live" if (on_terminal() if terminal is None else terminal) else "plain"


class Watcher:
    """Reads the store every INTERVAL seconds in a thread and feeds a sink, while the block
    runs; a last reading when it ends (also when the run failed)."""

    def __init__(self, locate: Callable[[], str | None], sink: Any, engine: Any) -> None:
        self._locate = locate
        self._sink = sink
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="branchwork-progress", daemon=True)

    def _read(self) -> RunProgress | None:
        try:
            run_id = self._locate()
            return None if run_id is None else read_progress(self._engine, run_id)
        except Exception:  # progress is best effort: a busy store must not break the run
            return None

    def _watch(self) -> None:
        while not self._stop.wait(INTERVAL):
            progress = self._read()
            if progress is not None or isinstance(self._sink, LiveSink):
                self._sink.update(progress)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sink.finish(self._read())


def watch(mode: str, locate: Callable[[], str | None], pipeline_name: str, engine: Any) -> Any:
    """A context manager showing progress in `mode` ("off": nothing)."""
    from contextlib import nullcontext

    if mode == "off":
        return nullcontext()
    if mode == "live":
        sink: Any = LiveSink(Console(highlight=False), pipeline_name)
    else:
        sink = PlainSink(sys.stderr)
    return Watcher(locate, sink, engine)

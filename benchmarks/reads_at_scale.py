"""Reading a run of a million step runs with the CLI: `runs list`, `runs show` (table and
JSON), `runs graph`, `runs logs` (the run's, one invocation's), each in a fresh process of
the real `branchwork` command.

The store (SQLite, in a temporary BRANCHWORK_HOME) holds one finished dynamic run of N step
runs (default 1 000 000), written straight into the tables (SQLAlchemy Core, executemany in
chunks, one transaction) with the rows the recorder writes for `load -> work x W -> total`
with caching on: each step run with its configuration (`value_inputs: ["load"]` for the
works), cache key parts and verdict, its output's artifact version and link; `total` with
every work as a parent and an input (and a configuration naming them all); and the run's two
graph edges (load -> work, a value read; work -> total). Of the works, `--retried` needed a
second attempt (the first recorded `retried`, with its error and traceback) and `--failed`
failed on their second attempt too; the body skipped those, so the run completed. Each of
those attempts logged a line, as did `total`. As a run's session does when it ends, the
run's figures per step name are then kept (`metadata.run_figures`); `--drop-figures` forgets
them, to time the reads of a run without them (one still running, or recorded before them).
Durations: about 4 ms each, one in a thousand ten times that.

    python benchmarks/reads_at_scale.py                       # N = 1 000 000
    python benchmarks/reads_at_scale.py 100000 --repeat 5
    python benchmarks/reads_at_scale.py --home /tmp/big       # build it there once, reuse it
    python benchmarks/reads_at_scale.py --all                 # also `runs show RUN --all`
    python benchmarks/reads_at_scale.py --home /tmp/big --drop-figures

Each command's wall time (median and range of `--repeat` fresh processes), its peak RSS and
how many lines it printed, after the floor every command pays: `runs list` of an empty store
(starting Python, importing the CLI and SQLAlchemy, opening the store). A command that takes
longer than `--timeout` is stopped and reported as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

BRANCHWORK = str(Path(sys.executable).parent / "branchwork")
CHUNK = 20_000
SPACING = 0.0009  # seconds between the starts of two works (two workers)
PIPELINE = "fan_out"
RUN_NAME = "fan_out-big"
MODULE = "fan_out_module"
CACHE_REASON = "first run of this pipeline"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/branchwork/src/branchwork/runtime/step_execution.py", line 251, in _run\n'
    "    returned = request.step.func(*bound.args, **bound.kwargs)\n"
    '  File "/srv/pipelines/fan_out.py", line 14, in work\n'
    '    raise ValueError(f"flaky partition {i}")\n'
    "ValueError: flaky partition {i}\n"
)


# ---- the store -----------------------------------------------------------------------------


@dataclass
class Shape:
    """How many of each kind of step run: N = 2 + works + retried + failed attempts."""

    steps: int
    retried: int
    failed: int

    @property
    def works(self) -> int:
        return self.steps - 2 - self.retried - self.failed


def code_hash(step_name: str) -> str:
    return hashlib.sha256(step_name.encode()).hexdigest()


def step_config(step_name: str, inputs: dict[str, Any], value_inputs: list[str]) -> str:
    config: dict[str, Any] = {
        "step": step_name,
        "source": f"{MODULE}:{step_name}",
        "resources": {"cpu_count": None, "gpu_count": None, "memory": None},
        "retry": {"max_retries": 1, "delay": 0.0, "backoff": 1.0} if step_name == "work" else None,
        "outputs": ["output"],
        "inputs": inputs,
        "after": [],
        "enable_cache": True,
    }
    if value_inputs:
        config["value_inputs"] = value_inputs
    return json.dumps(config)


class Writer:
    """Makes the rows of one run as the recorder would and inserts them in chunks."""

    def __init__(self, conn: Any, run_id: str, start: datetime) -> None:
        from branchwork.ids import new_id
        from branchwork.metadata import schema
        from branchwork.metadata.recorder import artifact_id

        self.conn = conn
        self.run_id = run_id
        self.start = start
        self.new_id = new_id
        self.schema = schema
        self.artifact_id = artifact_id
        self.versions: dict[str, int] = {}
        self.pending: dict[str, list[dict[str, Any]]] = {}

    def log(self, step_run_id: str, text: str) -> None:
        self.add("step_log", {"step_run_id": step_run_id, "text": text, "run_id": self.run_id})

    def add(self, table: str, row: dict[str, Any]) -> None:
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Insert what is pending, parents before the rows that refer to them."""
        for table in (
            "step_run",
            "step_configuration",
            "artifact_version",
            "step_run_output_artifact",
            "step_run_input_artifact",
            "step_run_parent",
            "step_log",
        ):
            rows = self.pending.pop(table, [])
            if rows:
                self.conn.execute(getattr(self.schema, table).insert(), rows)

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def step_run(
        self,
        name: str,
        step_name: str,
        attempt: int,
        status: str,
        span: tuple[float, float],
        arguments: dict[str, Any],
        config: str,
        error: str | None = None,
    ) -> str:
        """One attempt with its configuration, and its output when it completed."""
        step_run_id = self.new_id()
        code = code_hash(step_name)
        parts = {
            "arguments": {k: f"int:{v}" for k, v in arguments.items()},
            "code": code,
            "extra": None,
            "files": {},
            "libraries": {},
            "outputs": "91bc1fc38729d5b7",
        }
        parts_text = json.dumps(parts, separators=(",", ":"))
        self.add(
            "step_run",
            {
                "id": step_run_id,
                "run_id": self.run_id,
                "name": name,
                "step_name": step_name,
                "attempt": attempt,
                "status": status,
                "start_time": self.at(span[0]),
                "end_time": self.at(span[1]),
                "cache_key": "v3" + hashlib.sha256(parts_text.encode()).hexdigest()[:62],
                "code_hash": code,
                "original_step_run_id": None,
                "exception_type": "ValueError" if error else None,
                "exception_message": error,
                "traceback": TRACEBACK.replace("{i}", error.split()[-1]) if error else None,
                "run_metadata": None,
                "cache_parts": parts_text,
                "cache_verdict": "miss",
                "cache_reason": CACHE_REASON,
                "cache_invalidated": False,
            },
        )
        self.add(
            "step_configuration",
            {
                "id": self.new_id(),
                "name": name,
                "step_name": step_name,
                "config": config,
                "snapshot_id": None,
                "step_run_id": step_run_id,
            },
        )
        return step_run_id

    def output(self, step_run_id: str, step_name: str, value: int, created: float) -> str:
        """A completed step run's output: a new version of `fan_out::STEP::output`."""
        artifact = f"{PIPELINE}::{step_name}::output"
        number = self.versions[artifact] = self.versions.get(artifact, 0) + 1
        version_id = self.new_id()
        self.add(
            "artifact_version",
            {
                "id": version_id,
                "artifact_id": self.artifact_id(artifact),
                "uri": f"/srv/artifacts/{step_name}_output/{self.new_id()}",
                "data_type": "builtins.int",
                "materializer": "branchwork.materializers.builtin:BuiltinMaterializer",
                "content_hash": hashlib.sha256(str(value).encode()).hexdigest(),
                "producer_step_run_id": step_run_id,
                "created": self.at(created),
                "version": number,
                "preview": json.dumps({"text": str(value)}),
                "item_count": None,
            },
        )
        self.add(
            "step_run_output_artifact",
            {"step_run_id": step_run_id, "name": "output", "artifact_version_id": version_id},
        )
        return version_id


def work_durations(count: int) -> Iterator[float]:
    """About 4 ms each; one in a thousand a straggler ten times slower."""
    rng = random.Random(7)
    for _ in range(count):
        taken = rng.lognormvariate(-5.5, 0.3)
        yield taken * 10 if rng.random() < 0.001 else taken


def write_run(home: Path, shape: Shape) -> None:
    """Record the run of `shape` in the store of `home`."""
    os.environ["BRANCHWORK_HOME"] = str(home)
    from branchwork.ids import new_id
    from branchwork.metadata import schema
    from branchwork.metadata.recorder import artifact_id
    from branchwork.metadata.run_groups import keep_figures
    from branchwork.metadata.store import get_engine, write_transaction

    engine = get_engine()
    start = datetime(2026, 12, 1, 9, 0, 0)
    pipeline_id, snapshot_id, run_id = new_id(), new_id(), new_id()
    rng = random.Random(11)
    chosen = rng.sample(range(1, shape.works), shape.retried + shape.failed)
    flaky, broken = set(chosen[: shape.retried]), set(chosen[shape.retried :])
    with write_transaction(engine) as conn:
        conn.execute(
            schema.pipeline.insert(), [{"id": pipeline_id, "name": PIPELINE, "created": start}]
        )
        conn.execute(
            schema.pipeline_snapshot.insert(),
            [
                {
                    "id": snapshot_id,
                    "pipeline_id": pipeline_id,
                    "is_dynamic": True,
                    "source": f"{MODULE}:{PIPELINE}",
                    "source_file": "/srv/pipelines/fan_out.py",
                    "parameters": json.dumps({"n": shape.works}),
                    "spec": json.dumps(
                        {"enable_cache": True, "failure_mode": "continue_on_failure"}
                    ),
                    "created": start,
                    "import_path": json.dumps(["/srv/pipelines"]),
                    "working_dir": "/srv/pipelines",
                }
            ],
        )
        conn.execute(
            schema.pipeline_run.insert(),
            [
                {
                    "id": run_id,
                    "name": RUN_NAME,
                    "pipeline_id": pipeline_id,
                    "snapshot_id": snapshot_id,
                    "status": "completed",
                    "orchestrator": "local",
                    "orchestrator_run_id": f"local-{run_id}",
                    "parameters": json.dumps({"n": shape.works}),
                    "created": start,
                    "start_time": start,
                    "stack": "default",
                    "output_structure": json.dumps({"$out": 0}),
                }
            ],
        )
        conn.execute(
            schema.artifact.insert(),
            [
                {"id": artifact_id(name), "name": name, "created": start, "version_count": 0}
                for name in (f"{PIPELINE}::{step}::output" for step in ("load", "work", "total"))
            ],
        )
        conn.execute(
            schema.code_fingerprint.insert(),
            [
                {"digest": code_hash(name), "parts": json.dumps({f"{MODULE}:{name}": "0" * 16})}
                for name in ("load", "work", "total")
            ],
        )
        writer = Writer(conn, run_id, start)
        load_config = step_config("load", {"n": shape.works}, [])
        load = writer.step_run(
            "load", "load", 1, "completed", (0.0, 0.01), {"n": shape.works}, load_config
        )
        writer.output(load, "load", shape.works, 0.01)
        clock = 0.02
        completed: list[tuple[str, str, str]] = []  # (invocation, step run id, version id)
        durations = work_durations(shape.works + shape.retried + shape.failed)
        for index in range(shape.works):
            name = "work" if index == 0 else f"work_{index + 1}"
            config = step_config("work", {"i": index}, ["load"])
            begin, clock = clock, clock + SPACING
            end = begin + next(durations)
            if index in flaky or index in broken:
                error = f"flaky partition {index}"
                first = writer.step_run(
                    name, "work", 1, "retried", (begin, end), {"i": index}, config, error
                )
                writer.log(first, f"{error}: try 1\n")
                begin, end = end + 0.001, end + 0.001 + next(durations)
                if index in broken:
                    second = writer.step_run(
                        name, "work", 2, "failed", (begin, end), {"i": index}, config, error
                    )
                    writer.log(second, f"{error}: try 2\n")
                    continue
            attempt = 2 if index in flaky else 1
            done = writer.step_run(
                name, "work", attempt, "completed", (begin, end), {"i": index}, config
            )
            completed.append((name, done, writer.output(done, "work", index * 2, end)))
        writer.flush()
        begin = clock + 0.1
        refs = [{"$ref": name, "output": "output"} for name, _, _ in completed]
        total = writer.step_run(
            "total",
            "total",
            1,
            "completed",
            (begin, begin + 2.0),
            {},
            step_config("total", {"values": refs}, []),
        )
        writer.log(total, f"summing {len(completed)}\n")
        for position, (_, parent, version) in enumerate(completed):
            writer.add("step_run_parent", {"child_id": total, "parent_id": parent})
            writer.add(
                "step_run_input_artifact",
                {
                    "step_run_id": total,
                    "name": f"values[{position}]",
                    "artifact_version_id": version,
                },
            )
        returned = sum(2 * int(name.partition("_")[2] or 1) - 2 for name, _, _ in completed)
        result = writer.output(total, "total", returned, begin + 2.0)
        writer.flush()
        for artifact, count in writer.versions.items():
            conn.execute(
                schema.artifact.update()
                .where(schema.artifact.c.id == artifact_id(artifact))
                .values(version_count=count)
            )
        conn.execute(
            schema.pipeline_run_output.insert(),
            [{"run_id": run_id, "position": 0, "artifact_version_id": result}],
        )
        conn.execute(  # as the recorder writes them: once each, with the first step run
            schema.step_edge.insert(),
            [
                {"run_id": run_id, "from_name": "load", "to_name": "work", "kind": "value"},
                {"run_id": run_id, "from_name": "work", "to_name": "total", "kind": "data"},
            ],
        )
        conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.id == run_id)
            .values(end_time=writer.at(begin + 2.1))
        )
    started = time.perf_counter()
    keep_figures(engine, run_id)  # as the run's session does once its end is recorded
    print(f"kept the run's figures in {time.perf_counter() - started:.2f} s")


def drop_figures(home: Path) -> None:
    """Forget the run's kept figures: reads count its step runs, as for a run still running
    or one recorded before figures were kept."""
    os.environ["BRANCHWORK_HOME"] = str(home)
    from branchwork.metadata import schema
    from branchwork.metadata.store import get_engine

    with get_engine().begin() as conn:
        conn.execute(schema.run_summary.delete())


def build_store(home: Path, shape: Shape) -> None:
    """Write the run in a child process (this one stays free of the store's modules)."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--write",
            str(home),
            str(shape.steps),
            str(shape.retried),
            str(shape.failed),
        ],
        check=True,
        timeout=7200,
    )
    size = sum(f.stat().st_size for f in home.glob("branchwork.db*")) / 2**30
    took = time.perf_counter() - started
    print(f"wrote a run of {shape.steps:,} step runs in {took:.0f} s ({size:.1f} GiB)")


# ---- the commands --------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float | None  # None: stopped at the timeout
    rss_mb: float
    lines: int


def run_command(args: list[str], env: dict[str, str], timeout: float) -> Timing:
    """One fresh `branchwork ...` process: wall time, peak RSS, lines printed (its output
    goes to a file, so reading it costs the command nothing)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([BRANCHWORK, *args], env=env, stdout=out, stderr=err)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode == -signal.SIGKILL and elapsed >= timeout:
            return Timing(None, usage.ru_maxrss / 1024, 0)
        if process.returncode != 0:
            err.seek(0)
            raise SystemExit(f"branchwork {' '.join(args)} failed:\n{err.read().decode()[-2000:]}")
        out.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
    return Timing(elapsed, usage.ru_maxrss / 1024, lines)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} s ({min(values):.3f}-{max(values):.3f})"


def measure(home: Path, commands: list[list[str]], repeat: int, timeout: float) -> None:
    """Time each command `repeat` times, after the floor: `runs list` of an empty store
    (starting Python, importing the CLI and SQLAlchemy, opening the store)."""
    env = {**os.environ, "BRANCHWORK_HOME": str(home)}
    env.pop("BRANCHWORK_STORE_URL", None)
    started = time.perf_counter()
    run_command(["runs", "list", "-n", "1"], env, timeout)  # migrate the store if it is behind
    print(f"opened (and migrated, if behind) the store in {time.perf_counter() - started:.1f} s")
    print(f"{'command':<44} {'wall (median, range)':>28} {'peak RSS':>10} {'lines':>10}")
    with tempfile.TemporaryDirectory() as empty:
        floor = {**env, "BRANCHWORK_HOME": empty}
        run_command(["runs", "list"], floor, timeout)  # creates the empty store
        report("(empty store) branchwork runs list", floor, ["runs", "list"], repeat, timeout)
    for args in commands:
        report("branchwork " + " ".join(args), env, args, repeat, timeout)


def report(label: str, env: dict[str, str], args: list[str], repeat: int, timeout: float) -> None:
    """Print the figures of `repeat` fresh processes of one command."""
    timings = [run_command(args, env, timeout) for _ in range(repeat)]
    finished = [t.seconds for t in timings if t.seconds is not None]
    if len(finished) < len(timings):
        print(f"{label:<44} {f'> {timeout:.0f} s (stopped)':>28} {timings[-1].rss_mb:>7.0f} MB")
        return
    rss = max(t.rss_mb for t in timings)
    print(f"{label:<44} {spread(finished):>28} {rss:>7.0f} MB {timings[-1].lines:>10,}")


def main() -> None:
    if sys.argv[1:2] == ["--write"]:
        home, steps, retried, failed = sys.argv[2], *map(int, sys.argv[3:6])
        write_run(Path(home), Shape(steps, retried, failed))
        return
    if sys.argv[1:2] == ["--forget-figures-in"]:
        drop_figures(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--retried", type=int, default=300)
    parser.add_argument("--failed", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--home", type=Path, help="build the store here (reused if there)")
    parser.add_argument("--all", action="store_true", help="also time `runs show RUN --all`")
    parser.add_argument(
        "--drop-figures",
        action="store_true",
        help="forget the run's kept figures first (as a running run, or one recorded before "
        "they were kept, is read)",
    )
    options = parser.parse_args()
    shape = Shape(options.steps, options.retried, options.failed)
    commands = [
        ["runs", "list"],
        ["runs", "show", RUN_NAME],
        ["runs", "show", RUN_NAME, "-o", "json"],
        ["runs", "graph", RUN_NAME],
        ["runs", "logs", RUN_NAME],
        ["runs", "logs", RUN_NAME, "total"],
    ]
    if options.all:
        commands.append(["runs", "show", RUN_NAME, "--all"])
    with tempfile.TemporaryDirectory() as folder:
        home = options.home or Path(folder)
        if not (home / "branchwork.db").exists():
            home.mkdir(parents=True, exist_ok=True)
            build_store(home, shape)
        if options.drop_figures:
            subprocess.run([sys.executable, __file__, "--forget-figures-in", str(home)], check=True)
        measure(home, commands, options.repeat, options.timeout)


if __name__ == "__main__":
    main()

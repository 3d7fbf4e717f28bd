"""Soak: 50 pipelines from 4 concurrent processes against one store, with random step
failures, then a consistency check of the store. Not part of the test suite (it takes a
while); run it before a release:

    python benchmarks/soak.py [--runs 50] [--processes 4] [--seed 7]

Exits non-zero, listing every problem, if the store is inconsistent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import random, sys
from branchwork import pipeline, step
from branchwork.exceptions import PipelineRunFailedError

@step
def width(n: int) -> int:
    return n

@step
def work(i: int, seed: int, fail_rate: float) -> int:
    if random.Random(seed * 1000 + i).random() < fail_rate:
        raise RuntimeError(f"random failure of item {i}")
    return i

@step
def total(values: list) -> int:
    return sum(values)

@pipeline(failure_mode="continue_on_failure")
def soaked(n: int, seed: int, fail_rate: float):
    k = width(n)
    return total([work(i, seed, fail_rate) for i in range(k)])

worker, runs, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed + worker)
failed = 0
for r in range(runs):
    try:
        soaked(n=rng.randint(5, 40), seed=rng.randint(0, 5), fail_rate=rng.choice([0, 0.02, 0.1]))
    except PipelineRunFailedError:
        failed += 1
print(f"worker {worker}: {runs} runs, {failed} failed")
"""


def check(home: str) -> list[str]:
    import sqlite3

    problems: list[str] = []
    db = sqlite3.connect(Path(home) / "branchwork.db")
    q = lambda sql: db.execute(sql).fetchall()  # noqa: E731
    for status, count in q("SELECT status, COUNT(*) FROM pipeline_run GROUP BY status"):
        if status not in ("completed", "failed"):
            problems.append(f"{count} runs left {status}")
    for (run,) in q(
        "SELECT name FROM pipeline_run WHERE status='failed' AND exception_type IS NULL"
    ):
        problems.append(f"failed run {run} records no exception")
    for run, step, status in q(
        "SELECT r.name, s.name, s.status FROM step_run s JOIN pipeline_run r ON r.id = s.run_id "
        "WHERE s.status NOT IN ('completed', 'cached', 'failed', 'retried')"
    ):
        problems.append(f"step {step} of {run} left {status}")
    for run, step in q(
        "SELECT r.name, s.name FROM step_run s JOIN pipeline_run r ON r.id = s.run_id "
        "WHERE r.status = 'completed' AND s.status NOT IN ('completed', 'cached')"
    ):
        problems.append(f"completed run {run} has unfinished step {step}")
    for (step,) in q(
        "SELECT s.id FROM step_run s WHERE s.status IN ('completed', 'cached') AND NOT EXISTS "
        "(SELECT 1 FROM step_run_output_artifact o WHERE o.step_run_id = s.id)"
    ):
        problems.append(f"finished step run {step} has no output")
    for (step,) in q(
        "SELECT s.id FROM step_run s WHERE s.status = 'cached' AND NOT EXISTS "
        "(SELECT 1 FROM step_run o WHERE o.id = s.original_step_run_id)"
    ):
        problems.append(f"cached step run {step} points to a missing original")
    for (step,) in q(
        "SELECT s.id FROM step_run s WHERE NOT EXISTS "
        "(SELECT 1 FROM step_configuration c WHERE c.step_run_id = s.id)"
    ):
        problems.append(f"dynamic step run {step} has no configuration")
    for (uri,) in q("SELECT uri FROM artifact_version"):
        if not Path(uri).is_dir():
            problems.append(f"artifact {uri} is missing from the artifact store")
    (violations,) = q("SELECT COUNT(*) FROM pragma_foreign_key_check")[0]
    if violations:
        problems.append(f"{violations} foreign key violations")
    (integrity,) = q("PRAGMA integrity_check")[0]
    if integrity != "ok":
        problems.append(f"integrity check: {integrity}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BRANCHWORK_HOME": home}
        per_worker = [
            args.runs // args.processes + (i < args.runs % args.processes)
            for i in range(args.processes)
        ]
        start = time.perf_counter()
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(i), str(n), str(args.seed)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i, n in enumerate(per_worker)
        ]
        for worker in workers:
            print(worker.communicate()[0].strip())
            if worker.returncode:
                print(f"worker exited with {worker.returncode}")
                return 1
        print(
            f"{args.runs} runs from {args.processes} processes in "
            f"{time.perf_counter() - start:.1f}s"
        )
        problems = check(home)
    for problem in problems:
        print("PROBLEM:", problem)
    print("store consistent" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

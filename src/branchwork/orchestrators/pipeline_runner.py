"""Entrypoint of an orchestration process: `python -m branchwork.orchestrators.pipeline_runner`.

Everything comes from the environment an orchestrator's `submit_*` was handed
(`BRANCHWORK_RUN_ID`, `BRANCHWORK_STORE_URL`, `BRANCHWORK_STACK`, `PYTHONPATH`), so
launching this bare command with that environment runs the pipeline; `--run-id` overrides
the run. It loads the pipeline from its recorded source, runs the orchestration loop,
records everything and exits 0 when the run completed, 1 when it failed, 130 when stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from branchwork.exceptions import BranchworkError
from branchwork.metadata.queries import get_run
from branchwork.metadata.runs import mark_run_failed
from branchwork.metadata.store import get_engine
from branchwork.orchestrators.local import LocalOrchestrator
from branchwork.pipelines.loading import load_pipeline
from branchwork.runtime.interrupts import Terminated
from branchwork.runtime.requests import RunRequest
from branchwork.stack.stack import STACK_ENV, Stack, default_stack


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(f"stopped by {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="branchwork.orchestrators.pipeline_runner")
    parser.add_argument("--run-id", default=os.environ.get("BRANCHWORK_RUN_ID"))
    args = parser.parse_args(argv)
    if not args.run_id:
        parser.error("no run: set BRANCHWORK_RUN_ID or pass --run-id")
    signal.signal(signal.SIGTERM, _terminate)  # SIGINT: KeyboardInterrupt, a graceful stop
    engine = get_engine()
    try:
        run = get_run(engine, args.run_id, include_steps=False)
        if run.status != "initializing":
            raise BranchworkError(f"Run '{run.name}' has already started (status {run.status}).")
    except BranchworkError as error:
        print(f"branchwork pipeline_runner: {error}", file=sys.stderr)
        return 2
    try:
        stack = (
            Stack.from_json(os.environ[STACK_ENV]) if STACK_ENV in os.environ else default_stack()
        )
        request = RunRequest.recorded(run.snapshot, run, stack)
        request.pipeline = load_pipeline(run.snapshot)  # fail here, recorded, not half-way
    except BranchworkError as error:
        mark_run_failed(engine, run.id, error)
        print(f"branchwork pipeline_runner: {error}", file=sys.stderr)
        return 1
    orchestrator = stack.orchestrator
    # An orchestrator that hosts loops (local_process, ray) does; any other (a container
    # backend, whose job this is) gets the local loop, with steps in its threads.
    host = orchestrator if orchestrator.hosts_loops else LocalOrchestrator()
    try:
        outcome = host.run_loop(request, orchestrator.get_orchestrator_run_id())
    except KeyboardInterrupt:
        return 130
    except BranchworkError as error:  # the store went away: nothing more can be recorded
        print(f"branchwork pipeline_runner: {error}", file=sys.stderr)
        return 1
    return {"completed": 0, "stopped": 130}.get(outcome.status, 1)


if __name__ == "__main__":
    sys.exit(main())

"""What an orchestration process does: `python -m branchwork.orchestrators.pipeline_runner`.

Everything comes from the environment an orchestrator's `submit_*` was handed
(`BRANCHWORK_RUN_ID`, `BRANCHWORK_STORE_URL`, `BRANCHWORK_STACK`, `PYTHONPATH`), so
launching that bare command with that environment runs the pipeline; `--run-id` overrides
the run. It loads the pipeline from its recorded source, runs the orchestration loop,
records everything and exits 0 when the run completed (or paused, waiting for an answer: a
job that ends there has not failed), 1 when it failed, 130 when stopped.

Why here and not in `orchestrators`: the process rebuilds the run's stack (the `stack`
layer) and loads its pipeline (this layer), both above the orchestrators, which must not
import them. The command keeps the seed page's module name, so
`orchestrators/pipeline_runner.py` is a thin entry point that only calls `main`: the one
import from the orchestrators up to this layer for that reason, named as an exception in
pyproject's import contract. The other exceptions are `LocalOrchestrator` and
`RayOrchestrator` when the seed's plugin API hands them only a snapshot to run in this
process: they take its pipeline from `pipelines.loading.recorded_request`. A loader passed
down instead was considered and rejected: that API has no parameter for one, so it would
have to come from a registry filled at import time (ambient state the design rules out).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from branchwork.exceptions import BranchworkError, RunAlreadyStartedError, RunStopped
from branchwork.metadata.queries import get_run
from branchwork.metadata.runs import mark_run_failed
from branchwork.metadata.store import get_engine
from branchwork.orchestrators.local import LocalOrchestrator
from branchwork.pipelines.code_seen import warn_if_code_differs
from branchwork.pipelines.loading import recorded_request
from branchwork.runtime.interrupts import raise_terminated
from branchwork.stack.stack import STACK_ENV, Stack, default_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="branchwork.orchestrators.pipeline_runner")
    parser.add_argument("--run-id", default=os.environ.get("BRANCHWORK_RUN_ID"))
    args = parser.parse_args(argv)
    if not args.run_id:
        parser.error("no run: set BRANCHWORK_RUN_ID or pass --run-id")
    signal.signal(signal.SIGTERM, raise_terminated)  # SIGINT: KeyboardInterrupt, graceful
    engine = get_engine()
    try:
        run = get_run(engine, args.run_id, include_steps=False)
        if run.status == "stopped":
            return 130  # Ctrl-C where it was submitted, before this process got to it
        if run.status != "initializing":
            raise RunAlreadyStartedError(
                f"Run '{run.name}' has already started (status {run.status})."
            )
    except BranchworkError as error:
        print(f"branchwork pipeline_runner: {error}", file=sys.stderr)
        return 2
    try:
        stack = (
            Stack.from_json(os.environ[STACK_ENV]) if STACK_ENV in os.environ else default_stack()
        )
        request = recorded_request(run.snapshot, run, stack)  # fail here, recorded, not half-way
        warn_if_code_differs(request.pipeline, os.environ)
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
    except (KeyboardInterrupt, RunStopped):  # RunStopped: as above, but raced us to the run
        return 130
    except RunAlreadyStartedError as error:  # as above, but raced us to the run
        print(f"branchwork pipeline_runner: {error}", file=sys.stderr)
        return 2
    except BranchworkError as error:  # the store went away: nothing more can be recorded
        print(f"branchwork pipeline_runner: {error}", file=sys.stderr)
        return 1
    return {"completed": 0, "paused": 0, "stopped": 130}.get(outcome.status, 1)

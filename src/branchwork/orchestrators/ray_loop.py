"""The orchestration loop as a Ray task (`RayOrchestrator(loop="cluster")`).

The task runs what `python -m branchwork.orchestrators.pipeline_runner` runs, with the
submission's environment applied to `os.environ` for its duration: not as a Ray
`runtime_env`, because that is a separate pool of worker processes which every child task
inherits, so each run (whose environment names its run id) would start fresh workers for
all its steps.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from typing import Any

from branchwork.metadata.error_records import text_of
from branchwork.orchestrators.ray_launcher import applied_environment
from branchwork.user_code import extend_import_path


def run_orchestration(environment: dict[str, str]) -> int:
    """The body of the loop's Ray task: `pipeline_runner` with `environment` applied. Ctrl-C
    in the driver reaches it through the metadata store, as it reaches every loop."""
    from branchwork.metadata.store import dispose_engines
    from branchwork.orchestrators import pipeline_runner

    extend_import_path(environment.get("PYTHONPATH", "").split(os.pathsep))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with applied_environment(environment):
            return pipeline_runner.main([])
    finally:
        signal.signal(signal.SIGTERM, handler)  # the worker is reused: leave it as it was
        dispose_engines()


@functools.lru_cache(maxsize=1)
def loop_task() -> Any:
    import ray

    # num_cpus=0: the loop mostly waits, and must not take a CPU from its own steps.
    return ray.remote(num_cpus=0, max_retries=0)(run_orchestration)


def wait_for_loop(ref: Any) -> Any:
    """Wait for the loop task; a worker or node that died is reported, not raised."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:  # the loop's worker or node died
        return f"{type(error).__name__}: {text_of(error)}"


def end_loop(ref: Any) -> None:
    """End the loop task and the step tasks it started, at once."""
    import ray

    with contextlib.suppress(Exception):  # already finished
        ray.cancel(ref, force=True, recursive=True)

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
import threading
from collections.abc import Iterator
from typing import Any

from branchwork.orchestrators.ray_launcher import applied_environment, extend_import_path


def run_orchestration(environment: dict[str, str]) -> int:
    """The body of the loop's Ray task: `pipeline_runner` with `environment` applied."""
    from branchwork.metadata.store import dispose_engines
    from branchwork.orchestrators import pipeline_runner

    extend_import_path(environment.get("PYTHONPATH", "").split(os.pathsep))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with applied_environment(environment), _interrupts_reach_a_waiting_main_thread():
            return pipeline_runner.main([])
    finally:
        signal.signal(signal.SIGTERM, handler)  # the worker is reused: leave it as it was
        dispose_engines()


@contextlib.contextmanager
def _interrupts_reach_a_waiting_main_thread() -> Iterator[None]:
    """Let `ray.cancel(loop_task)` (what Ctrl-C in the driver does) stop the run.

    Ray interrupts a task with `_thread.interrupt_main()`, which takes effect only when the
    main thread next runs Python code, and the loop's main thread waits on a lock for most
    of the run (a Ray worker blocks real SIGINTs in it). CPython also writes the simulated
    SIGINT to the signal wakeup fd; a thread blocked reading it sends the main thread a
    SIGUSR2 with a no-op handler, which interrupts the wait, so the pending KeyboardInterrupt
    is raised: the run is recorded STOPPED and its step tasks are killed.
    """
    if not hasattr(signal, "pthread_kill"):  # Windows: interrupts wait for Python code
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous_handler = signal.signal(signal.SIGUSR2, lambda _signum, _frame: None)
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def relay() -> None:
        woken = False
        while data := os.read(read_fd, 64):
            if not woken and signal.SIGINT in data:
                woken = True
                signal.pthread_kill(main_thread, signal.SIGUSR2)

    thread = threading.Thread(target=relay, name="branchwork-interrupt-relay", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGUSR2, previous_handler)
        os.close(write_fd)  # the relay reads EOF and ends
        thread.join()
        os.close(read_fd)


@functools.lru_cache(maxsize=1)
def loop_task() -> Any:
    import ray

    # num_cpus=0: the loop mostly waits, and must not take a CPU from its own steps.
    return ray.remote(num_cpus=0, max_retries=0)(run_orchestration)


def wait_for_loop(ref: Any) -> Any:
    """Wait for the loop task; Ctrl-C stops the run there (KeyboardInterrupt in the task)."""
    import ray

    try:
        return ray.get(ref)
    except KeyboardInterrupt:
        ray.cancel(ref)
        with contextlib.suppress(Exception):
            ray.get(ref, timeout=60)
        raise
    except ray.exceptions.RayError as error:  # the loop's worker or node died
        return f"{type(error).__name__}: {error}"

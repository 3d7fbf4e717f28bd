"""A large bytes output is previewed from its head and tail only: its preview once made a
repr of the whole value (4 characters a byte) before cutting it, 30 s and 4 GiB for 1 GiB
(benchmarks/team_stack.py)."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import materializer_for
from branchwork.materializers.io import save_artifact

pytestmark = pytest.mark.filterwarnings("ignore:bytearray values are stored as cloudpickles")

SIZE = 20_000_000


@pytest.mark.parametrize(
    ("kind", "copies"),
    [(bytes, 0), (bytearray, 1)],  # a bytearray is stored as a pickle: one copy of it
)
def test_saving_large_bytes_previews_them_without_a_repr_of_the_whole(tmp_path, kind, copies):
    data = kind(SIZE)
    store = LocalArtifactStore(str(tmp_path / "store"))
    uri = store.new_artifact_uri("blob")
    tracemalloc.start()
    try:
        saved = save_artifact(data, uri, store, materializer_for(kind, data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a repr of the whole would be 4 x SIZE
    assert peak < (copies + 0.5) * SIZE, f"saving {SIZE} bytes allocated {peak} bytes"
    preview = json.loads(saved.preview)
    prefix = "b'" if kind is bytes else "bytearray(b'"
    assert preview["text"].startswith(prefix + "\\x00\\x00")
    assert "..." in preview["text"] and len(preview["text"]) <= 400
    if kind is bytes:
        assert preview["metadata"] == {"size": SIZE}

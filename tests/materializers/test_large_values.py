"""Big values (from BIG_FILE_SIZE bytes on): written by their library straight into the store
and read back by path from a local store, with no copy of them in memory, and hashed as they
are written. Round trips run on the local store and on S3 (a temporary file there, for
safetensors, which writes only to paths)."""

from __future__ import annotations

import json
import struct
import sys
import tracemalloc
from collections import OrderedDict
from typing import Any

import pytest

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.exceptions import ArtifactError
from branchwork.materializers import BaseMaterializer, load_artifact, materializer_for
from branchwork.materializers.base import BIG_FILE_SIZE
from branchwork.materializers.io import save_artifact
from branchwork.materializers.registry import materializer_path

np = pytest.importorskip("numpy", reason="numpy is not installed")
pd = pytest.importorskip("pandas", reason="the pandas extra is not installed")
pl = pytest.importorskip("polars", reason="the polars extra is not installed")
pa = pytest.importorskip("pyarrow", reason="the pyarrow extra is not installed")
torch = pytest.importorskip("torch", reason="the torch extra is not installed")

ROWS = 300_000  # 2.4 MB of float64 per column: past BIG_FILE_SIZE
LOCAL_ONLY = pytest.mark.parametrize("artifact_store", ["local"], indirect=True)


class WideNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(600, 600)  # 1.4 MB of weights


def numbers(rows: int = ROWS) -> Any:
    return np.random.default_rng(0).random(rows)


def big_values() -> dict[str, tuple[Any, list[str]]]:
    """Big values of each library, with the files they are stored as."""
    tensor = torch.from_numpy(numbers().astype(np.float32)).requires_grad_()
    return {
        "pandas frame": (pd.DataFrame({"x": numbers(), "label": "a"}), ["frame.parquet"]),
        "pandas series": (pd.Series(numbers(), name="x"), ["series.parquet"]),
        "numpy array": (numbers().reshape(-1, 3), ["array.npy"]),
        "polars frame": (pl.DataFrame({"x": numbers()}), ["frame.parquet"]),
        "pyarrow table": (pa.table({"x": numbers()}), ["table.parquet"]),
        # Parquet would give the dictionary back as another type: the Arrow file keeps it
        "pyarrow arrow file": (
            pa.table({"x": pa.array(np.arange(ROWS) % 7).dictionary_encode()}),
            ["table.arrow"],
        ),
        "torch tensor": (tensor, ["tensor.safetensors"]),
        "torch state_dict": (
            OrderedDict(w=torch.ones(ROWS), b=torch.zeros(3)),
            ["state_dict.safetensors"],
        ),
        "torch module": (WideNet(), ["module.json", "state_dict.safetensors"]),
    }


def assert_equal(loaded: Any, value: Any) -> None:
    assert type(loaded) is type(value)
    if isinstance(value, pd.DataFrame | pd.Series):
        assert loaded.equals(value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    elif isinstance(value, pl.DataFrame | pa.Table):
        assert loaded.equals(value)
    elif isinstance(value, torch.Tensor):
        assert torch.equal(loaded, value) and loaded.requires_grad == value.requires_grad
    else:
        state = value if isinstance(value, dict) else value.state_dict()
        loaded_state = loaded if isinstance(loaded, dict) else loaded.state_dict()
        assert list(loaded_state) == list(state)
        assert all(torch.equal(loaded_state[key], tensor) for key, tensor in state.items())


@pytest.mark.parametrize("name", list(big_values()))
def test_big_values_round_trip_hashed_as_their_files_are(round_trip, artifact_store, name):
    value, files = big_values()[name]
    result = round_trip(value)
    assert (result.files, result.warnings) == (files, [])
    assert_equal(result.loaded, value)
    # the digests taken while writing give the hash reading the files back gives
    assert result.content_hash == BaseMaterializer(result.uri, artifact_store).content_hash()


@pytest.mark.parametrize("name", ["pandas frame", "polars frame", "pyarrow table", "torch tensor"])
def test_big_values_load_from_a_folder_named_like_a_pattern(tmp_path, name):
    store = LocalArtifactStore(tmp_path / "runs [1]")  # a glob would match "runs 1"
    value, _ = big_values()[name]
    cls = materializer_for(type(value), value)
    uri = store.new_artifact_uri("big")
    save_artifact(value, uri, store, cls)
    assert_equal(load_artifact(uri, materializer_path(cls), type(value), store), value)


def traced_peak(action) -> tuple[Any, int, int]:
    """What `action` returns, the peak of memory allocated meanwhile and how much of it
    is still allocated after (the returned value's own part)."""
    tracemalloc.start()
    try:
        result = action()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, current


@LOCAL_ONLY
@pytest.mark.parametrize(
    "name", ["pandas frame", "numpy array", "polars frame", "pyarrow table", "torch tensor"]
)
def test_a_big_value_is_saved_and_loaded_without_a_copy_of_it_in_memory(artifact_store, name):
    rows = 6_000_000  # 48 MB: numpy writes through a 16 MB buffer of its own
    value = {
        "pandas frame": lambda: pd.DataFrame({"x": numbers(rows)}),
        "numpy array": lambda: numbers(rows),
        "polars frame": lambda: pl.DataFrame({"x": numbers(rows)}),
        "pyarrow table": lambda: pa.table({"x": numbers(rows)}),
        "torch tensor": lambda: torch.from_numpy(numbers(rows)),
    }[name]()
    size = rows * 8
    cls = materializer_for(type(value), value)
    uri = artifact_store.new_artifact_uri("big")

    _, save_peak, _ = traced_peak(lambda: save_artifact(value, uri, artifact_store, cls))
    loaded, load_peak, kept = traced_peak(
        lambda: load_artifact(uri, materializer_path(cls), type(value), artifact_store)
    )

    assert save_peak < size / 2
    assert load_peak - kept < size / 2  # besides the loaded value itself
    assert_equal(loaded, value)


@LOCAL_ONLY
@pytest.mark.skipif(sys.platform == "win32", reason="Windows cannot delete a mapped file")
def test_a_big_loaded_tensor_is_its_own_copy_of_the_artifact(artifact_store):
    tensor = torch.arange(float(ROWS))
    cls = materializer_for(type(tensor), tensor)
    uri = artifact_store.new_artifact_uri("big")
    save_artifact(tensor, uri, artifact_store, cls)

    def load() -> Any:
        return load_artifact(uri, materializer_path(cls), torch.Tensor, artifact_store)

    changed = load()
    changed += 1  # a mapped tensor writes to a private copy, never to the artifact
    assert torch.equal(load(), tensor)
    kept = load()
    artifact_store.rmtree(uri)  # deleting the artifact leaves a loaded tensor readable
    assert torch.equal(kept, tensor) and torch.equal(changed, tensor + 1)


# ---- a materializer of your own writing big files ------------------------------------------


class Readings:
    def __init__(self, values: list[Any]) -> None:
        self.values = values


READINGS_BIN = "readings.bin"  # float64 values, written as they come
READINGS_JSON = "readings.json"  # when a value is not a number


class ReadingsMaterializer(BaseMaterializer):
    """Streams readings as binary and falls back to JSON when one is not a number: the binary
    file written up to the failing value must not be left for `load` to find."""

    ASSOCIATED_TYPES = (Readings,)
    HASH_FROM_WRITES = True

    def save(self, data: Readings) -> None:
        try:
            self.write_binary(data.values)
        except struct.error:
            self._write_bytes(READINGS_JSON, json.dumps(data.values).encode())

    def write_binary(self, values: list[Any]) -> None:
        with self._open_write(READINGS_BIN) as file:
            write_readings(file, values)

    def load(self, data_type: type) -> Readings:
        stored = self._find_first(READINGS_BIN, READINGS_JSON)
        if stored.name == READINGS_JSON:
            return Readings(json.loads(stored.read()))
        return Readings(np.frombuffer(stored.read(), dtype="<f8").tolist())


class ReadingsByPathMaterializer(ReadingsMaterializer):
    """The same, through a path, as for a library that only writes to paths."""

    def write_binary(self, values: list[Any]) -> None:
        with self._write_path(READINGS_BIN) as path, open(path, "wb") as file:
            write_readings(file, values)


def write_readings(file: Any, values: list[Any]) -> None:
    for start in range(0, len(values), 1000):
        chunk = values[start : start + 1000]
        file.write(struct.pack(f"<{len(chunk)}d", *chunk))


@pytest.mark.parametrize("materializer", [ReadingsMaterializer, ReadingsByPathMaterializer])
@pytest.mark.parametrize("count", [10, 2 * BIG_FILE_SIZE // 8], ids=["small", "big"])
def test_a_file_that_fails_half_written_is_not_left_behind(artifact_store, materializer, count):
    values: list[Any] = [float(i) for i in range(count)]
    values[-1] = None  # fails at the last chunk, after most of the file is written
    uri = artifact_store.new_artifact_uri("readings")

    saved = save_artifact(Readings(values), uri, artifact_store, materializer)
    loaded = load_artifact(uri, materializer_path(materializer), Readings, artifact_store)

    assert artifact_store.walk_files(uri) == [READINGS_JSON]
    assert loaded.values == values
    assert saved.content_hash == BaseMaterializer(uri, artifact_store).content_hash()


@pytest.mark.parametrize("materializer", [ReadingsMaterializer, ReadingsByPathMaterializer])
def test_a_file_written_whole_is_hashed_as_it_was_written(artifact_store, materializer):
    values = [float(i) for i in range(2 * BIG_FILE_SIZE // 8)]
    uri = artifact_store.new_artifact_uri("readings")
    saved = save_artifact(Readings(values), uri, artifact_store, materializer)
    loaded = load_artifact(uri, materializer_path(materializer), Readings, artifact_store)
    assert artifact_store.walk_files(uri) == [READINGS_BIN]
    assert loaded.values == values
    assert saved.content_hash == BaseMaterializer(uri, artifact_store).content_hash()


class ReusedBufferMaterializer(ReadingsMaterializer):
    """Writes every chunk from one buffer it changes once `write` returns, as libraries do."""

    def write_binary(self, values: list[Any]) -> None:
        buffer = bytearray(8000)
        with self._open_write(READINGS_BIN) as file:
            for start in range(0, len(values), 1000):
                struct.pack_into("<1000d", buffer, 0, *values[start : start + 1000])
                file.write(buffer)


def test_a_buffer_a_library_reuses_is_hashed_as_it_was_written(artifact_store):
    values = [float(i) for i in range(263_000)]  # a big file, 263 chunks
    uri = artifact_store.new_artifact_uri("readings")
    saved = save_artifact(Readings(values), uri, artifact_store, ReusedBufferMaterializer)
    loaded = load_artifact(uri, materializer_path(ReadingsMaterializer), Readings, artifact_store)
    assert (artifact_store.walk_files(uri), loaded.values) == ([READINGS_BIN], values)
    assert saved.content_hash == BaseMaterializer(uri, artifact_store).content_hash()


def foretold_readings(values: list[float], change: str) -> list[bytes]:
    """What ForetoldReadingsMaterializer tells `_write_path` it will write: the file's start,
    then the rest; right, or with the start or the size changed."""
    data = struct.pack(f"<{len(values)}d", *values)
    start, rest = data[:100], data[100:]
    if change == "start":
        start = b"x" + start[1:]
    return [start, rest + b"x" if change == "size" else rest]


@pytest.mark.parametrize("change", ["nothing", "start", "size"])
def test_a_file_foretold_before_it_is_written_is_hashed_as_it_was_written(artifact_store, change):
    class ForetoldReadingsMaterializer(ReadingsMaterializer):
        def write_binary(self, values: list[Any]) -> None:
            content = foretold_readings(values, change)
            with self._write_path(READINGS_BIN, content) as path, open(path, "wb") as file:
                write_readings(file, values)

    values = [float(i) for i in range(2 * BIG_FILE_SIZE // 8)]
    uri = artifact_store.new_artifact_uri("readings")
    saved = save_artifact(Readings(values), uri, artifact_store, ForetoldReadingsMaterializer)
    loaded = load_artifact(uri, materializer_path(ReadingsMaterializer), Readings, artifact_store)
    assert (artifact_store.walk_files(uri), loaded.values) == ([READINGS_BIN], values)
    assert saved.content_hash == BaseMaterializer(uri, artifact_store).content_hash()


def test_a_failing_write_is_reported_with_nothing_left_behind(artifact_store):
    class Failing(ReadingsMaterializer):
        def save(self, data: Readings) -> None:
            self.write_binary(data.values)

    values: list[Any] = [*map(float, range(2 * BIG_FILE_SIZE // 8)), "x"]
    uri = artifact_store.new_artifact_uri("readings")
    with pytest.raises(ArtifactError, match=r"Could not save a .*Readings value .*not a float"):
        save_artifact(Readings(values), uri, artifact_store, Failing)
    assert not artifact_store.exists(artifact_store.join(uri, READINGS_BIN))

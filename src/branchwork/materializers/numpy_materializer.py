"""numpy arrays and scalars as `.npy` files (structured dtypes included), object arrays of
JSON values as JSON. Imported by the registry only once numpy is already loaded.

`.npy` can hold object arrays only as pickles, so an object array whose items are all JSON
values (str, None, bool, int, float, and lists or str-keyed dicts of them) is written as its
shape and items in JSON; only other objects are pickled.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from typing import Any, ClassVar, Literal

import numpy as np

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.builtin import _needs_tags, _NotJson
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview
from branchwork.materializers.table_preview import json_number

ARRAY_FILE = "array.npy"
SCALAR_FILE = "scalar.npy"  # a 0-d array, loaded back as the numpy scalar
OBJECT_ARRAY_FILE = "array.object.json"
# Bytes read to find an array's shape and dtype: a header of np.save, with room for long
# structured dtypes (numpy pads it to a multiple of 64 bytes).
_HEADER_READ = 64 * 1024
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}  # {"shape": [...], "order": "C"|"F", "items": [...]}


class NumpyMaterializer(BaseMaterializer):
    """`np.ndarray` (exact type) and numpy scalars such as `np.float64`."""

    # np.str_ and np.bytes_ are listed too: their MRO reaches str/bytes before np.generic.
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (np.ndarray, np.generic, np.str_, np.bytes_)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        is_scalar = isinstance(data, np.generic)
        array = np.asarray(data)
        if not (is_scalar or type(data) is np.ndarray):
            save_pickled(self, data)  # a subclass such as np.matrix, which .npy would drop
            return
        if array.dtype.hasobject:
            self._save_objects(array)
            return
        with self._open_write(SCALAR_FILE if is_scalar else ARRAY_FILE) as file:
            np.save(file, array, allow_pickle=False)

    def load(self, data_type: type) -> Any:
        stored = self._find_first(ARRAY_FILE, SCALAR_FILE, OBJECT_ARRAY_FILE, PICKLE_FILE)
        if stored.name == PICKLE_FILE:
            return load_pickle(stored.read())
        if stored.name == OBJECT_ARRAY_FILE:
            return _object_array(json.loads(stored.read()))
        array = np.load(stored.source(), allow_pickle=False)  # read into memory, not mapped
        return array[()] if stored.name == SCALAR_FILE else array

    def preview(self, data: Any) -> Preview:
        """Shape, dtype, min/max/mean of a numeric array and its head (numpy's shortened repr).
        The statistics leave NaN out, as pandas' do, and count them (`nan`): one NaN made
        them all null."""
        array = np.asarray(data)
        metadata: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
        is_float = np.issubdtype(array.dtype, np.floating)
        if (is_float or np.issubdtype(array.dtype, np.integer)) and array.ndim and array.size:
            stats = array.min(), array.max(), array.mean()
            if is_float and np.isnan(stats[0]):  # NaN-aware ones copy the array: only then
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # only NaN: no statistics
                    stats = np.nanmin(array), np.nanmax(array), np.nanmean(array)
                metadata["nan"] = int(np.isnan(array).sum())
            metadata.update(min=json_number(stats[0]), max=json_number(stats[1]))
            metadata["mean"] = json_number(stats[2])
        with np.printoptions(threshold=100, edgeitems=3, linewidth=100):
            text = repr(data)
        return Preview(text=text, metadata=metadata)

    def item_count(self, data: Any) -> int | None:
        return len(data) if isinstance(data, np.ndarray) and data.ndim else None

    def load_item(self, data_type: type, index: int, stop: int | None = None) -> Any:
        """Rows of a C-ordered `.npy` array read alone (their bytes sit side by side after
        the header); other arrays through the fallback."""
        store = self.artifact_store
        uri = store.join(self.uri, ARRAY_FILE)
        try:
            header = store.read_range(uri, 0, _HEADER_READ)
        except FileNotFoundError:
            return super().load_item(data_type, index, stop)
        file = io.BytesIO(header)
        read_header = _HEADER_READERS.get(np.lib.format.read_magic(file))
        if read_header is None:
            return super().load_item(data_type, index, stop)
        shape, fortran_order, dtype = read_header(file, max_header_size=_HEADER_READ)
        end = index + 1 if stop is None else min(stop, shape[0] if shape else 0)
        if fortran_order or not shape or not 0 <= index < shape[0] or dtype.hasobject:
            return super().load_item(data_type, index, stop)
        row = dtype.itemsize * math.prod(shape[1:])
        start = file.tell() + row * index
        rows = bytearray(store.read_range(uri, start, start + row * (end - index)))
        chunk = np.frombuffer(rows, dtype=dtype).reshape((end - index, *shape[1:]))
        return chunk[0] if stop is None else chunk

    def _save_objects(self, array: np.ndarray) -> None:
        """An object array as JSON when its items are JSON values, else as a pickle."""
        if array.dtype != object:
            save_pickled(self, array, " with object fields")  # a structured dtype
            return
        order: Literal["C", "F"] = (
            "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        )
        items = array.ravel(order=order).tolist()
        try:
            if any(_needs_tags(item) for item in items):  # tuples would come back as lists
                raise _NotJson(" holding tuples")
            encoded = json.dumps({"shape": array.shape, "order": order, "items": items})
        except _NotJson as exc:
            save_pickled(self, array, f" with object dtype{exc}")
            return
        except (ValueError, RecursionError):  # an int too long for str(), a cycle, deep nesting
            save_pickled(self, array, " with object dtype")
            return
        self._write_bytes(OBJECT_ARRAY_FILE, encoded.encode())


def _object_array(stored: dict[str, Any]) -> np.ndarray:
    """The object array written by `NumpyMaterializer._save_objects`."""
    items = stored["items"]
    flat = np.fromiter(items, dtype=object, count=len(items))  # lists stay items, not axes
    array: np.ndarray = flat.reshape(stored["shape"], order=stored["order"])
    return array

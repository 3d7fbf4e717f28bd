"""numpy arrays and scalars as `.npy` files; object arrays, which `.npy` can only pickle, as
cloudpickles. Imported by the registry only once numpy is already loaded."""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)

ARRAY_FILE = "array.npy"
SCALAR_FILE = "scalar.npy"  # a 0-d array, loaded back as the numpy scalar


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
            save_pickled(self, data, " with object dtype")
            return
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        self._write_bytes(SCALAR_FILE if is_scalar else ARRAY_FILE, buffer.getvalue())

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(ARRAY_FILE, SCALAR_FILE, PICKLE_FILE)
        if filename == PICKLE_FILE:
            return load_pickle(data)
        array = np.load(io.BytesIO(data), allow_pickle=False)
        return array[()] if filename == SCALAR_FILE else array

"""pandas DataFrames and Series: parquet when pyarrow is installed and the value fits, else
pandas' own pickle. Imported by the registry only once pandas is already loaded."""

from __future__ import annotations

import importlib.util
import io
from functools import cache
from typing import Any, ClassVar

import pandas as pd

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.cloudpickle_materializer import PICKLE_PROTOCOL

FRAME_PARQUET_FILE = "frame.parquet"
SERIES_PARQUET_FILE = "series.parquet"  # the Series as a one-column frame named after it
PANDAS_PICKLE_FILE = "data.pandas.pkl"


@cache
def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


class PandasMaterializer(BaseMaterializer):
    """`pd.DataFrame` and `pd.Series`."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pd.DataFrame, pd.Series)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        parquet = self._to_parquet(data) if _has_pyarrow() else None
        if parquet is not None:
            is_series = isinstance(data, pd.Series)
            self._write_bytes(SERIES_PARQUET_FILE if is_series else FRAME_PARQUET_FILE, parquet)
            return
        buffer = io.BytesIO()
        data.to_pickle(buffer, protocol=PICKLE_PROTOCOL)
        self._write_bytes(PANDAS_PICKLE_FILE, buffer.getvalue())

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(
            FRAME_PARQUET_FILE, SERIES_PARQUET_FILE, PANDAS_PICKLE_FILE
        )
        if filename == PANDAS_PICKLE_FILE:
            return pd.read_pickle(io.BytesIO(data))
        frame = pd.read_parquet(io.BytesIO(data))
        return frame[frame.columns[0]] if filename == SERIES_PARQUET_FILE else frame

    @staticmethod
    def _to_parquet(data: Any) -> bytes | None:
        """`data` as parquet bytes, or None when parquet cannot hold it exactly."""
        if type(data) is pd.Series and isinstance(data.name, str):
            data = data.to_frame()
        elif type(data) is not pd.DataFrame:
            return None  # subclasses, and Series whose name is not a column name
        buffer = io.BytesIO()
        try:
            data.to_parquet(buffer)
        except (ValueError, TypeError, NotImplementedError):  # pyarrow's errors derive from these
            return None  # e.g. non-str column names or mixed-type object columns
        return buffer.getvalue()

"""pandas DataFrames and Series as Parquet (the `branchwork[pandas]` extra brings pyarrow).

Imported by the registry only once pandas is already loaded. Values Parquet cannot hold
exactly are pickled, with a warning naming why: subclasses, non-str column names, Series
named by a non-str, object columns holding lists, dicts, mixed or numeric Python objects
(Parquet would turn them into arrays or numeric dtypes), and columns or index levels whose
dtype Parquet gives back as another (a categorical of ints comes back as ints, seconds as
milliseconds). Object columns of strings are kept as Parquet strings: pandas 3 reads them
back as its `str` dtype, its default for text. Parquet has no place for a time index's
frequency (`freq="D"`): it is kept in the file's `attrs` (pandas stores them as Parquet
metadata) under `_FREQ_ATTR` and set again when the value is loaded, whole or in chunks; a
frequency its name cannot rebuild (a business calendar with holidays) is pickled.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from typing import Any, ClassVar

import pandas as pd
from pandas.api.types import infer_dtype, is_object_dtype
from pandas.tseries.frequencies import to_offset

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview
from branchwork.materializers.table_preview import (
    HEAD_COLUMNS,
    HEAD_ROWS,
    column_types,
    json_number,
    short_name,
)

FRAME_PARQUET_FILE = "frame.parquet"
SERIES_PARQUET_FILE = "series.parquet"  # the Series as a one-column frame named after it
UNNAMED_SERIES_PARQUET_FILE = "unnamed_series.parquet"  # a Series whose name is None
LEGACY_PICKLE_FILE = "data.pandas.pkl"  # pandas' own pickle, written by earlier versions
PARQUET_FILES = (FRAME_PARQUET_FILE, SERIES_PARQUET_FILE, UNNAMED_SERIES_PARQUET_FILE)

NO_PYARROW = (
    " (pyarrow, which stores them as Parquet, is not installed: pip install 'branchwork[pandas]')"
)
NOT_PARQUET = " that Parquet cannot store exactly"
# What `infer_dtype` finds in object columns that Parquet gives back as the same values.
# (Bools only beside a missing value: without one, the column comes back as bool.)
_PARQUET_EXACT_OBJECTS = frozenset({"string", "empty", "boolean", "bytes", "decimal", "date"})
# Whether Parquet gives back these dtypes (`_dtypes_fit_parquet`), kept for a few of them.
_DTYPES_FIT: dict[tuple[Any, ...], bool] = {}
_DTYPES_KEPT = 256
_UNNAMED_COLUMN = "values"
_FREQ_ATTR = "branchwork.index_freq"  # see the module docstring
DESCRIBE_COLUMNS = 10  # numeric columns described
# Rows described: a bigger frame is described from evenly spaced rows, whose count the
# preview gives as `describe_rows`. describe() of 10 000 rows x 10 columns takes milliseconds.
DESCRIBE_ROWS = 10_000


@cache
def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


class PandasMaterializer(BaseMaterializer):
    """`pd.DataFrame` and `pd.Series`."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pd.DataFrame, pd.Series)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        if not _has_pyarrow():
            save_pickled(self, data, NO_PYARROW)
            return
        parquet = _as_parquet_frame(data)
        if parquet is None:
            save_pickled(self, data, NOT_PARQUET)
            return
        filename, frame = parquet
        try:
            with self._open_write(filename) as file:
                frame.to_parquet(file)
        except (ValueError, TypeError, NotImplementedError):  # pyarrow's errors derive from these
            save_pickled(self, data, NOT_PARQUET)  # e.g. duplicate column names

    def load(self, data_type: type) -> Any:
        stored = self._find_first(
            FRAME_PARQUET_FILE,
            SERIES_PARQUET_FILE,
            UNNAMED_SERIES_PARQUET_FILE,
            PICKLE_FILE,
            LEGACY_PICKLE_FILE,
        )
        if stored.name in (PICKLE_FILE, LEGACY_PICKLE_FILE):
            return load_pickle(stored.read())
        frame = pd.read_parquet(stored.arrow_source(), use_threads=stored.worth_threads)
        return _as_stored(frame, stored.name)

    def item_count(self, data: Any) -> int | None:
        return len(data)

    def load_item(self, data_type: type, index: int, stop: int | None = None) -> Any:
        """Rows read from the Parquet row groups that hold them, the others left unread (a
        frame of more than a million rows has several); a pickle through the fallback."""
        store = self.artifact_store
        end = index + 1 if stop is None else stop
        for filename in PARQUET_FILES:
            try:
                with store.open(store.join(self.uri, filename), "rb") as file:
                    rows = _parquet_rows(file, index, end)
            except FileNotFoundError:
                continue
            value = _as_stored(rows, filename)
            return value.iloc[0] if stop is None else value
        return super().load_item(data_type, index, stop)

    @staticmethod
    def select(value: Any, index: int, stop: int | None) -> Any:
        """A row as a Series (a Series' value), or rows as a frame: items are rows."""
        return value.iloc[index] if stop is None else value.iloc[index:stop]

    def preview(self, data: Any) -> Preview:
        """Shape, dtypes, the head as a table and `describe()` of the numeric columns."""
        frame = data.to_frame() if isinstance(data, pd.Series) else data
        metadata: dict[str, Any] = {
            "shape": list(data.shape),
            "dtypes": column_types(frame.dtypes.items()),
        }
        metadata.update(_describe(frame))
        head = frame.head(HEAD_ROWS)
        head = head.set_axis([short_name(name) for name in head.columns], axis=1)
        text = head.to_string(max_cols=HEAD_COLUMNS, max_colwidth=40)
        return Preview(text=text, metadata=metadata)


def _as_stored(frame: pd.DataFrame, filename: str) -> Any:
    """A frame read from `filename` as what was saved: the frame, or its Series, with its
    index's frequency (a chunk's rows are consecutive: it still applies)."""
    freq = frame.attrs.pop(_FREQ_ATTR, None)
    if freq is not None:
        frame.index.freq = freq
    if filename == FRAME_PARQUET_FILE:
        return frame
    series = frame.iloc[:, 0]
    return series.rename(None) if filename == UNNAMED_SERIES_PARQUET_FILE else series


def _parquet_rows(file: Any, start: int, end: int) -> pd.DataFrame:
    """Rows `start` to `end` (excluded) of a Parquet file, reading only their row groups,
    with the row labels a whole read gives them."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    metadata = parquet.schema_arrow.metadata or {}
    groups: list[int] = []
    first = offset = 0
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if offset < end and offset + rows > start:
            first = first if groups else offset
            groups.append(group)
        offset += rows
    if not groups:
        raise IndexError(f"rows {start} to {end} of a frame of {offset} rows")
    frame = parquet.read_row_groups(groups).to_pandas()
    described = (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
    if len(described) == 1 and isinstance(described[0], dict):  # a RangeIndex, not stored:
        kept = described[0]  # pyarrow numbers a part of one from 0
        whole = pd.RangeIndex(kept["start"], kept["stop"], kept["step"], name=kept["name"])
        frame.index = whole[first : first + len(frame)]
    rows = frame.iloc[start - first : end - first]
    if b"PANDAS_ATTRS" in metadata:  # as a whole read gives them (`pd.read_parquet`)
        rows.attrs = json.loads(metadata[b"PANDAS_ATTRS"])
    return rows


def _as_parquet_frame(data: Any) -> tuple[str, pd.DataFrame] | None:
    """(file name, the frame to write as Parquet) for `data`, or None when Parquet cannot
    hold it exactly."""
    if type(data) is pd.Series and (data.name is None or isinstance(data.name, str)):
        filename = UNNAMED_SERIES_PARQUET_FILE if data.name is None else SERIES_PARQUET_FILE
        data = data.to_frame(_UNNAMED_COLUMN if data.name is None else data.name)
    elif type(data) is pd.DataFrame:
        filename = FRAME_PARQUET_FILE
    else:
        return None  # subclasses, and Series named by a non-str
    if not all(isinstance(name, str) for name in data.columns):
        return None  # pandas would write other column names as their str()
    if not (_objects_fit_parquet(data) and _dtypes_fit_parquet(data)):
        return None
    data = _with_freq_kept(data)
    return None if data is None else (filename, data)


def _with_freq_kept(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The frame with its time index's frequency in its attrs (see the module docstring);
    None when its name cannot rebuild it."""
    index = frame.index
    if not isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) or index.freq is None:
        return frame
    if to_offset(index.freqstr) != index.freq:
        return None
    kept = frame.copy(deep=False)
    kept.attrs = {**frame.attrs, _FREQ_ATTR: index.freqstr}
    return kept


def _objects_fit_parquet(frame: pd.DataFrame) -> bool:
    """Whether every object column and index level holds values Parquet gives back as such."""
    index = frame.index
    levels = [index.get_level_values(level) for level in range(index.nlevels)]
    columns = [column for _, column in frame.items()]
    return all(
        _object_fits_parquet(values) for values in [*columns, *levels] if values.dtype == object
    )


def _object_fits_parquet(values: Any) -> bool:
    kind = infer_dtype(values, skipna=True)
    return kind in _PARQUET_EXACT_OBJECTS and (kind != "boolean" or bool(values.isna().any()))


def _dtypes_fit_parquet(frame: pd.DataFrame) -> bool:
    """Whether Parquet gives back the dtype of every column and index level that is not
    object (those are `_objects_fit_parquet`'s), found by writing the frame's first row
    (a millisecond or two, once per set of dtypes: a categorical's include its categories;
    without rows, Parquet does not keep them)."""
    index = frame.index
    levels = [index.get_level_values(level).dtype for level in range(index.nlevels)]
    signature = (len(frame) == 0, *frame.dtypes, None, *levels)  # no rows: no categories
    fits = _DTYPES_FIT.get(signature)
    if fits is None:
        fits = _same_dtypes_back(frame.head(1), levels)
        if len(_DTYPES_FIT) >= _DTYPES_KEPT:
            _DTYPES_FIT.clear()
        _DTYPES_FIT[signature] = fits
    return fits


def _same_dtypes_back(head: pd.DataFrame, levels: list[Any]) -> bool:
    import io

    buffer = io.BytesIO()
    try:
        head.to_parquet(buffer)
    except (ValueError, TypeError, NotImplementedError):
        return True  # writing the frame itself fails too, and pickles it
    back = pd.read_parquet(io.BytesIO(buffer.getvalue()))
    back_levels = [back.index.get_level_values(level).dtype for level in range(back.index.nlevels)]
    pairs = [*zip(head.dtypes, back.dtypes), *zip(levels, back_levels)]
    return len(back_levels) == len(levels) and all(
        is_object_dtype(dtype) or dtype == dtype_back for dtype, dtype_back in pairs
    )


def _describe(frame: pd.DataFrame) -> dict[str, Any]:
    """`describe()` of the first numeric columns, from evenly spaced rows of a big frame.

    The statistics are describe()'s, as floats, computed for all the columns at once:
    describe() goes column by column, and took 15-20 ms for 10 columns, whatever their length.
    """
    numeric = frame.select_dtypes("number").iloc[:, :DESCRIBE_COLUMNS]
    if numeric.empty:  # no numeric column, or no row
        return {}
    described: dict[str, Any] = {}
    if len(numeric) > DESCRIBE_ROWS:
        step = -(-len(numeric) // DESCRIBE_ROWS)
        numeric = numeric.take(range(0, len(numeric), step))  # a copy: read fast
        described["describe_rows"] = len(numeric)
    quartiles = numeric.quantile([0.25, 0.5, 0.75])
    statistics = {
        "count": numeric.count(),
        "mean": numeric.mean(),
        "std": numeric.std(),
        "min": numeric.min(),
        **{label: quartiles.iloc[row] for row, label in enumerate(("25%", "50%", "75%"))},
        "max": numeric.max(),
    }
    described["describe"] = {
        short_name(name): {
            stat: _statistic(values.iloc[column]) for stat, values in statistics.items()
        }
        for column, name in enumerate(numeric.columns)
    }
    return described


def _statistic(value: Any) -> float | str | None:
    """A statistic as describe() gives it, for JSON: a float, a duration's as describe()
    prints it ("0 days 00:00:02"); None for a missing one."""
    if pd.isna(value):
        return None
    return str(value) if isinstance(value, pd.Timedelta) else json_number(float(value))

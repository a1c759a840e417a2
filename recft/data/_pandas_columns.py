"""The reference conversion of DataFrame columns to ids, numbers and times, errors located.

``tabular`` uses it for DataFrames (``from_pandas``) and for every file the fast arrow
path sends back: it holds the rules (which values are ids, numbers, times) and words the
errors, naming the file line (via ``RecordLines``) or the frame's row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recft.data._parsing import unix_seconds
from recft.data._sources import RecordLines
from recft.data._text_numbers import to_numbers
from recft.data._time import outside_time_range, time_range_problem
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

_INTEGER = r"-?[0-9]+"
_CONTAINERS = (list, tuple, dict, set, frozenset, np.ndarray, bytes, bytearray)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Locator:
    """Turns a row position into an error naming the file line, or the frame's row."""

    def __init__(self, frame: pd.DataFrame, path: object, lines: RecordLines | None) -> None:
        self.frame, self.path, self.lines = frame, path, lines

    def error(self, position: int, column: str, message: str) -> DataError:
        value = self.frame[column].iloc[position]
        if not isinstance(value, _CONTAINERS) and pd.isna(value):
            text = "missing value"
        elif isinstance(value, str) and value == "":
            text = "empty value"
        else:
            text = f"{_shown(value)} {message}"
        label = self.frame.index[position]
        if self.lines is not None:  # frame row r is record r + 1: the header is record 0
            return DataError(text, path=self.path, line=self.lines.line(int(label) + 1),
                             field=column)
        if self.path is not None:
            return DataError(f"row {position}: {text}", path=self.path, field=column)
        return DataError(f"row {label}: {text}", field=column)


def _shown(value: object) -> str:
    """A value's repr on one short line."""
    if isinstance(value, np.generic):
        value = value.item()
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _refuse_containers(values: pd.Series, column: str, where: Locator, what: str) -> None:
    """Lists, arrays, dicts or bytes in an object column (a Parquet list column) are refused."""
    if values.dtype != object:
        return
    bad = _first(values.map(lambda v: isinstance(v, _CONTAINERS)).to_numpy(dtype=bool))
    if bad is not None:
        kind = type(values.iloc[bad]).__name__
        raise where.error(bad, column, f"is a {kind}, not {what}")


def ids(values: pd.Series, column: str, where: Locator) -> tuple[np.ndarray, Vocabulary]:
    """(N,) int64 rows and the sorted vocabulary; ints stay ints unless that changes them."""
    _refuse_containers(values, column, where, "an id")
    missing = _first(values.isna().to_numpy())
    if missing is not None:
        raise where.error(missing, column, "is not an id")
    kind = values.dtype.kind
    if kind == "b" or (values.dtype == object and pd.api.types.infer_dtype(values) == "boolean"):
        raise where.error(0, column, "is a boolean, not an id")
    if kind == "i" or (kind == "u" and (not len(values) or values.max() < 2**63)):
        array = values.to_numpy(np.int64)
    elif kind == "f":
        numbers = values.to_numpy(np.float64)
        bad = _first(~np.isfinite(numbers) | (numbers != np.round(numbers))
                     | (np.abs(numbers) >= 2**63))
        if bad is not None:
            raise where.error(bad, column, "is not an integer id")
        array = numbers.astype(np.int64)
    else:
        text = values.astype(str)
        bad = _first((text == "").to_numpy())
        if bad is not None:
            raise where.error(bad, column, "is not an id")
        # ints stay ints (so they match MovieLens ids) unless that would change them:
        # "007", or a number beyond int64, which stays a string id
        array = text.to_numpy(dtype=object)
        if text.str.fullmatch(_INTEGER).all():
            try:
                as_int = text.astype(np.int64)
            except (OverflowError, ValueError):
                as_int = None
            if as_int is not None and (as_int.astype(str) == text).all():
                array = as_int.to_numpy()
    codes, uniques = pd.factorize(array, sort=True)
    return codes.astype(np.int64), Vocabulary(np.asarray(uniques), name=column)


def numbers(values: pd.Series, column: str, where: Locator, *,
            nonnegative: bool = False) -> np.ndarray:
    """(N,) float32 values; non-finite, beyond float32 or (counts) negative are refused."""
    _refuse_containers(values, column, where, "a number")
    parsed = to_numbers(values).to_numpy(dtype=np.float64)
    bad = _first(~np.isfinite(parsed))
    if bad is not None:
        raise where.error(bad, column, "is not a finite number")
    bad = _first(np.abs(parsed) > _FLOAT32_MAX)
    if bad is not None:
        raise where.error(bad, column, "is beyond the float32 range (3.4e38)")
    if nonnegative:
        bad = _first(parsed < 0)
        if bad is not None:
            raise where.error(bad, column, "is a negative count")
    return parsed.astype(np.float32)


def seconds(values: pd.Series, column: str, where: Locator) -> np.ndarray:
    """(N,) int64 Unix seconds from numbers or ISO-8601 times, within 1900..2200."""
    _refuse_containers(values, column, where, "a time")
    if values.dtype.kind == "b" or (values.dtype == object
                                    and pd.api.types.infer_dtype(values) == "boolean"):
        raise where.error(0, column, "is a boolean, not a time")
    if pd.api.types.is_datetime64_any_dtype(values):
        bad = _first(values.isna().to_numpy())
        if bad is not None:
            raise where.error(bad, column, "is not a time")
        return _in_range(unix_seconds(values), column, where)
    parsed = to_numbers(values).to_numpy(dtype=np.float64)
    if np.isfinite(parsed).all():
        bad = _first(outside_time_range(parsed))
        if bad is not None:
            raise where.error(bad, column, time_range_problem(parsed[bad]))
        return np.floor(parsed).astype(np.int64)
    if np.isfinite(parsed).mean() > 0:  # mostly Unix seconds: the non-numeric entry is bad
        raise where.error(_first(~np.isfinite(parsed)), column, "is not Unix seconds")
    times = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    bad = _first(times.isna().to_numpy())
    if bad is not None:
        raise where.error(bad, column, "is not Unix seconds or an ISO-8601 time")
    return _in_range(unix_seconds(times), column, where)


def _in_range(result: np.ndarray, column: str, where: Locator) -> np.ndarray:
    bad = _first(outside_time_range(result))
    if bad is not None:
        raise where.error(bad, column, f"is outside the accepted time range (as Unix seconds "
                          f"{result[bad]})")
    return result

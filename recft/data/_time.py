"""The range of interaction times recft accepts, and dates that never overflow.

A timestamp outside 1900-01-01 .. 2200-01-01 is a unit mistake (milliseconds or
nanoseconds read as seconds) or garbage, never an interaction: loaders refuse it with the
file, line and field. Display code (``describe``, ``repr``) formats any int64 value, so an
``Interactions`` built by hand never makes them fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recft.errors import DataError

EARLIEST_SECONDS = -2_208_988_800  # 1900-01-01T00:00:00Z
LATEST_SECONDS = 7_258_118_400  # 2200-01-01T00:00:00Z
TIME_RANGE_TEXT = "1900-01-01 .. 2200-01-01"
_YEAR_1, _YEAR_10000 = -62_135_596_800, 253_402_300_800


def outside_time_range(seconds: np.ndarray) -> np.ndarray:
    """Mask of the values (float or int seconds) outside the accepted range (NaN included)."""
    values = np.asarray(seconds)
    inside = (values >= EARLIEST_SECONDS) & (values < LATEST_SECONDS)
    return ~inside


def time_range_problem(value: float) -> str:
    """Why ``value`` (Unix seconds) is refused, with a hint when the unit looks wrong."""
    message = f"is outside the accepted time range {TIME_RANGE_TEXT} (as Unix seconds)"
    for unit, factor in (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)):
        if EARLIEST_SECONDS <= value / factor < LATEST_SECONDS and abs(value) >= factor:
            return f"{message}; it looks like {unit}: convert to seconds"
    return message


def refuse_outside_time_range(seconds: np.ndarray, path: Path, first_line: int,
                              field: str) -> None:
    """A located DataError for the first value outside the range (row r is line
    ``first_line + r``)."""
    bad = outside_time_range(seconds)
    if bad.any():
        row = int(np.argmax(bad))
        value = seconds[row]
        raise DataError(f"{value} {time_range_problem(float(value))}", path=path,
                        line=first_line + row, field=field)


def iso_date(seconds: int) -> str:
    """``YYYY-MM-DD`` of Unix seconds in years 1..9999; other values as ``"<n> s"``."""
    seconds = int(seconds)
    if not _YEAR_1 <= seconds < _YEAR_10000:
        return f"{seconds} s"
    return str(np.datetime64(seconds, "s").astype("datetime64[D]"))

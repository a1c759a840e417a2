"""The user's own interactions: CSV, TSV, Parquet files or a DataFrame, with a column mapping.

Defaults: columns ``user_id`` and ``item_id``; ``rating``, ``timestamp`` and ``weight`` are
used automatically when present. Every row is kept as in the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recft.data._parsing import unix_seconds
from recft.data.interactions import FEEDBACK_KINDS, Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
_INTEGER = r"-?[0-9]+"


def read_interactions(
    path: str | Path,
    user: str = "user_id",
    item: str = "item_id",
    rating: str | None = None,
    timestamp: str | None = None,
    weight: str | None = None,
    sep: str | None = None,
    feedback: str | None = None,
) -> Interactions:
    """Read interactions from a .csv/.tsv (optionally .gz) or .parquet file.

    Args:
        path: the file; the first line of a CSV/TSV is its header.
        user, item: id columns (ints or strings; ``"007"`` stays a string).
        rating: rating or count column (default ``rating`` if present).
        timestamp: Unix seconds or ISO-8601 datetimes (default ``timestamp`` if present);
            naive datetimes are taken as UTC.
        weight: sample-weight column (default ``weight`` if present).
        sep: field separator (default from the suffix: ``,`` for .csv, tab for .tsv).
        feedback: ``explicit``/``count``/``implicit`` (default explicit with a rating column).

    Raises:
        DataError: missing file or column (listing the columns found), or an empty,
            non-numeric or NaN value, naming its line (the header is line 1).

    Example::

        x = read_interactions("clicks.csv", user="uid", item="sku", timestamp="ts")
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=path, line=1)
    suffixes = [s.lower() for s in path.suffixes]
    base = suffixes[-2] if len(suffixes) > 1 and suffixes[-1] in _COMPRESSIONS else (
        suffixes[-1] if suffixes else "")
    if base == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise DataError(f"cannot read Parquet: {error}", path=path) from None
        first_line = None
    else:
        if sep is None and base not in _SEPARATORS:
            raise DataError(
                f"cannot tell the format from the suffix {''.join(suffixes)!r}; use .csv, .tsv, "
                ".parquet (optionally .gz), or pass sep=", path=path)
        try:
            frame = pd.read_csv(path, sep=sep or _SEPARATORS[base], dtype=str,
                                keep_default_na=False, na_values=[], skip_blank_lines=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise DataError(f"cannot parse: {error}", path=path) from None
        first_line = 2
        # blank lines carry nothing; dropping them keeps the index = line - 2 for errors
        frame = frame[~(frame == "").all(axis=1).to_numpy()]
    return _convert(frame, user, item, rating, timestamp, weight, feedback, path=path,
                    first_line=first_line, name=path.name.split(".")[0])


def from_pandas(
    frame: pd.DataFrame,
    user: str = "user_id",
    item: str = "item_id",
    rating: str | None = None,
    timestamp: str | None = None,
    weight: str | None = None,
    feedback: str | None = None,
    name: str = "",
) -> Interactions:
    """Interactions from a DataFrame, with the same defaults as ``read_interactions``.

    Errors name the row label of the offending value.
    """
    return _convert(frame, user, item, rating, timestamp, weight, feedback, path=None,
                    first_line=None, name=name)


def _convert(frame: pd.DataFrame, user: str, item: str, rating: str | None,
             timestamp: str | None, weight: str | None, feedback: str | None, *,
             path: Path | None, first_line: int | None, name: str) -> Interactions:
    found = [str(c) for c in frame.columns]
    rating = rating or ("rating" if "rating" in found else None)
    timestamp = timestamp or ("timestamp" if "timestamp" in found else None)
    weight = weight or ("weight" if "weight" in found else None)
    for role, column in (("user", user), ("item", item), ("rating", rating),
                         ("timestamp", timestamp), ("weight", weight)):
        if column is not None and column not in found:
            raise DataError(f"no {role} column {column!r}; columns found: {found}", path=path,
                            line=1 if first_line else None, field=column)
    if feedback is not None and feedback not in FEEDBACK_KINDS:
        raise DataError(f"feedback must be one of {FEEDBACK_KINDS}, got {feedback!r}")
    if not len(frame):
        raise DataError("no data rows", path=path, line=first_line)
    where = _Locator(frame, path, first_line)
    user_rows, user_vocab = _ids(frame[user], user, where)
    item_rows, item_vocab = _ids(frame[item], item, where)
    return Interactions(
        user_ids=user_rows, item_ids=item_rows, user_vocab=user_vocab, item_vocab=item_vocab,
        ratings=None if rating is None else _numbers(frame[rating], rating, where),
        weights=None if weight is None else _numbers(frame[weight], weight, where),
        timestamps=None if timestamp is None else _seconds(frame[timestamp], timestamp, where),
        feedback=feedback or ("explicit" if rating is not None else "implicit"),
        name=name,
    )


class _Locator:
    """Turns a row position into an error that names the file line or the frame's row."""

    def __init__(self, frame: pd.DataFrame, path: Path | None, first_line: int | None) -> None:
        self.frame, self.path, self.first_line = frame, path, first_line

    def error(self, position: int, column: str, message: str) -> DataError:
        value = self.frame[column].iloc[position]
        if pd.isna(value):
            text = "missing value"
        elif isinstance(value, str) and value == "":
            text = "empty value"
        else:
            text = f"{value!r} {message}"
        label = self.frame.index[position]
        if self.first_line is not None:
            return DataError(text, path=self.path, line=self.first_line + int(label), field=column)
        if self.path is not None:
            return DataError(f"row {position}: {text}", path=self.path, field=column)
        return DataError(f"row {label}: {text}", field=column)


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _ids(values: pd.Series, column: str, where: _Locator) -> tuple[np.ndarray, Vocabulary]:
    missing = _first(values.isna().to_numpy())
    if missing is not None:
        raise where.error(missing, column, "is not an id")
    if values.dtype.kind in "iu":
        array = values.to_numpy(np.int64)
    elif values.dtype.kind == "f":
        numbers = values.to_numpy(np.float64)
        bad = _first(~np.isfinite(numbers) | (numbers != np.round(numbers)))
        if bad is not None:
            raise where.error(bad, column, "is not an integer id")
        array = numbers.astype(np.int64)
    else:
        text = values.astype(str)
        bad = _first((text == "").to_numpy())
        if bad is not None:
            raise where.error(bad, column, "is not an id")
        # ints stay ints (so they match MovieLens ids) unless that would change them: "007"
        integral = text.str.fullmatch(_INTEGER).all()
        array = text.to_numpy(dtype=object)
        if integral:
            as_int = text.astype(np.int64)
            if (as_int.astype(str) == text).all():
                array = as_int.to_numpy()
    codes, uniques = pd.factorize(array, sort=True)
    return codes.astype(np.int64), Vocabulary(np.asarray(uniques), name=column)


def _numbers(values: pd.Series, column: str, where: _Locator) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = _first(~np.isfinite(numbers))
    if bad is not None:
        raise where.error(bad, column, "is not a finite number")
    return numbers.astype(np.float32)


def _seconds(values: pd.Series, column: str, where: _Locator) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        bad = _first(values.isna().to_numpy())
        if bad is not None:
            raise where.error(bad, column, "is not a time")
        return unix_seconds(values)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    if np.isfinite(numbers).all():
        return np.floor(numbers).astype(np.int64)
    numeric_share = np.isfinite(numbers).mean()
    if numeric_share > 0:  # mostly Unix seconds: the non-numeric entry is the bad one
        raise where.error(_first(~np.isfinite(numbers)), column, "is not Unix seconds")
    times = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    bad = _first(times.isna().to_numpy())
    if bad is not None:
        raise where.error(bad, column, "is not Unix seconds or an ISO-8601 time")
    return unix_seconds(times)

"""Strict, vectorised reading of delimited release files; every error names file, line, field.

pyarrow reads a file first (``_arrow_csv``); the reference reader (``_table_reader``)
re-reads only a file that path cannot vouch for, to accept it or name the bad line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recft.data._arrow_csv import NotFast, read_frame
from recft.data._table_reader import Column, TableReader, read_line, split_line
from recft.errors import DataError

__all__ = ["UTF8_OR_LATIN1", "Column", "factorize_sorted", "read_table", "unix_seconds"]

#: Try UTF-8 and fall back to Latin-1: a Latin-1 file with accents is almost never valid
#: UTF-8, while Latin-1 decodes any bytes, so the order matters.
UTF8_OR_LATIN1 = "utf-8|latin-1"


class _TextDecodeError(DataError):
    """The file is not text in the expected encoding."""


def read_table(
    path: str | Path,
    columns: Sequence[Column],
    *,
    sep: str,
    header: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoted: bool = False,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Read a delimited file whose every line must have exactly ``len(columns)`` fields.

    The fast path is pyarrow's streaming reader with typed columns; only when it has doubts
    (a parse error, an empty or non-finite value, a blank line) does the reference reader
    run: a typed pandas read, then a re-read as text that finds the first bad line. Valid
    files pay nothing for the diagnosis.

    Args:
        path: the file.
        columns: its fields, in order.
        sep: field separator; multi-character separators such as ``"::"`` are supported.
        header: the expected header names when the first line is a header, else None.
        encoding: a codec name, or ``UTF8_OR_LATIN1``.
        quoted: CSV quoting (``"a, b"``) is honoured; otherwise quotes are plain text.
        allow_empty: a file without data rows is valid (tag files); otherwise an error.

    Returns:
        A frame with one column per ``columns`` entry; row ``r`` is line
        ``r + 1 + (header is not None)`` of the file.

    Raises:
        DataError: missing or empty file, wrong header, wrong field count, empty required
            field, non-numeric or non-finite number, undecodable text.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=path, line=1)
    if encoding == UTF8_OR_LATIN1:
        try:
            return read_table(path, columns, sep=sep, header=header, encoding="utf-8",
                              quoted=quoted, allow_empty=allow_empty)
        except _TextDecodeError:
            return read_table(path, columns, sep=sep, header=header, encoding="latin-1",
                              quoted=quoted, allow_empty=allow_empty)
    first_line = 1
    if header is not None:
        _check_header(path, list(header), sep, encoding, quoted)
        first_line = 2
    reader = TableReader(path, columns, sep, encoding, quoted, first_line)
    try:
        frame = read_frame(reader.open, columns, sep=reader.arrow_sep, first_line=first_line,
                           encoding=encoding, quoted=quoted)
    except NotFast:  # pandas reads it again, and names the bad line if there is one
        frame = None
    try:
        frame = reader.read() if frame is None else frame
    except UnicodeDecodeError as error:
        raise _TextDecodeError(f"not valid {encoding} text ({error.reason})",
                               path=path) from None
    if not len(frame) and not allow_empty:
        raise DataError("file has no data rows", path=path, line=first_line)
    return frame


def _check_header(path: Path, expected: list[str], sep: str, encoding: str,
                  quoted: bool) -> None:
    found_line = read_line(path, 1, encoding) or ""
    found = [name.strip() for name in split_line(found_line, sep, quoted)]
    if found != expected:
        raise DataError(
            f"header is {sep.join(found)!r}, expected {sep.join(expected)!r}",
            path=path, line=1,
        )


def factorize_sorted(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)`` with sorted uniques: one hash pass instead of unique + lookup."""
    codes, uniques = pd.factorize(np.asarray(values), sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def unix_seconds(times: pd.Series) -> np.ndarray:
    """(N,) int64 Unix seconds of a datetime Series (naive values are taken as UTC)."""
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times.to_numpy().astype("datetime64[s]").astype(np.int64)

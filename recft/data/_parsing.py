"""Strict, vectorised reading of delimited release files; every error names file, line, field."""

from __future__ import annotations

import csv
import io
import itertools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from recft.data._arrow_csv import NotFast, read_frame
from recft.errors import DataError

#: Multi-character separators (MovieLens ``::``) are rewritten to this byte so the fast C
#: parser can read them; it never occurs in text (benchmarks/bench_separator.py measured
#: this against ``engine="python"``).
_UNIT_SEPARATOR = "\x1f"
#: Try UTF-8 and fall back to Latin-1: a Latin-1 file with accents is almost never valid
#: UTF-8, while Latin-1 decodes any bytes, so the order matters.
UTF8_OR_LATIN1 = "utf-8|latin-1"

FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
EOF_IN_STRING = re.compile(r"EOF inside string starting at row (\d+)")


class _TextDecodeError(DataError):
    """The file is not text in the expected encoding."""


@dataclass(frozen=True)
class Column:
    """One field of a release file.

    Attributes:
        name: the field's name in error messages and in the returned frame.
        kind: ``"int"``, ``"float"``, ``"str"`` or ``"category"`` (repetitive strings).
        optional: the field may be empty (e.g. u.item's video release date).
    """

    name: str
    kind: str = "str"
    optional: bool = False


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

    The fast path is one pandas C-parser call with typed columns; only when it fails (or a
    vectorised check finds an empty or non-finite value) is the file re-read as text to
    find the first bad line, so valid files pay nothing for the diagnosis.

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
    reader = _Reader(path, columns, sep, encoding, quoted, first_line)
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


class _Reader:
    """The fast typed read and, on failure, the text re-read that pinpoints the bad line."""

    def __init__(self, path: Path, columns: Sequence[Column], sep: str, encoding: str,
                 quoted: bool, first_line: int) -> None:
        self.path, self.columns, self.encoding = path, list(columns), encoding
        self.quoted, self.first_line, self.sep = quoted, first_line, sep

    @property
    def arrow_sep(self) -> str:
        return self.sep if len(self.sep) == 1 else _UNIT_SEPARATOR

    def open(self) -> BinaryIO:
        """The file's bytes, with a multi-character separator rewritten to one byte."""
        if len(self.sep) == 1:
            return open(self.path, "rb")
        data = self.path.read_bytes()
        if _UNIT_SEPARATOR.encode() in data:
            raise DataError("file contains the control byte 0x1f, which recft reserves",
                            path=self.path)
        return io.BytesIO(data.replace(self.sep.encode(), _UNIT_SEPARATOR.encode()))

    def _source(self) -> str | io.BytesIO | Path:
        return self.path if len(self.sep) == 1 else self.open()

    def _read_csv(self, dtype: dict[str, str] | str) -> pd.DataFrame:
        return pd.read_csv(
            self._source(),
            sep=self.arrow_sep,
            header=None,
            skiprows=self.first_line - 1,
            names=[c.name for c in self.columns],
            dtype=dtype,
            engine="c",
            encoding=self.encoding,
            quoting=csv.QUOTE_MINIMAL if self.quoted else csv.QUOTE_NONE,
            # only truly empty fields are "missing": "NA" is a valid title or tag
            keep_default_na=False,
            na_values=[],
            skip_blank_lines=False,
        )

    def read(self) -> pd.DataFrame:
        kinds = {"int": "int64", "float": "float64", "str": "str", "category": "category"}
        try:
            with warnings.catch_warnings():  # "1e20" as int64 warns before it raises
                warnings.simplefilter("ignore", RuntimeWarning)
                frame = self._read_csv({c.name: kinds[c.kind] for c in self.columns})
        except pd.errors.ParserError as error:
            raise self._parser_error(error) from None
        except (ValueError, OverflowError):  # a bad number: find it in the text re-read
            return self._diagnose()
        for column in self.columns:
            values = frame[column.name]
            if column.kind == "float" and not np.isfinite(values.to_numpy()).all():
                return self._diagnose()
            if column.kind in ("str", "category") and not column.optional and len(values):
                if (values == "").to_numpy().any():
                    return self._diagnose()
        return frame

    def _parser_error(self, error: Exception) -> DataError:
        message = str(error)
        match = FIELD_COUNT.search(message)
        if match:
            expected, line, found = (int(g) for g in match.groups())
            return DataError(f"expected {expected} fields, found {found}",
                             path=self.path, line=line)
        match = EOF_IN_STRING.search(message)
        if match:
            return DataError("unterminated quoted field", path=self.path,
                             line=int(match.group(1)) + 1)
        return DataError(f"cannot parse: {message}", path=self.path)

    def _diagnose(self) -> pd.DataFrame:
        """Re-read every field as text, find the first bad line and explain it."""
        try:
            text = self._read_csv("str")
        except pd.errors.ParserError as error:
            raise self._parser_error(error) from None
        text = self._drop_trailing_blank_lines(text)
        first_bad: tuple[int, str] | None = None
        converted = {}
        for column in self.columns:
            values = text[column.name]
            if column.kind in ("int", "float"):
                parsed = pd.to_numeric(values, errors="coerce")
                numbers = parsed.to_numpy(dtype=np.float64)
                bad = ~np.isfinite(numbers)
                if column.kind == "int":  # integral and inside int64 (2**63 itself is not)
                    bad |= (numbers != np.round(numbers)) | (np.abs(numbers) >= 2**63)
                    # all-integer text parses to exact int64; floats (4.0) convert safely
                    numbers = parsed.to_numpy() if parsed.dtype == np.int64 else numbers
                converted[column.name] = numbers
            elif not column.optional:
                bad = (values == "").to_numpy()
            else:
                continue
            if bad.any() and (first_bad is None or int(np.argmax(bad)) < first_bad[0]):
                first_bad = (int(np.argmax(bad)), column.name)
        if first_bad is not None:
            row, field = first_bad
            raise self._explain(row, field, str(text.iloc[row][field]))
        frame = text.copy()
        for column in self.columns:
            if column.kind == "int":
                frame[column.name] = converted[column.name].astype(np.int64)
            elif column.kind == "float":
                frame[column.name] = converted[column.name]
            elif column.kind == "category":
                frame[column.name] = frame[column.name].astype("category")
        return frame

    def _drop_trailing_blank_lines(self, text: pd.DataFrame) -> pd.DataFrame:
        empty_rows = (text == "").to_numpy().all(axis=1)
        trailing = 0
        while trailing < len(empty_rows) and empty_rows[len(empty_rows) - 1 - trailing]:
            trailing += 1
        if not trailing:
            return text
        # k blank rows at the end are harmless only if the file ends in k + 1 line breaks;
        # otherwise the last "empty" row is a broken line such as "\t\t\t"
        size = self.path.stat().st_size
        with open(self.path, "rb") as handle:
            handle.seek(max(0, size - 4 * trailing - 8))
            tail = handle.read()
        breaks = tail[len(tail.rstrip(b"\r\n")):].count(b"\n")
        return text.iloc[: len(text) - trailing] if breaks >= trailing + 1 else text

    def _explain(self, row: int, field: str, value: str) -> DataError:
        line = row + self.first_line
        raw = _read_line(self.path, line, self.encoding)
        if raw is not None:
            fields = _split_line(raw, self.sep, self.quoted)
            if raw.strip("\r\n") == "":
                return DataError("blank line inside the data", path=self.path, line=line)
            if len(fields) != len(self.columns):
                return DataError(f"expected {len(self.columns)} fields, found {len(fields)}",
                                 path=self.path, line=line)
        kind = next(c.kind for c in self.columns if c.name == field)
        if value == "":
            return DataError("empty value", path=self.path, line=line, field=field)
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        if kind == "int" and np.isfinite(number) and number == round(number):
            return DataError(f"{value!r} is outside the 64-bit integer range", path=self.path,
                             line=line, field=field)
        expected = {"int": "an integer", "float": "a finite number"}.get(kind, "a value")
        return DataError(f"{value!r} is not {expected}", path=self.path, line=line, field=field)


def _read_line(path: Path, line: int, encoding: str) -> str | None:
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        found = next(itertools.islice(handle, line - 1, line), None)
    return None if found is None else found.rstrip("\r\n")


def _split_line(raw: str, sep: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([raw], delimiter=sep), [])
    return raw.split(sep)


def _check_header(path: Path, expected: list[str], sep: str, encoding: str,
                  quoted: bool) -> None:
    found_line = _read_line(path, 1, encoding) or ""
    found = [name.strip() for name in _split_line(found_line, sep, quoted)]
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

"""The reference reader of release files (pandas' C parser), which names every bad line.

``_parsing.read_table`` tries pyarrow first (``_arrow_csv``); a file that path cannot
vouch for comes here: a typed read, and on failure a re-read as text that finds the first
bad line and says what is wrong with it.
"""

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

from recft.data._text_numbers import to_numbers
from recft.errors import DataError

#: Multi-character separators (MovieLens ``::``) are rewritten to this byte so the fast C
#: parser can read them; it never occurs in text (benchmarks/bench_separator.py measured
#: this against ``engine="python"``).
UNIT_SEPARATOR = "\x1f"

#: A big file that pyarrow could not vouch for is searched for its bad line in chunks of
#: CHUNK_ROWS rows before anything reads it whole as text, which takes several times the
#: fast path's memory (benchmarks/bench_big_file.py, step describe-bad-value).
CHUNKED_ABOVE_BYTES = 64 << 20
CHUNK_ROWS = 1_000_000

FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
EOF_IN_STRING = re.compile(r"EOF inside string starting at row (\d+)")


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


class TableReader:
    """A typed pandas read and, on failure, the text re-read that pinpoints the bad line."""

    def __init__(self, path: Path, columns: Sequence[Column], sep: str, encoding: str,
                 quoted: bool, first_line: int) -> None:
        self.path, self.columns, self.encoding = path, list(columns), encoding
        self.quoted, self.first_line, self.sep = quoted, first_line, sep

    @property
    def arrow_sep(self) -> str:
        return self.sep if len(self.sep) == 1 else UNIT_SEPARATOR

    def open(self) -> BinaryIO:
        """The file's bytes, with a multi-character separator rewritten to one byte."""
        if len(self.sep) == 1:
            return open(self.path, "rb")
        data = self.path.read_bytes()
        if UNIT_SEPARATOR.encode() in data:
            raise DataError("file contains the control byte 0x1f, which recft reserves",
                            path=self.path)
        return io.BytesIO(data.replace(self.sep.encode(), UNIT_SEPARATOR.encode()))

    def _source(self) -> str | io.BytesIO | Path:
        return self.path if len(self.sep) == 1 else self.open()

    def _read_csv(self, dtype: dict[str, str] | str,
                  chunksize: int | None = None) -> pd.DataFrame:
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
            chunksize=chunksize,
        )

    def read(self) -> pd.DataFrame:
        if self.path.stat().st_size > CHUNKED_ABOVE_BYTES:
            self._raise_first_bad_in_chunks()
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
            required_text = column.kind in ("str", "category") and not column.optional
            if required_text and len(values) and (values == "").to_numpy().any():
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
        first_bad, converted = self._checked(text)
        if first_bad is not None:
            raise self._explain(*first_bad)
        frame = text.copy()
        for column in self.columns:
            if column.kind == "int":
                frame[column.name] = converted[column.name].astype(np.int64)
            elif column.kind == "float":
                frame[column.name] = converted[column.name]
            elif column.kind == "category":
                frame[column.name] = frame[column.name].astype("category")
        return frame

    def _raise_first_bad_in_chunks(self) -> None:
        """For a big file: find a bad line a chunk of text at a time (bounded memory).

        Rows of empty fields are passed over: at the end of the file they are harmless,
        and ``_diagnose``, reading the whole file, tells.
        """
        try:
            for text in self._read_csv("str", chunksize=CHUNK_ROWS):
                first_bad, _ = self._checked(text[~(text == "").to_numpy().all(axis=1)])
                if first_bad is not None:
                    raise self._explain(*first_bad)
        except pd.errors.ParserError as error:
            raise self._parser_error(error) from None

    def _checked(self, text: pd.DataFrame) -> tuple[tuple[int, str, str] | None,
                                                    dict[str, np.ndarray]]:
        """The first bad value (row label, field, text) and the parsed number columns."""
        first_bad: tuple[int, str] | None = None
        converted = {}
        for column in self.columns:
            values = text[column.name]
            if column.kind in ("int", "float"):
                parsed = to_numbers(values)
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
        if first_bad is None:
            return None, converted
        position, field = first_bad
        return (int(text.index[position]), field, str(text[field].iloc[position])), converted

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
        raw = read_line(self.path, line, self.encoding)
        if raw is not None:
            fields = split_line(raw, self.sep, self.quoted)
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


def read_line(path: Path, line: int, encoding: str) -> str | None:
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        found = next(itertools.islice(handle, line - 1, line), None)
    return None if found is None else found.rstrip("\r\n")


def split_line(raw: str, sep: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([raw], delimiter=sep), [])
    return raw.split(sep)

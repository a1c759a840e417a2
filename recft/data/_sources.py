"""Opening the user's delimited files: compression from the bytes, header and line numbers.

A file's first bytes decide how it is decompressed (gzip, bz2, xz, zstd, zip), whatever
its name says: a gzip file named ``clicks.csv`` is read like ``clicks.csv.gz``. Its
suffix decides the format (CSV, TSV or Parquet); a Parquet file named ``.csv`` is refused
with a hint instead of being parsed as text.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from recft.errors import DataError

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"))
_PARQUET_MAGIC = b"PAR1"

Opener = Callable[[], BinaryIO]


def compression_of(path: Path) -> str | None:
    """``gzip``, ``bz2``, ``xz``, ``zstd`` or ``zip`` from the magic bytes, else None."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def text_opener(path: Path) -> Opener:
    """A function that opens ``path`` as decompressed bytes (called once per reading pass).

    Raises:
        DataError: a Parquet file with a text suffix, or a zip archive that does not hold
            exactly one file.
    """
    compression = compression_of(path)
    if compression is None:
        with open(path, "rb") as handle:
            if handle.read(4) == _PARQUET_MAGIC:
                raise DataError("this is a Parquet file, not delimited text", path=path,
                                hint="give it the suffix .parquet")
        return lambda: open(path, "rb")
    if compression == "gzip":
        return lambda: gzip.open(path, "rb")
    if compression == "bz2":
        return lambda: bz2.open(path, "rb")
    if compression == "xz":
        return lambda: lzma.open(path, "rb")
    if compression == "zstd":
        import pyarrow as pa

        return lambda: pa.input_stream(str(path), compression="zstd")
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if not m.endswith("/")]
    if len(members) != 1:
        raise DataError(f"a zip archive must hold exactly one file, found {len(members)}",
                        path=path)
    return lambda: zipfile.ZipFile(path).open(members[0])


def read_header(path: Path, opener: Opener, sep: str) -> list[str]:
    """The column names on line 1; a name that occurs twice is an error naming it."""
    with opener() as raw:
        first = raw.readline(1 << 20)
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 text ({error.reason} at byte {error.start})", path=path,
                        line=1) from None
    line = line.rstrip("\r\n")
    names = next(csv.reader([line], delimiter=sep), []) if len(sep) == 1 else line.split(sep)
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"column {name!r} appears twice in the header (columns "
                            f"{seen[name]} and {position})", path=path, line=1, field=name)
        seen[name] = position
    return names


class RecordLines:
    """The file line on which each CSV record starts (record 0 is the header).

    Records and lines differ after a quoted field that spans lines, so Python's csv
    module reads the records up to the one asked for (error paths only: it is slow).
    """

    def __init__(self, opener: Opener, sep: str) -> None:
        self.opener, self.sep = opener, sep
        self._starts: list[int] = []  # start line of each record scanned so far
        self._blank: list[bool] = []
        self._next_line = 1  # where the record after the scanned ones starts
        self._complete = False

    def _scan(self, upto: int) -> None:
        if self._complete or len(self._starts) > upto:
            return
        starts, blank, line = [], [], 1
        with self.opener() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            if len(self.sep) == 1:
                reader = csv.reader(text, delimiter=self.sep)
                try:
                    for fields in reader:
                        starts.append(line)
                        blank.append(fields == [])
                        line = reader.line_num + 1
                        if len(starts) > upto:
                            break
                except csv.Error:  # a NUL byte or an over-long field: stop counting here
                    pass
            else:  # multi-character separators cannot quote: lines are records
                for row in text:
                    starts.append(line)
                    blank.append(row.strip("\r\n") == "")
                    line += 1
                    if len(starts) > upto:
                        break
        self._starts, self._blank, self._next_line = starts, blank, line
        self._complete = len(starts) <= upto

    def line(self, record: int) -> int:
        """1-based line where ``record`` starts (past the last record read: one line each)."""
        self._scan(record)
        if record < len(self._starts):
            return self._starts[record]
        return self._next_line + (record - len(self._starts))

    def is_blank(self, record: int) -> bool:
        """Whether ``record`` is an empty line (not a line of empty fields like ``,,,``)."""
        self._scan(record)
        return record < len(self._blank) and self._blank[record]


def first_true(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None

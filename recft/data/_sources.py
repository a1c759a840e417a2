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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

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
    """The file line on which a CSV record starts (record 0 is the header), and whether it
    is a blank line. Only error paths ask, for a few records.

    Records and lines differ only after a quoted field that spans lines (or a lone carriage
    return). While neither occurs, a byte scan counts lines (records 0..r are lines
    1..r + 1); past one, Python's csv module reads records, which is slower.
    """

    block_size = 1 << 22

    def __init__(self, opener: Opener, sep: str) -> None:
        self.opener, self.sep = opener, sep
        self._known: dict[int, tuple[int, bool]] = {}  # record -> (line, blank)

    def line(self, record: int) -> int:
        """1-based line where ``record`` starts."""
        return self._lookup([record])[record][0]

    def blank(self, records: Sequence[int]) -> list[bool]:
        """Per record: an empty line (True), or fields, perhaps all empty like ``,,,``."""
        known = self._lookup(records)
        return [known[r][1] for r in records]

    def _lookup(self, records: Sequence[int]) -> dict[int, tuple[int, bool]]:
        wanted = sorted(set(records) - self._known.keys())
        if wanted:
            found = self._plain_lines(wanted)
            self._known.update(found if found is not None else self._csv_records(wanted))
        return self._known

    def _plain_lines(self, wanted: list[int]) -> dict[int, tuple[int, bool]] | None:
        """Records as lines, by counting line breaks in blocks (C speed); None once a
        quote or a lone carriage return shows up before the last record wanted."""
        found: dict[int, tuple[int, bool]] = {}
        before = 0  # lines that ended in earlier blocks
        tail = b""  # the unfinished line at the end of the previous block
        with self.opener() as raw:
            while len(found) < len(wanted):
                block = raw.read(self.block_size)
                data = tail + block
                cut = len(data) if not block else data.rfind(b"\n") + 1
                lines, tail = data[:cut], data[cut:]
                if b'"' in lines or b"\r" in lines.replace(b"\r\n", b""):
                    return None
                count = lines.count(b"\n") + (1 if not block and lines else 0)
                if wanted[len(found)] < before + count:
                    texts = lines.split(b"\n")
                    while len(found) < len(wanted) and wanted[len(found)] < before + count:
                        record = wanted[len(found)]
                        found[record] = (record + 1, texts[record - before].strip(b"\r") == b"")
                before += count
                if not block:
                    break
        return {**found, **{r: (r + 1, False) for r in wanted[len(found):]}}

    def _csv_records(self, wanted: list[int]) -> dict[int, tuple[int, bool]]:
        """Records read by Python's csv module, which knows where quoted fields end."""
        found: dict[int, tuple[int, bool]] = {}
        line = 1  # where the next record starts
        with self.opener() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            reader = csv.reader(text, delimiter=self.sep if len(self.sep) == 1 else "\x1f")
            try:
                for number, fields in enumerate(reader):
                    if number == wanted[len(found)]:
                        found[number] = (line, fields == [])
                        if len(found) == len(wanted):
                            return found
                    line = reader.line_num + 1
            except csv.Error:  # a NUL byte or an over-long field: count lines from here
                pass
        past = wanted[len(found):]
        return {**found, **{r: (line + r - past[0], False) for r in past}}

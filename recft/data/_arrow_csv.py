"""The fast path for delimited files: pyarrow parses them into typed columns.

pyarrow's CSV reader is fast, multi-threaded and frugal with memory, but it explains a
bad line less well than the reference parser (pandas, in ``_parsing`` and ``tabular``),
and it accepts some broken files silently: an unterminated quote in the last block
swallows the rest of the file into one field. So this path is conservative: whatever it
cannot vouch for raises ``NotFast``, and the caller then runs the reference parser,
which accepts the file or names the bad line. The fast path changes speed and memory,
never which files are accepted or what they load as.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(),
                "category": pa.dictionary(pa.int32(), pa.string())}
_PANDAS_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str" dtype


class NotFast(Exception):
    """The fast path cannot vouch for this input; the reference parser decides."""


class _QuoteCounter(io.RawIOBase):
    """Passes bytes through, counting quote characters: an odd total means an unterminated
    quoted field somewhere (pyarrow may have read past it without a word)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw, self.quotes = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.quotes += data.count(b'"')
        return len(data)


def read_columns(
    opener: Callable[[], BinaryIO],
    *,
    names: Sequence[str],
    skip_rows: int,
    sep: str,
    quoted: bool,
    types: dict[str, pa.DataType],
    include: Sequence[str] | None = None,
    encoding: str = "utf-8",
    skip_blank_lines: bool = True,
) -> dict[str, pa.ChunkedArray]:
    """Parse a delimited file into arrow columns (``types`` fixed, the rest inferred).

    Empty fields stay empty strings (never nulls), so a typed number column with an
    empty field fails to parse, as it should. ``skip_blank_lines=False`` turns a blank
    line into a row of empty fields, which the caller's checks then send to the
    reference parser (for files where a blank line inside the data is an error).

    Raises:
        NotFast: any parse or conversion error, or an odd number of quote characters.
    """
    if len(sep) != 1:
        raise NotFast("pyarrow reads single-character separators only")
    with opener() as raw:
        source = _QuoteCounter(raw)
        try:
            # the streaming reader: read_csv's whole-table reader peaked at 2.5x the table
            reader = pa_csv.open_csv(
                source,
                read_options=pa_csv.ReadOptions(column_names=list(names), skip_rows=skip_rows,
                                                encoding=encoding),
                parse_options=pa_csv.ParseOptions(
                    delimiter=sep, quote_char='"' if quoted else False, double_quote=quoted,
                    newlines_in_values=quoted, ignore_empty_lines=skip_blank_lines),
                convert_options=pa_csv.ConvertOptions(
                    column_types=types, include_columns=list(include or names),
                    null_values=[], strings_can_be_null=False,
                    quoted_strings_can_be_null=False),
            )
            table = pa.Table.from_batches(list(reader), schema=reader.schema)
        except (pa.ArrowException, UnicodeDecodeError) as error:
            raise NotFast(str(error)) from None
    if quoted and source.quotes % 2:
        raise NotFast("odd number of quote characters")
    columns = {name: table.column(name) for name in table.column_names}
    del table  # columns are released one by one as the caller converts them
    for name, column in columns.items():
        if quoted and _is_text(column.type) and _has_line_break(column):
            raise NotFast(f"a value of {name!r} spans lines")
    return columns


def read_frame(
    opener: Callable[[], BinaryIO],
    columns: Sequence,
    *,
    sep: str,
    first_line: int,
    encoding: str,
    quoted: bool,
) -> pd.DataFrame:
    """``_parsing.read_table``'s frame from pyarrow; ``NotFast`` where it has doubts."""
    arrow = read_columns(
        opener, names=[c.name for c in columns], skip_rows=first_line - 1, sep=sep,
        quoted=quoted, types={c.name: _ARROW_TYPES[c.kind] for c in columns},
        encoding=encoding, skip_blank_lines=False)
    frame = {}
    for column in columns:
        values = arrow.pop(column.name)
        if column.kind == "category":
            series = values.to_pandas()
        elif column.kind == "str":
            series = values.to_pandas(types_mapper={pa.string(): _PANDAS_STR}.get)
        else:
            series = to_numpy(values)
            if column.kind == "float" and not np.isfinite(series).all():
                raise NotFast(f"non-finite {column.name}")
        required_text = column.kind in ("str", "category") and not column.optional
        if required_text and len(values) and pc.any(pc.equal(_decoded(values), "")).as_py():
            raise NotFast(f"empty {column.name}")
        frame[column.name] = series
    del values
    release_memory()
    return pd.DataFrame(frame, copy=False)


def release_memory() -> None:
    """Hand the memory of freed arrow buffers back to the system.

    Arrow's allocator keeps what it frees for reuse by arrow, but what a loader builds
    next is numpy arrays: without this, the parsed table stays in the process's memory
    after conversion (at 25M rows, 0.8 GB: benchmarks/bench_big_file.py).
    """
    pa.default_memory_pool().release_unused()


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column without nulls as one numpy array (numpy's memory, not arrow's pool)."""
    chunks = [chunk.to_numpy() for chunk in column.chunks]
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.zeros(0, column.type.to_pandas_dtype())


def _decoded(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """String values of a plain or dictionary-encoded column."""
    if pa.types.is_dictionary(values.type):
        return pa.chunked_array([chunk.dictionary for chunk in values.chunks],
                                type=values.type.value_type)
    return values


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or (
        pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type))


def _has_line_break(column: pa.ChunkedArray) -> bool:
    values = _decoded(column)
    return bool(len(values)) and pc.any(pc.match_substring_regex(values, "[\r\n]")).as_py()

"""The reference reading of the user's delimited files: every field as text (pandas).

``tabular`` turns to it when the fast arrow path cannot vouch for a file. Blank lines are
dropped (the frame's index keeps counting them, so row ``r`` is record ``r + 1``), a line
of empty fields (``,,,``) is refused, and pandas' parser errors are reported at the file
line (pandas counts records from 0, the header included; users count lines from 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from recft.data._sources import Opener, RecordLines
from recft.data._table_reader import EOF_IN_STRING, FIELD_COUNT
from recft.errors import DataError


def text_frames(path: Path, opener: Opener, sep: str, lines: RecordLines,
                chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The file's data rows as text frames: one frame, or ``chunk_rows`` rows at a time
    (a chunk may be empty when it held only blank lines).

    Raises:
        DataError: a parse error or a line of empty fields, at its file line; not UTF-8.
    """
    try:
        with opener() as raw:
            frames = pd.read_csv(raw, sep=sep, dtype=str, keep_default_na=False, na_values=[],
                                 skip_blank_lines=False, compression=None,
                                 encoding="utf-8-sig", chunksize=chunk_rows)
            for frame in [frames] if chunk_rows is None else frames:
                yield _without_blank_lines(frame, path, lines)
    except pd.errors.ParserError as error:
        raise _parser_error(str(error), path, lines) from None
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 text ({error.reason})", path=path) from None


def _without_blank_lines(frame: pd.DataFrame, path: Path, lines: RecordLines) -> pd.DataFrame:
    empty = (frame == "").to_numpy().all(axis=1)
    if not empty.any():
        return frame
    records = (frame.index[empty] + 1).tolist()  # the header is record 0
    for record, blank in zip(records, lines.blank(records)):
        if not blank:
            raise DataError("every field is empty", path=path, line=lines.line(record))
    return frame[~empty]  # blank lines carry nothing; the index keeps their numbering


def _parser_error(message: str, path: Path, lines: RecordLines) -> DataError:
    match = FIELD_COUNT.search(message)
    if match:  # "in line N" is the 1-based record number
        expected, record, found = (int(g) for g in match.groups())
        return DataError(f"expected {expected} fields, found {found}", path=path,
                         line=lines.line(record - 1))
    match = EOF_IN_STRING.search(message)
    if match:  # "starting at row N" is the 0-based record number
        return DataError("unterminated quoted field (the quote opens on this line)",
                         path=path, line=lines.line(int(match.group(1))))
    return DataError(f"cannot parse: {message}", path=path)


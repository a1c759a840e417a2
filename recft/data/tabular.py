"""The user's own interactions: CSV, TSV, Parquet files or a DataFrame, with a column mapping.

Defaults: columns ``user_id`` and ``item_id``; ``rating``, ``timestamp`` and ``weight`` are
used automatically when present. Every row is kept as in the file.

Files are read by pyarrow into compact columns (``_arrow_csv``, ``_arrow_columns``); a
file that path cannot vouch for is read again by the reference parser below (pandas),
which accepts it or names the file, line and field at fault.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recft.data._arrow_columns import float32_values, id_rows, unix_seconds
from recft.data._arrow_csv import NotFast, read_columns, release_memory
from recft.data._pandas_columns import Locator, ids, numbers, seconds
from recft.data._sources import RecordLines, read_header, text_opener
from recft.data._table_reader import CHUNK_ROWS, CHUNKED_ABOVE_BYTES
from recft.data._text_frames import text_frames
from recft.data.interactions import FEEDBACK_KINDS, Interactions
from recft.errors import DataError

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
_ROLES = ("user", "item", "rating", "timestamp", "weight")


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
    """Read interactions from a .csv/.tsv (optionally compressed) or .parquet file.

    Args:
        path: the file; the first line of a CSV/TSV is its header. Compression (gzip, bz2,
            xz, zstd, a one-file zip) is recognised from the bytes, whatever the name.
        user, item: id columns (ints or strings; ``"007"`` stays a string, and so do
            integers beyond the 64-bit range).
        rating: rating or count column (default ``rating`` if present).
        timestamp: Unix seconds or ISO-8601 datetimes (default ``timestamp`` if present);
            naive datetimes are taken as UTC; times outside 1900..2200 are refused.
        weight: sample-weight column (default ``weight`` if present).
        sep: field separator (default from the suffix: ``,`` for .csv, tab for .tsv).
        feedback: ``explicit``/``count``/``implicit`` (default explicit with a rating
            column); a negative ``count`` is refused.

    Raises:
        DataError: missing file or column (listing the columns found), a column named twice
            in the header, a line of empty fields, an unterminated quote, or an empty,
            non-numeric, non-finite or out-of-range value, naming its line (the header is
            line 1).

    Example::

        x = read_interactions("clicks.csv", user="uid", item="sku", timestamp="ts")
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DataError("file is empty", path=path, line=1)
    if feedback is not None and feedback not in FEEDBACK_KINDS:
        raise DataError(f"feedback must be one of {FEEDBACK_KINDS}, got {feedback!r}")
    suffixes = [s.lower() for s in path.suffixes]
    base = suffixes[-2] if len(suffixes) > 1 and suffixes[-1] in _COMPRESSIONS else (
        suffixes[-1] if suffixes else "")
    requested = {"user": user, "item": item, "rating": rating, "timestamp": timestamp,
                 "weight": weight}
    name = path.name.split(".")[0]
    if base == ".parquet":
        return _read_parquet(path, requested, feedback, name)
    if sep is None and base not in _SEPARATORS:
        raise DataError(
            f"cannot tell the format from the suffix {''.join(suffixes)!r}; use .csv, .tsv, "
            ".parquet (optionally .gz), or pass sep=", path=path)
    sep = sep or _SEPARATORS[base]
    opener = text_opener(path)
    header = read_header(path, opener, sep)
    roles = _roles(header, requested, path, line=1)
    types = {roles[r]: pa.dictionary(pa.int32(), pa.string()) for r in ("user", "item")}
    types.update({roles[r]: pa.float32() for r in ("rating", "weight") if r in roles})
    try:
        columns = read_columns(opener, names=header, skip_rows=1,
                               sep=sep, quoted=True, types=types,
                               include=sorted(set(roles.values())))
        if not len(columns[roles["user"]]):
            raise NotFast("no data rows")  # the reference parser words that error
        return _from_arrow(columns, roles, feedback, path, name)
    except NotFast:
        pass
    lines = RecordLines(opener, sep)
    if path.stat().st_size > CHUNKED_ABOVE_BYTES:
        # most likely a bad value: look for it a chunk at a time (bounded memory) before
        # reading the whole file as text, which takes several times the fast path's memory
        for chunk in text_frames(path, opener, sep, lines, chunk_rows=CHUNK_ROWS):
            if len(chunk):
                _convert(chunk, roles, feedback, Locator(chunk, path, lines), name)
    frame = next(text_frames(path, opener, sep, lines))
    return _convert(frame, roles, feedback, Locator(frame, path, lines), name)


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
    if feedback is not None and feedback not in FEEDBACK_KINDS:
        raise DataError(f"feedback must be one of {FEEDBACK_KINDS}, got {feedback!r}")
    found = [str(c) for c in frame.columns]
    twice = pd.Index(found)[pd.Index(found).duplicated()]
    if len(twice):
        raise DataError(f"column {twice[0]!r} appears twice", field=twice[0])
    requested = {"user": user, "item": item, "rating": rating, "timestamp": timestamp,
                 "weight": weight}
    roles = _roles(found, requested, None, line=None)
    return _convert(frame, roles, feedback, Locator(frame, None, None), name)


def _roles(found: list[str], requested: dict[str, str | None], path: Path | None,
           line: int | None) -> dict[str, str]:
    """Role (user, item, rating, ...) -> column name; optional roles default to their name."""
    roles = {}
    for role in _ROLES:
        column = requested[role] or (role if role in found and role not in ("user", "item")
                                     else None)
        if column is None:
            continue
        if column not in found:
            raise DataError(f"no {role} column {column!r}; columns found: {found}", path=path,
                            line=line, field=column)
        roles[role] = column
    return roles


def _feedback(roles: dict[str, str], feedback: str | None) -> str:
    return feedback or ("explicit" if "rating" in roles else "implicit")


def _from_arrow(columns: dict[str, pa.ChunkedArray], roles: dict[str, str],
                feedback: str | None, path: Path, name: str) -> Interactions:
    """The fast path's Interactions; ``NotFast`` sends the file to the reference parser.

    Each arrow column is dropped once converted, so the peak holds the parsed table and
    the finished columns, not two copies of everything.
    """
    uses = Counter(roles.values())

    def take(role: str) -> tuple[pa.ChunkedArray, str]:
        name = roles[role]
        uses[name] -= 1
        return (columns.pop(name) if not uses[name] else columns[name]), name

    user_rows, user_vocab = id_rows(*take("user"), path)
    item_rows, item_vocab = id_rows(*take("item"), path)
    values = {role: float32_values(*take(role), path) for role in ("rating", "weight")
              if role in roles}
    times = unix_seconds(*take("timestamp"), path) if "timestamp" in roles else None
    release_memory()
    kind = _feedback(roles, feedback)
    if kind == "count" and "rating" in values and (values["rating"] < 0).any():
        raise NotFast("negative count")  # the reference parser names its line
    return Interactions(
        user_ids=user_rows, item_ids=item_rows, user_vocab=user_vocab, item_vocab=item_vocab,
        ratings=values.get("rating"), weights=values.get("weight"), timestamps=times,
        feedback=kind, name=name)


def _read_parquet(path: Path, requested: dict[str, str | None], feedback: str | None,
                  name: str) -> Interactions:
    try:
        found = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot read Parquet: {error}", path=path) from None
    twice = pd.Index(found)[pd.Index(found).duplicated()]
    if len(twice):
        raise DataError(f"column {twice[0]!r} appears twice", path=path, field=twice[0])
    roles = _roles(found, requested, path, line=None)
    try:
        table = pq.read_table(path, columns=sorted(set(roles.values())))
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot read Parquet: {error}", path=path) from None
    if not table.num_rows:
        raise DataError("no data rows", path=path)
    try:
        return _from_arrow({n: table.column(n) for n in table.column_names}, roles, feedback,
                           path, name)
    except NotFast:
        frame = table.to_pandas()
        return _convert(frame, roles, feedback, Locator(frame, path, None), name)


def _convert(frame: pd.DataFrame, roles: dict[str, str], feedback: str | None,
             where: Locator, name: str) -> Interactions:
    """The reference conversion of a frame's columns (every rule, every located error)."""
    if not len(frame):
        raise DataError("no data rows", path=where.path, line=2 if where.lines else None)
    user_rows, user_vocab = ids(frame[roles["user"]], roles["user"], where)
    item_rows, item_vocab = ids(frame[roles["item"]], roles["item"], where)
    kind = _feedback(roles, feedback)
    ratings = None
    if "rating" in roles:
        ratings = numbers(frame[roles["rating"]], roles["rating"], where,
                          nonnegative=kind == "count")
    return Interactions(
        user_ids=user_rows, item_ids=item_rows, user_vocab=user_vocab, item_vocab=item_vocab,
        ratings=ratings,
        weights=numbers(frame[roles["weight"]], roles["weight"], where)
        if "weight" in roles else None,
        timestamps=seconds(frame[roles["timestamp"]], roles["timestamp"], where)
        if "timestamp" in roles else None,
        feedback=kind, name=name,
    )

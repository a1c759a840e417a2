"""Arrow columns (from CSV or Parquet) to the compact numpy columns of ``Interactions``.

Ids become rows of a sorted ``Vocabulary`` through a dictionary encoding (int32 codes
per chunk, one int64 row array at the end), so a 25M-row column never exists as 25M
Python strings. The rules are those of ``tabular``'s reference path: integer-looking ids
stay integers unless that would change them (``"007"``, or beyond int64: strings);
values it would refuse or has to locate raise ``NotFast``; column types that can never
hold ids, numbers or times (lists, booleans as times) are refused here, naming the type.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recft.data._arrow_csv import NotFast, to_numpy
from recft.data._time import outside_time_range
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

_INT64_MAX = 2**63 - 1
_SECONDS_PER = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def id_rows(column: pa.ChunkedArray, field: str, path: object) -> tuple[np.ndarray, Vocabulary]:
    """(N,) int64 rows into the sorted vocabulary of ``column``'s distinct ids."""
    kind = column.type
    if column.null_count:
        raise NotFast("missing id")
    if pa.types.is_unsigned_integer(kind) and len(column) and pc.max(column).as_py() > _INT64_MAX:
        column, kind = pc.cast(column, pa.string()), pa.string()
    if pa.types.is_floating(kind):
        try:  # a safe cast refuses fractions, NaN and values beyond int64
            column, kind = pc.cast(column, pa.int64()), pa.int64()
        except pa.ArrowInvalid:
            raise NotFast("non-integral float id") from None
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = pc.dictionary_encode(column)
    elif not (pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type)
                                                or pa.types.is_integer(kind.value_type))):
        raise DataError(f"a column of type {kind} holds no ids (expected integers or strings)",
                        path=path, field=field)
    column = column.unify_dictionaries()  # one dictionary shared by every chunk
    chunks = [chunk for chunk in column.chunks if len(chunk)]
    if not chunks:
        return np.zeros(0, np.int64), Vocabulary(np.zeros(0, np.int64), name=field)
    dictionary = chunks[0].dictionary
    present = np.zeros(len(dictionary), bool)  # a Parquet dictionary may list unused ids
    for chunk in chunks:
        present[chunk.indices.to_numpy()] = True
    values = _id_values(dictionary.filter(pa.array(present)))
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(dictionary), np.int64)
    rank[np.flatnonzero(present)[order]] = np.arange(len(order))
    rows = np.empty(len(column), np.int64)
    start = 0
    for chunk in chunks:
        rows[start:start + len(chunk)] = rank[chunk.indices.to_numpy()]
        start += len(chunk)
    return rows, Vocabulary(values[order], name=field)


def _id_values(uniques: pa.Array) -> np.ndarray:
    """The distinct ids as int64 (integers, or strings that are canonical integers) or str."""
    if pa.types.is_integer(uniques.type):
        try:
            return pc.cast(uniques, pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # unsigned beyond int64: the ids stay strings
            return pc.cast(uniques, pa.string()).to_numpy(zero_copy_only=False).astype(object)
    if pc.any(pc.equal(uniques, "")).as_py():
        raise NotFast("empty id")
    if pc.any(pc.match_substring_regex(uniques, "[\r\n]")).as_py():
        raise NotFast("id spans lines")
    if pc.all(pc.match_substring_regex(uniques, r"^-?[0-9]+$")).as_py():
        try:
            numbers = pc.cast(uniques, pa.int64())
        except pa.ArrowInvalid:  # beyond int64: the ids stay strings
            numbers = None
        if numbers is not None and pc.all(pc.equal(pc.cast(numbers, pa.string()),
                                                   uniques)).as_py():
            return numbers.to_numpy()
    return uniques.to_numpy(zero_copy_only=False).astype(object)


def float32_values(column: pa.ChunkedArray, field: str, path: object) -> np.ndarray:
    """(N,) float32 ratings, counts or weights; ``NotFast`` for anything not plainly finite."""
    kind = column.type
    if pa.types.is_nested(kind) or pa.types.is_binary(kind):
        raise DataError(f"a column of type {kind} holds no numbers", path=path, field=field)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) or column.null_count:
        raise NotFast(f"{field} needs the reference parser")
    values = to_numpy(column).astype(np.float32, copy=False)
    if not np.isfinite(values).all():
        raise NotFast(f"non-finite {field}")
    return values


def unix_seconds(column: pa.ChunkedArray, field: str, path: object) -> np.ndarray:
    """(N,) int64 Unix seconds inside the accepted range; ``NotFast`` to locate a bad one."""
    kind = column.type
    if pa.types.is_boolean(kind):
        raise DataError("a column of booleans holds no times", path=path, field=field)
    if pa.types.is_nested(kind) or pa.types.is_binary(kind):
        raise DataError(f"a column of type {kind} holds no times", path=path, field=field)
    if column.null_count:
        raise NotFast("missing time")
    if pa.types.is_integer(kind):
        try:
            seconds = to_numpy(pc.cast(column, pa.int64()))
        except pa.ArrowInvalid:  # unsigned beyond int64
            raise NotFast("time out of range") from None
    elif pa.types.is_floating(kind):
        numbers = to_numpy(column)
        if outside_time_range(numbers).any():
            raise NotFast("time out of range")
        seconds = np.floor(numbers).astype(np.int64)
    elif pa.types.is_timestamp(kind):
        seconds = np.floor_divide(to_numpy(column.cast(pa.int64())), _SECONDS_PER[kind.unit])
    elif pa.types.is_date32(kind):
        seconds = to_numpy(column.cast(pa.int32())).astype(np.int64) * 86_400
    elif pa.types.is_date64(kind):
        seconds = np.floor_divide(to_numpy(column.cast(pa.int64())), 1000)
    else:  # ISO strings and the like: pandas parses those
        raise NotFast(f"{field} of type {kind}")
    if outside_time_range(seconds).any():
        raise NotFast("time out of range")
    return seconds

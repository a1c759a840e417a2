"""Vocabulary: raw ids (ints or strings) <-> contiguous rows of an embedding table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recft.errors import DataError

UNKNOWN = -1  # row returned for ids that are not in the vocabulary when unknown="mark"


class Vocabulary:
    """An ordered set of raw ids; an id's position is its row in every table keyed by it.

    Raw ids are either all integers (stored as int64) or all strings; a mix is coerced to
    strings so that ``"42"`` from a CSV and ``42`` from a DataFrame do not become two ids,
    and so are integers beyond int64 (arbitrary-precision ids stay exact as strings).

    Example::

        vocab = Vocabulary.from_values(["b", "a", "b"])   # sorted: ["a", "b"]
        assert vocab.encode(["b"]).tolist() == [1]
        assert vocab.decode([0]).tolist() == ["a"]
    """

    def __init__(self, ids: Sequence[Any] | np.ndarray, name: str = "id") -> None:
        array = _normalise(np.asarray(ids))
        index = pd.Index(array)
        if not index.is_unique:
            dupes = index[index.duplicated()].unique()[:5].tolist()
            raise DataError(f"{name} vocabulary has duplicate ids, e.g. {dupes}")
        self.name = name
        self._ids = array
        self._index = index

    @classmethod
    def from_values(cls, values: Iterable[Any] | np.ndarray, name: str = "id") -> Vocabulary:
        """The sorted distinct values, so the same data always gives the same rows."""
        array = _normalise(np.asarray(values if isinstance(values, np.ndarray) else list(values)))
        return cls(np.unique(array), name=name)

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in row order (int64 or object array of str)."""
        return self._ids

    @property
    def is_integer(self) -> bool:
        return self._ids.dtype.kind in "iu"

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: Any) -> bool:
        return _coerce_like(np.asarray([raw]), self)[0] in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return len(self) == len(other) and bool(np.array_equal(self._ids, other._ids))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._ids[:3].tolist()))
        more = ", ..." if len(self) > 3 else ""
        return f"Vocabulary({self.name}: {len(self):,} ids [{head}{more}])"

    def encode(self, raw: Iterable[Any] | np.ndarray, unknown: str = "error") -> np.ndarray:
        """Rows of ``raw`` ids.

        Args:
            raw: raw ids.
            unknown: ``"error"`` raises a DataError naming up to five unknown ids;
                ``"mark"`` returns -1 (``UNKNOWN``) for them.
        """
        if unknown not in ("error", "mark"):
            raise ValueError(f"unknown must be 'error' or 'mark', got {unknown!r}")
        values = np.asarray(raw if isinstance(raw, np.ndarray) else list(raw))
        if values.size == 0:
            return np.zeros(0, dtype=np.int64)
        values = _coerce_like(values, self)
        rows = self._index.get_indexer(values).astype(np.int64)
        if unknown == "error" and (rows < 0).any():
            missing = pd.unique(values[rows < 0])
            raise DataError(
                f"{len(missing):,} unknown {self.name}(s) not in the vocabulary, "
                f"e.g. {missing[:5].tolist()}"
            )
        return rows

    def decode(self, rows: Iterable[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows if isinstance(rows, np.ndarray) else list(rows), dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"{self.name} row out of range [0, {len(self)})")
        return self._ids[rows]

    def extend(self, raw: Iterable[Any] | np.ndarray) -> Vocabulary:
        """A vocabulary with the new distinct ids of ``raw`` appended; existing rows keep
        their positions (so pretrained embedding rows stay valid)."""
        values = _coerce_like(np.asarray(raw if isinstance(raw, np.ndarray) else list(raw)), self)
        known = self._index.get_indexer(values) >= 0
        new = np.unique(values[~known]) if (~known).any() else values[:0]
        if len(new) == 0:
            return self
        return Vocabulary(np.concatenate([self._ids, new.astype(self._ids.dtype)]), self.name)

    def to_dict(self) -> dict[str, Any]:
        kind = "int" if self.is_integer else "str"
        return {"name": self.name, "dtype": kind, "ids": self._ids.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "vocabulary") -> Vocabulary:
        try:
            dtype = values["dtype"]
            ids = values["ids"]
        except (KeyError, TypeError):
            raise DataError(f"{source}: expected keys 'dtype' and 'ids'") from None
        if dtype == "int":
            try:
                array = np.asarray(ids, dtype=np.int64)
            except (OverflowError, TypeError, ValueError):
                raise DataError(f"{source}: integer ids must fit in 64 bits") from None
        elif dtype == "str":
            array = np.asarray([str(v) for v in ids], dtype=object)
        else:
            raise DataError(f"{source}: dtype must be 'int' or 'str', got {dtype!r}")
        return cls(array, name=values.get("name", "id"))


def _normalise(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "b":
        raise DataError("ids must be integers or strings, got booleans")
    if array.dtype.kind == "f":
        if array.size and not np.all(np.isfinite(array)):
            raise DataError("ids contain NaN or infinity")
        if array.size and np.all(array == np.round(array)):
            return array.astype(np.int64)
        raise DataError("ids must be integers or strings, got non-integral floats")
    if array.dtype.kind == "O":
        values = array.tolist()
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            try:
                return np.asarray(values, dtype=np.int64)
            except OverflowError:  # beyond int64: the ids are kept as strings
                pass
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
            raise DataError("ids contain missing values (None/NaN)")
    return np.asarray([str(v) for v in array.tolist()], dtype=object)


def _coerce_like(values: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Cast lookup keys to the vocabulary's id type (CSV strings vs ints)."""
    if vocab.is_integer:
        if values.dtype.kind in "iu":
            return values.astype(np.int64)
        try:
            as_int = values.astype(np.int64)
        except (ValueError, TypeError, OverflowError):
            return values.astype(object)
        return as_int
    return np.asarray([str(v) for v in values.tolist()], dtype=object)

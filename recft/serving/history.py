"""HistoryTable: users' histories as a model's item rows, from any input form, by raw user id."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError
from recft.models.inputs import ranges
from recft.serving.ids import ServingWarning, coerce_ids

HistoryLike = Union[Interactions, pd.DataFrame, Mapping[Any, Any], str, Path]
"""What a history may be given as: Interactions; a DataFrame with ``user_id``, ``item_id``
and optionally ``timestamp``; a mapping raw user -> raw items oldest first; a file path."""


@dataclass(frozen=True, eq=False)
class HistoryTable:
    """Histories grouped by user (CSR), keyed by raw user id, items as a model's item rows.

    Each user's rows keep their source order, with a timestamp per row (the source's, or
    the position when it has none), so ``UserHistories`` orders them exactly as it orders
    the source: serving pools the same "most recent" items that evaluation pools.

    Attributes:
        users: raw ids of the users that have a history (their position is their CSR row).
        indptr: (U + 1,) int64 row pointers.
        items: (N,) int64 item rows of the model's vocabulary.
        timestamps: (N,) int64 ordering keys.
        num_unknown_items: interactions dropped because the model does not know the item.

    Example::

        table = HistoryTable.build({"u1": [10, 20], "new": [20]}, model.item_vocab)
        table.lookup(["new", "u9"]).tolist()       # [1, -1]
    """

    users: Vocabulary
    indptr: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    num_unknown_items: int = 0

    @classmethod
    def build(cls, source: HistoryLike, item_vocab: Vocabulary, user_vocab: Vocabulary,
              label: str = "history") -> HistoryTable:
        """Group ``source`` by user; items unknown to ``item_vocab`` are dropped with one
        ``ServingWarning`` counting them.

        Args:
            source: see ``HistoryLike``.
            item_vocab: the model's item vocabulary (histories are pooled from its rows).
            user_vocab: the model's user vocabulary, whose id type raw user ids take.
            label: how warnings name the source.
        """
        raw_users, raw_items, timestamps, empty = _columns(source, user_vocab)
        if isinstance(source, Interactions) and (source.item_vocab is item_vocab
                                                 or source.item_vocab == item_vocab):
            items = source.item_ids.astype(np.int64)
        elif isinstance(source, Interactions):
            items = item_vocab.encode(source.item_vocab.ids, unknown="mark")[source.item_ids]
        else:
            items = item_vocab.encode(coerce_ids(raw_items, item_vocab), unknown="mark")
        if empty is not None:
            items[empty] = -1
        known = items >= 0
        unknown = int((~known).sum()) - (int(empty.sum()) if empty is not None else 0)
        if unknown:
            warnings.warn(f"{label}: {unknown:,} interaction(s) with items unknown to the model "
                          "were ignored", ServingWarning, stacklevel=3)
        if timestamps is None:
            timestamps = np.arange(len(items), dtype=np.int64)  # source order = time order
        user_codes, user_ids = _factorize(raw_users)
        # every user keeps a (possibly empty) row: a history whose items are all unknown
        # still says "this user is known by history", not "fall back"
        order = np.argsort(user_codes[known], kind="stable")
        kept = np.flatnonzero(known)[order]
        counts = np.bincount(user_codes[known], minlength=len(user_ids))
        indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(Vocabulary(user_ids, name="user"), indptr, items[kept].astype(np.int64),
                   np.asarray(timestamps, dtype=np.int64)[kept], unknown)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_users(self) -> int:
        return len(self.users)

    def lookup(self, raw_users: np.ndarray) -> np.ndarray:
        """(B,) CSR rows of ``raw_users``, -1 where a user has no history here."""
        if not len(self.users):
            return np.full(len(raw_users), -1, dtype=np.int64)
        return self.users.encode(raw_users, unknown="mark")

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """(B,) history lengths of CSR ``rows`` (0 for -1)."""
        safe = np.where(rows >= 0, rows, 0)
        return np.where(rows >= 0, self.indptr[safe + 1] - self.indptr[safe], 0)

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lengths (B,), items, timestamps)`` of CSR ``rows`` (-1: empty), in row order."""
        lengths = self.lengths(rows)
        index = ranges(self.indptr[np.where(rows >= 0, rows, 0)], lengths)
        return lengths, self.items[index], self.timestamps[index]

    def popularity(self, num_items: int) -> np.ndarray:
        """(num_items,) interaction counts per item row."""
        return np.bincount(self.items, minlength=num_items)

    def fingerprint_arrays(self) -> list[np.ndarray]:
        """The arrays that define this table's content (for job fingerprints)."""
        ids = self.users.ids
        ids = ids if ids.dtype.kind in "iu" else np.asarray("\x1f".join(ids.tolist()).encode())
        return [ids, self.indptr, self.items, self.timestamps]


def gather_histories(users: np.ndarray, first: HistoryTable | None,
                     second: HistoryTable | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each user's history from ``first`` if it has one there, else from ``second``.

    Args:
        users: (B,) raw user ids.
        first, second: tables (either may be None).

    Returns:
        ``(lengths (B,), user positions (N,), item rows (N,), timestamps (N,))`` grouped
        by user in ``users`` order, each user's rows in their table's order.
    """
    none = np.full(len(users), -1, dtype=np.int64)
    rows_first = first.lookup(users) if first is not None else none
    rows_second = second.lookup(users) if second is not None else none
    rows_second = np.where(rows_first >= 0, -1, rows_second)
    parts = [table.take(rows) for table, rows in ((first, rows_first), (second, rows_second))
             if table is not None]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(len(users), dtype=np.int64), empty, empty, empty
    lengths = sum(part[0] for part in parts)
    positions = np.concatenate([np.repeat(np.arange(len(users)), p[0]) for p in parts])
    order = np.argsort(positions, kind="stable")  # each user's rows come from one table
    items = np.concatenate([p[1] for p in parts])[order]
    stamps = np.concatenate([p[2] for p in parts])[order]
    return lengths, positions[order], items, stamps


def _columns(source: HistoryLike, user_vocab: Vocabulary
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(raw users, raw items or item rows, timestamps or None, placeholder mask or None) of
    any ``HistoryLike``; placeholders stand for the empty histories of a mapping."""
    if isinstance(source, (str, Path)):
        from recft.data.tabular import read_interactions

        source = read_interactions(source)
    if isinstance(source, Interactions):
        users = source.user_vocab.ids[source.user_ids]
        return coerce_ids(users, user_vocab), source.item_ids, source.timestamps, None
    if isinstance(source, pd.DataFrame):
        missing = [c for c in ("user_id", "item_id") if c not in source.columns]
        if missing:
            raise DataError(f"a history DataFrame needs columns user_id and item_id "
                            f"(and optionally timestamp); missing {missing}, found "
                            f"{list(source.columns)}")
        times = None
        if "timestamp" in source.columns:
            times = _timestamps(source["timestamp"])
        return (coerce_ids(source["user_id"].to_numpy(), user_vocab),
                source["item_id"].to_numpy(), times, None)
    if isinstance(source, Mapping):
        users: list[Any] = []
        items: list[Any] = []
        empty: list[bool] = []
        for user, history in source.items():
            if isinstance(history, (str, bytes)) or not hasattr(history, "__iter__"):
                raise DataError(f"history of user {user!r} must be a list of item ids, "
                                f"got {type(history).__name__}")
            history = list(history)
            users += [user] * max(len(history), 1)
            items += history or [""]
            # an empty history still makes the user "known by history" (no fallback)
            empty += [False] * len(history) if history else [True]
        user_array = coerce_ids(np.asarray(users, dtype=object), user_vocab) if users \
            else np.zeros(0, dtype=np.int64)
        return user_array, np.asarray(items, dtype=object), None, np.asarray(empty, dtype=bool)
    raise DataError(f"a history must be Interactions, a DataFrame, a mapping user -> items or "
                    f"a file path, got {type(source).__name__}")


def _timestamps(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.to_numpy().astype("datetime64[s]").astype(np.int64)
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise DataError("history timestamps must be numbers or datetimes without gaps",
                        field="timestamp")
    return values.to_numpy().astype(np.int64)


def _factorize(raw_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes (N,), distinct raw ids in first-seen order)."""
    if not len(raw_users):
        return np.zeros(0, dtype=np.int64), raw_users[:0]
    codes, uniques = pd.factorize(raw_users, sort=False)
    ids = np.asarray(uniques)
    if ids.dtype.kind not in "iu":
        ids = np.asarray(ids.tolist(), dtype=object)
    return codes.astype(np.int64), ids

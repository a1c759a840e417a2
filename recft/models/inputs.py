"""Tower inputs: per-user histories (CSR) and the KeyedJaggedTensors the two towers read."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft.data.features import CategoricalFeature
from recft.data.grouping import group_order
from recft.data.interactions import Interactions

# torch warns once per process that torchrec's KeyedJaggedTensor calls is_fx_tracing; it
# concerns torch.export internals, not recft's users, and would open every report and log.
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)

USER_ID = "user_id"
ITEM_ID = "item_id"
ITEM_HISTORY = "item_history"  # pooled from the item_id table (see TwoTower)
RESERVED_FEATURES = (USER_ID, ITEM_ID, ITEM_HISTORY)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for every pair, without a Python loop.

    Args:
        starts: (B,) int64 first positions.
        lengths: (B,) int64 run lengths (>= 0).

    Returns:
        (sum(lengths),) int64 positions.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    run_starts = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - run_starts, lengths) + np.arange(
        total, dtype=np.int64
    )


@dataclass(frozen=True, eq=False)
class UserHistories:
    """Every user's items in CSR form, oldest first, built once from interactions.

    User ``u``'s history is ``items[indptr[u]:indptr[u + 1]]``, ordered by timestamp (then
    by position in the source), so "the most recent N" is the tail of each row.

    Attributes:
        indptr: (U + 1,) int64 row pointers over the source's user vocabulary.
        items: (N,) int64 item rows.
        position: (N,) int64 where source interaction ``j`` landed in ``items``; training
            uses it to drop an example's own target from its history.
    """

    indptr: np.ndarray
    items: np.ndarray
    position: np.ndarray

    @classmethod
    def from_interactions(
        cls, interactions: Interactions, item_rows: np.ndarray | None = None
    ) -> UserHistories:
        """Group ``interactions`` by user; ``item_rows`` optionally remaps item ids
        (-1 entries are dropped, e.g. items the model does not know)."""
        items = interactions.item_ids if item_rows is None else item_rows[interactions.item_ids]
        users = interactions.user_ids
        keep = items >= 0
        if not keep.all():
            interactions = interactions.subset(keep)
            users, items = users[keep], items[keep]
        keys = (interactions.timestamps if interactions.timestamps is not None
                else np.zeros(len(users), dtype=np.int64))
        order = group_order(users, keys)
        counts = np.bincount(users, minlength=interactions.user_vocab_size)
        indptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order), dtype=np.int64)
        return cls(indptr, items[order].astype(np.int64), position)

    @property
    def num_users(self) -> int:
        return len(self.indptr) - 1

    def lengths(self, users: np.ndarray) -> np.ndarray:
        """(B,) full history lengths of ``users``."""
        return self.indptr[users + 1] - self.indptr[users]

    def gather(
        self,
        users: np.ndarray,
        max_length: int,
        drop_position: np.ndarray | None = None,
        drop_item: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The most recent ``max_length`` items of each user, vectorised.

        Args:
            users: (B,) user rows; -1 (unknown) gets an empty history.
            max_length: cap on items per user.
            drop_position: (B,) a position in ``items`` to leave out of each row (a
                training example's own interaction); it must lie in that user's row. The
                window is taken one longer, so the row still holds ``max_length`` items.
            drop_item: (B,) item rows removed wherever they occur in each row (repeat
                interactions with a training target).

        Returns:
            ``(lengths (B,), values (sum(lengths),))`` int64.
        """
        users = np.asarray(users, dtype=np.int64)
        known = users >= 0
        safe = np.where(known, users, 0)
        end = np.where(known, self.indptr[safe + 1], 0)
        start = np.where(known, self.indptr[safe], 0)
        if drop_position is None:
            window_start = np.maximum(start, end - max_length)
            lengths = end - window_start
            index = ranges(window_start, lengths)
        else:
            window_start = np.maximum(start, end - (max_length + 1))
            # drop the target where it is inside the window, else the window's oldest item
            dropped = np.maximum(np.asarray(drop_position, dtype=np.int64), window_start)
            lengths = np.maximum(end - window_start - 1, 0)
            index = ranges(window_start, lengths)
            index += index >= np.repeat(dropped, lengths)
        values = self.items[index]
        if drop_item is not None and len(values):
            keep = values != np.repeat(np.asarray(drop_item, dtype=np.int64), lengths)
            if not keep.all():
                row = np.repeat(np.arange(len(users)), lengths)
                lengths = np.bincount(row[keep], minlength=len(users)).astype(np.int64)
                values = values[keep]
        return lengths, values


def feature_lists(
    features: Mapping[str, CategoricalFeature], rows: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, lengths, values)`` of every categorical feature for entity ``rows``
    (row -1, an unknown entity, gets an empty list)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = []
    for name, feature in features.items():
        taken = feature.take(rows)
        out.append((name, taken.lengths(), taken.values))
    return out


def keyed_jagged(parts: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> KeyedJaggedTensor:
    """One KJT from ``(key, lengths (B,), values)`` parts that share the batch size B."""
    return KeyedJaggedTensor(
        keys=[key for key, _, _ in parts],
        values=torch.from_numpy(np.concatenate([v for _, _, v in parts]).astype(np.int64)),
        lengths=torch.from_numpy(np.concatenate([n for _, n, _ in parts]).astype(np.int64)),
    )


def user_features_kjt(
    user_rows: np.ndarray, user_features: Mapping[str, CategoricalFeature]
) -> KeyedJaggedTensor:
    """User-side KJT, stride B: ``user_id`` (empty bag for row -1) and user features.

    Args:
        user_rows: (B,) rows of the model's user vocabulary, -1 for unknown users.
        user_features: the model's user feature lookups.
    """
    user_rows = np.asarray(user_rows, dtype=np.int64)
    known = user_rows >= 0
    parts = [(USER_ID, known.astype(np.int64), user_rows[known])]
    parts += feature_lists(user_features, user_rows)
    return keyed_jagged(parts)


def item_features_kjt(
    item_rows: np.ndarray | None,
    item_features: Mapping[str, CategoricalFeature],
    history: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int | None = None,
) -> KeyedJaggedTensor:
    """Item-side KJT, stride B: ``item_id`` + item features, and the users' ``item_history``.

    The item table serves both item ids and history pooling, so a training batch of
    (user, positive item) pairs goes through the item collection in one call.

    Args:
        item_rows: (B,) item rows, or None for a users-only batch (empty item bags).
        item_features: the model's item feature lookups.
        history: ``(lengths (B,), values)`` from ``UserHistories.gather``, or None for an
            items-only batch (empty history bags).
        batch_size: B, needed when both ``item_rows`` and ``history`` are None.
    """
    if item_rows is not None:
        size = len(item_rows)
    elif history is not None:
        size = len(history[0])
    elif batch_size is not None:
        size = batch_size
    else:
        raise ValueError("item_features_kjt needs item_rows, history or batch_size")
    empty_lengths = np.zeros(size, dtype=np.int64)
    empty_values = np.zeros(0, dtype=np.int64)
    if item_rows is None:
        parts = [(ITEM_ID, empty_lengths, empty_values)]
        parts += [(name, empty_lengths, empty_values) for name in item_features]
    else:
        item_rows = np.asarray(item_rows, dtype=np.int64)
        parts = [(ITEM_ID, np.ones(size, dtype=np.int64), item_rows)]
        parts += feature_lists(item_features, item_rows)
    lengths, values = history if history is not None else (empty_lengths, empty_values)
    parts.append((ITEM_HISTORY, lengths, values))
    return keyed_jagged(parts)

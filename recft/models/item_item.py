"""The shared part of item-item models (EASE, ItemKNN): binary history matrices, matching
another domain's items by raw id, and scoring a history row through item weights.

An item-item model is fitted only on the items that occur in its training matrix: an item
nobody consumed gets no weight and scores 0 either way, so this is exact and keeps small
fractions of a large catalog cheap.

Items a user's history does not reach all score exactly 0, and a user with no history
reaches none; left as ties, such a user's list is arbitrary (near-zero NDCG where a
popularity list scores well). Those ties are broken by training popularity
(``break_ties_by_popularity``), so a cold user gets the popularity ranking and every
nonzero score keeps its order: the baseline is never weaker than its own fallback.
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp
import torch

from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

# binarised history matrices, cached per Interactions object: evaluate() calls
# score_users once per user chunk with the same history
_HISTORY_CACHE: weakref.WeakKeyDictionary[Interactions, sp.csr_matrix] = weakref.WeakKeyDictionary()


def history_matrix(history: Interactions) -> sp.csr_matrix:
    """(user_vocab_size x catalog_size) binary float32 CSR of ``history``, cached."""
    matrix = _HISTORY_CACHE.get(history)
    if matrix is None:
        matrix = history.user_item_sets().astype(np.float32)
        _HISTORY_CACHE[history] = matrix
    return matrix


def rows_in_catalog(data: Interactions, item_vocab: Vocabulary) -> sp.csr_matrix:
    """(data's users x len(item_vocab)) binary CSR of ``data``, its items matched to
    ``item_vocab`` by raw id; items the catalog lacks are dropped (they cannot be scored)."""
    if data.item_vocab is item_vocab or data.item_vocab == item_vocab:
        return history_matrix(data)
    columns = item_vocab.encode(data.item_vocab.ids, unknown="mark")[data.item_ids]
    kept = columns >= 0
    matrix = sp.csr_matrix((np.ones(int(kept.sum()), np.float32),
                            (data.user_ids[kept], columns[kept])),
                           shape=(data.user_vocab_size, len(item_vocab)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class Fitted:
    """Shared checks: fitted before scoring, same catalog at scoring as at fit."""

    num_items: int | None = None

    def _check_fit_input(self, train: Interactions) -> None:
        if len(train) == 0:
            raise DataError(f"{type(self).__name__}.fit: {train.name or 'train'} is empty")

    def _check_scoring(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        if self.num_items is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train) first")
        if history.catalog_size != self.num_items:
            raise DataError(
                f"{type(self).__name__} was fitted on {self.num_items:,} items but history has "
                f"a catalog of {history.catalog_size:,}; use splits of one Interactions object"
            )
        users = np.asarray(users, dtype=np.int64)
        if users.size and (users.min() < 0 or users.max() >= history.user_vocab_size):
            raise DataError(f"user rows outside [0, {history.user_vocab_size}) of the history")
        return users


class ItemItem(Fitted):
    """Scores = binary history row x ``weights`` over the catalog rows ``item_rows``."""

    item_rows: np.ndarray | None = None  # (n,) catalog rows the weights cover, sorted
    weights: torch.Tensor | sp.csr_matrix | None = None  # (n, n): [j, i] = weight of j for i
    popularity: np.ndarray | None = None  # (n,) fit-matrix users per item row: the tie order
    tie_share: torch.Tensor | None = None  # (I,) popularity / (max + 1) over the catalog

    def fit(self, train: Interactions):
        """Fit on ``train``'s users (binary: who consumed what)."""
        self._check_fit_input(train)
        return self.fit_matrix(history_matrix(train))

    def _set(self, item_rows: np.ndarray, catalog_size: int, weights,
             popularity: np.ndarray) -> None:
        self.item_rows, self.num_items, self.weights = item_rows, int(catalog_size), weights
        self.popularity = np.asarray(popularity, dtype=np.float64).ravel()
        share = np.zeros(self.num_items, dtype=np.float32)  # once per fit, not per user chunk
        share[item_rows] = self.popularity / (self.popularity.max() + 1.0)
        self.tie_share = torch.from_numpy(share)

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B, I) scores: each user's history row times the item weights, ties at 0 (items
        the history does not reach; all items for a user without history) ordered by
        training popularity; items outside the fit stay 0."""
        users = self._check_scoring(users, history)
        rows = history_matrix(history)[users][:, self.item_rows]
        if isinstance(self.weights, torch.Tensor):
            propagated = rows.astype(np.float32) @ self.weights.numpy()
        else:
            propagated = (rows @ self.weights).toarray()
        scores = torch.zeros(users.size, self.num_items)
        scores[:, torch.from_numpy(self.item_rows)] = torch.from_numpy(
            np.asarray(propagated, dtype=np.float32))
        return break_ties_by_popularity(scores, self.tie_share)


def column_counts(matrix: sp.spmatrix, columns: np.ndarray) -> np.ndarray:
    """Nonzero entries of a binary matrix per column in ``columns`` (users per item)."""
    return np.asarray(matrix[:, columns].getnnz(axis=0), dtype=np.float64)


def break_ties_by_popularity(scores: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Exact zeros of each row become ``share * step`` (``share`` in [0, 1)), ``step`` half
    the row's smallest nonzero magnitude: zeros are ordered by ``share`` and stay below
    every positive and above every negative score, so nonzero scores keep their order."""
    zero = scores == 0
    smallest = scores.abs().masked_fill(zero, float("inf")).amin(dim=1, keepdim=True)
    step = torch.where(torch.isfinite(smallest), smallest / 2, torch.ones_like(smallest))
    return torch.where(zero, share.unsqueeze(0) * step, scores)



# ---------------------------------------------------------------------- helpers
def binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


def active_items(matrix: sp.spmatrix, owner: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """The matrix as binary CSR and the sorted columns (items) that occur in it."""
    matrix = binary(matrix)
    if matrix.nnz == 0:
        raise DataError(f"{owner}.fit: the training matrix has no interactions")
    return matrix, np.flatnonzero(matrix.getnnz(axis=0))

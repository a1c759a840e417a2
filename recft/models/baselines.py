"""Non-neural comparison rows: most-popular, EASE and item-kNN, all Scorers."""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp
import torch

from recft.data.interactions import Interactions
from recft.errors import DataError

EASE_MAX_ITEMS = 50_000
"""EASE inverts a dense (I x I) matrix: 50k items is already ~10 GB in float32."""

_BLOCK_BYTES = 256 * 2**20  # working-set budget for one dense block during fit

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


class _Fitted:
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


class MostPopular(_Fitted):
    """Scores every item by its training interaction count; the same list for every user.

    Example::

        scores = MostPopular().fit(train).score_users(np.arange(3), train)   # (3, I)
    """

    def __init__(self) -> None:
        self.popularity: torch.Tensor | None = None  # (I,) training counts

    def fit(self, train: Interactions) -> MostPopular:
        self._check_fit_input(train)
        self.popularity = torch.from_numpy(train.item_popularity().astype(np.float32))
        self.num_items = train.catalog_size
        return self

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B, I) popularity, one identical row per user."""
        users = self._check_scoring(users, history)
        return self.popularity.unsqueeze(0).repeat(users.size, 1)

    def __repr__(self) -> str:
        return "MostPopular()"


class EASE(_Fitted):
    """Embarrassingly Shallow Autoencoder (Steck, 2019): a closed-form item-item model.

    ``B = I - P / diag(P)`` with ``P = (X^T X + l2 * I)^-1`` and a zero diagonal, so an item
    never explains itself; a user's scores are ``x_u @ B`` for their binary history row.

    Args:
        l2: ridge strength; a few hundred suits MovieLens-sized data.
        max_items: refuse catalogs above this size (the inverse is dense I x I).

    Example::

        model = EASE(l2=500.0).fit(train)
        scores = model.score_users(np.array([0, 1]), train)   # (2, I)
    """

    def __init__(self, l2: float = 500.0, max_items: int = EASE_MAX_ITEMS) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = float(l2)
        self.max_items = max_items
        self.item_weights: torch.Tensor | None = None  # (I, I) B, zero diagonal

    def fit(self, train: Interactions) -> EASE:
        self._check_fit_input(train)
        num_items = train.catalog_size
        if num_items > self.max_items:
            raise DataError(
                f"EASE needs a dense {num_items:,} x {num_items:,} inverse, above its limit of "
                f"{self.max_items:,} items; use ItemKNN for large catalogs (or raise max_items)"
            )
        matrix = history_matrix(train)
        gram = torch.from_numpy((matrix.T @ matrix).toarray().astype(np.float64))
        gram.diagonal().add_(self.l2)
        # the regularised Gram matrix is symmetric positive definite: solve through its
        # Cholesky factor (torch's cholesky_inverse is several times slower on CPU)
        identity = torch.eye(num_items, dtype=gram.dtype)
        precision = torch.cholesky_solve(identity, torch.linalg.cholesky(gram))
        weights = -precision / precision.diagonal().unsqueeze(0)
        weights.fill_diagonal_(0.0)
        self.item_weights = weights.to(torch.float32)
        self.num_items = num_items
        return self

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B, I) scores: each user's binary history row times B."""
        users = self._check_scoring(users, history)
        rows = history_matrix(history)[users]
        return torch.from_numpy(np.asarray(rows @ self.item_weights.numpy(), dtype=np.float32))

    def __repr__(self) -> str:
        return f"EASE(l2={self.l2:g})"


class ItemKNN(_Fitted):
    """Item-based nearest neighbours with cosine similarity (RecBole's ItemKNN).

    ``sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink)`` over binary item columns; each item
    keeps its ``k`` most similar items, and a user's score for item i is the summed
    similarity of i to the neighbours of i the user has interacted with.

    Args:
        k: neighbours kept per item.
        shrink: added to the denominator; damps similarities built on few co-occurrences.

    Example::

        model = ItemKNN(k=50).fit(train)
        scores = model.score_users(np.array([0]), train)   # (1, I)
    """

    def __init__(self, k: int = 100, shrink: float = 0.0) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if shrink < 0:
            raise ValueError(f"shrink must be non-negative, got {shrink}")
        self.k = int(k)
        self.shrink = float(shrink)
        self.similarity: sp.csr_matrix | None = None  # (I, I): [j, i] = sim of neighbour j to i

    def fit(self, train: Interactions) -> ItemKNN:
        self._check_fit_input(train)
        matrix = history_matrix(train).tocsc()
        num_items = train.catalog_size
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
        keep = min(self.k, max(num_items - 1, 1))
        # dense similarity columns are built a block at a time so memory stays bounded;
        # about five (I, b) 8-byte arrays are alive at once
        block = max(1, _BLOCK_BYTES // (5 * 8 * max(num_items, 1)))
        rows, cols, values = [], [], []
        transposed = matrix.T.tocsr()
        for start in range(0, num_items, block):
            stop = min(start + block, num_items)
            overlap = (transposed @ matrix[:, start:stop]).toarray()  # (I, b) co-occurrences
            denominator = np.outer(norms, norms[start:stop]) + self.shrink
            with np.errstate(divide="ignore", invalid="ignore"):
                similarity = np.where(denominator > 0, overlap / denominator, 0.0)
            similarity[np.arange(start, stop), np.arange(stop - start)] = 0.0  # not its own neighbour
            top = np.argpartition(-similarity, keep - 1, axis=0)[:keep]  # (keep, b) neighbours
            top_values = np.take_along_axis(similarity, top, axis=0)
            positive = top_values > 0
            rows.append(top[positive])
            cols.append(np.broadcast_to(np.arange(start, stop), top.shape)[positive])
            values.append(top_values[positive])
        self.similarity = sp.csr_matrix(
            (np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(num_items, num_items),
        )
        self.num_items = num_items
        return self

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B, I) summed neighbour similarities over each user's history."""
        users = self._check_scoring(users, history)
        rows = history_matrix(history)[users]
        return torch.from_numpy(np.asarray((rows @ self.similarity).toarray(), dtype=np.float32))

    def __repr__(self) -> str:
        return f"ItemKNN(k={self.k}, shrink={self.shrink:g})"

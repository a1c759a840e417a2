"""Non-neural comparison rows: most-popular, EASE and item-kNN, all Scorers.

EASE and ItemKNN are item-item models (``item_item``): a user's scores are their binary
history row times an item x item weight matrix, fitted only on the items that occur in
the training matrix. ``fit_matrix`` takes any binary (users x catalog) matrix, e.g. another
domain's users mapped into this catalog by raw id (``rows_in_catalog``) stacked on the
target's own rows; ``ease_sweep`` tunes EASE over such stacks cheaply.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recft.data.interactions import Interactions
from recft.models.ease import EASE, EASE_MAX_ITEMS, check_ease_size, ease_sweep
from recft.models.item_item import Fitted, ItemItem, active_items, history_matrix, rows_in_catalog

__all__ = ["EASE", "EASE_MAX_ITEMS", "ItemKNN", "MostPopular", "check_ease_size", "ease_sweep",
           "history_matrix", "rows_in_catalog"]

_BLOCK_BYTES = 256 * 2**20  # working-set budget for one dense block during an ItemKNN fit


class MostPopular(Fitted):
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


class ItemKNN(ItemItem):
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

    def fit_matrix(self, matrix: sp.spmatrix) -> ItemKNN:
        """Fit on a binary (users x catalog) matrix; only its occurring items get neighbours."""
        matrix, items = active_items(matrix, type(self).__name__)
        columns = matrix[:, items].tocsc()
        num_items = len(items)
        norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0)).ravel())
        keep = min(self.k, max(num_items - 1, 1))
        # dense similarity columns are built a block at a time so memory stays bounded;
        # about five (n, b) 8-byte arrays are alive at once
        block = max(1, _BLOCK_BYTES // (5 * 8 * max(num_items, 1)))
        rows, cols, values = [], [], []
        transposed = columns.T.tocsr()
        for start in range(0, num_items, block):
            stop = min(start + block, num_items)
            overlap = (transposed @ columns[:, start:stop]).toarray()  # (n, b) co-occurrences
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
        similarity = sp.csr_matrix(
            (np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(num_items, num_items),
        )
        self._set(items, matrix.shape[1], similarity, norms**2)  # binary: norm^2 = users
        return self

    def with_neighbours(self, k: int) -> ItemKNN:
        """A copy keeping each item's ``k`` most similar neighbours (``k`` at most the
        fitted k), so tuning k needs one fit; tied neighbours may be kept either way."""
        if self.weights is None:
            raise RuntimeError("ItemKNN is not fitted; call fit(train) first")
        if not 1 <= k <= self.k:
            raise ValueError(f"k must be in [1, {self.k}] (the fitted k), got {k}")
        by_item = self.weights.tocsc()
        owners = np.repeat(np.arange(by_item.shape[1]), np.diff(by_item.indptr))
        order = np.lexsort((-by_item.data, owners))  # per item, most similar first
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size) - by_item.indptr[owners[order]]
        kept = rank < k
        pruned = sp.csr_matrix((by_item.data[kept], (by_item.indices[kept], owners[kept])),
                               shape=by_item.shape)
        copy = ItemKNN(k, self.shrink)
        copy._set(self.item_rows, self.num_items, pruned, self.popularity)
        return copy

    def __repr__(self) -> str:
        return f"ItemKNN(k={self.k}, shrink={self.shrink:g})"

"""EASE (Steck, 2019), and a sweep that fits it for several ridge strengths and several
stacks of rows sharing a large common part (a source domain) with one inversion per l2."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from recft.errors import DataError
from recft.models.item_item import ItemItem, active_items, binary, column_counts

EASE_MAX_ITEMS = 30_000
"""EASE holds dense (n x n) matrices over the n items it is fitted on: 3.6 GB per float32
copy at 30k items, and fitting needs about three copies at once."""

_FLOAT64_UP_TO = 4_096  # EASE fits this small run in float64 (cheap); larger ones in float32


class EASE(ItemItem):
    """Embarrassingly Shallow Autoencoder (Steck, 2019): a closed-form item-item model.

    ``B = I - P / diag(P)`` with ``P = (X^T X + l2 * I)^-1`` and a zero diagonal, so an item
    never explains itself; a user's scores are ``x_u @ B`` for their binary history row.

    Args:
        l2: ridge strength; a few hundred suits MovieLens-sized data.
        max_items: refuse to fit on more items than this (the inverse is dense n x n).

    Example::

        model = EASE(l2=500.0).fit(train)
        scores = model.score_users(np.array([0, 1]), train)   # (2, I)
    """

    def __init__(self, l2: float = 500.0, max_items: int = EASE_MAX_ITEMS) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = float(l2)
        self.max_items = max_items

    def fit_matrix(self, matrix: sp.spmatrix) -> EASE:
        """Fit on a binary (users x catalog) matrix; only its occurring items get weights."""
        matrix, items = active_items(matrix, type(self).__name__)
        check_ease_size(len(items), self.max_items)
        precision = _regularised_inverse(_gram(matrix[:, items], _dtype(len(items))), self.l2)
        self._set(items, matrix.shape[1], _ease_weights(precision), column_counts(matrix, items))
        return self

    def __repr__(self) -> str:
        return f"EASE(l2={self.l2:g})"


def ease_sweep(shared: sp.spmatrix, extras: Sequence[sp.spmatrix], l2s: Sequence[float],
               max_items: int = EASE_MAX_ITEMS) -> Iterator[tuple[float, int, EASE]]:
    """EASE fitted on ``shared``'s rows stacked with each of ``extras`` in turn, per l2.

    The inverse of the shared rows' regularised Gram matrix is computed once per l2; each
    extra's m users then enter by a Woodbury update (about n^2 m work instead of n^3), so
    tuning l2 for several target fractions on top of a large source costs one inversion
    per l2. Yields ``(l2, index into extras, model)``, l2 in the outer loop; each model
    holds an (n x n) matrix, so keep only what you need.
    """
    stacked, items = active_items(sp.vstack([shared, *extras], format="csr"), "EASE")
    check_ease_size(len(items), max_items)
    dtype = _dtype(len(items))
    shared = binary(shared)[:, items]
    # without shared rows A = l2 * I needs no inversion: the sweep is EASE's dual form
    shared_gram = _gram(shared, dtype) if shared.nnz else None
    extra_rows = []
    for extra in extras:
        rows = binary(extra)[:, items].astype(np.float64 if dtype == torch.float64 else np.float32)
        extra_rows.append(rows[np.flatnonzero(rows.getnnz(axis=1))])  # empty users add nothing
    every_item = np.arange(len(items))
    shared_counts = column_counts(shared, every_item)
    counts = [shared_counts + column_counts(rows, every_item) for rows in extra_rows]
    for l2 in l2s:
        if shared_gram is None:
            base = torch.eye(len(items), dtype=dtype) / l2
        else:
            base = _regularised_inverse(shared_gram.clone(), l2)
        for index, rows in enumerate(extra_rows):
            model = EASE(l2, max_items)
            model._set(items, stacked.shape[1], _ease_weights(_woodbury(base, rows)),
                       counts[index])
            yield float(l2), index, model
            del model  # free it before the next (n x n) unless the caller kept it


def check_ease_size(num_items: int, max_items: int) -> None:
    if num_items > max_items:
        gigabytes = 4 * num_items**2 / 2**30
        raise DataError(
            f"EASE needs dense {num_items:,} x {num_items:,} matrices ({gigabytes:,.2f} GB each "
            f"in float32), above max_items={max_items:,}; raise max_items or use ItemKNN"
        )



# ---------------------------------------------------------------------- helpers
def _dtype(num_items: int) -> torch.dtype:
    # float32 halves memory and time; l2 > 0 keeps the system well conditioned enough
    return torch.float64 if num_items <= _FLOAT64_UP_TO else torch.float32


def _gram(matrix: sp.csr_matrix, dtype: torch.dtype) -> torch.Tensor:
    gram = (matrix.T @ matrix).toarray()
    return torch.from_numpy(gram.astype(np.float64 if dtype == torch.float64 else np.float32))


def _regularised_inverse(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """``(gram + l2 * I)^-1`` through a Cholesky factor (symmetric positive definite);
    ``gram`` is overwritten. cholesky_inverse measured ~2x faster than cholesky_solve."""
    gram.diagonal().add_(l2)
    factor = torch.linalg.cholesky(gram)
    del gram
    return torch.cholesky_inverse(factor)


def _woodbury(inverse: torch.Tensor, rows: sp.csr_matrix) -> torch.Tensor:
    """``(A + R^T R)^-1`` from a symmetric ``A^-1`` and R's m rows:
    ``A^-1 - C^T (I + R C^T)^-1 C`` with ``C = R A^-1``."""
    if rows.shape[0] == 0:
        return inverse.clone()
    spread = torch.from_numpy(np.asarray(rows @ inverse.numpy()))  # C: (m, n)
    inner = torch.from_numpy(np.asarray(rows @ spread.numpy().T))  # R C^T: (m, m)
    inner.diagonal().add_(1.0)
    return torch.addmm(inverse, spread.T, torch.linalg.solve(inner, spread), alpha=-1.0)


def _ease_weights(precision: torch.Tensor) -> torch.Tensor:
    """``B = I - P / diag(P)`` with a zero diagonal, computed in place, as float32."""
    diagonal = precision.diagonal().clone()
    precision.div_(diagonal.neg())
    precision.fill_diagonal_(0.0)
    return precision.to(torch.float32)

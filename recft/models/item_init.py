"""Item embedding rows initialised from co-occurrence: a truncated SVD of the training
interactions' positive PMI matrix, rescaled to the spread of the table's random init.

A randomly initialised item table starts with every item equally far from every other;
these rows start with items that are consumed by the same users already close, which is
what the towers must learn anyway (the item-item signal EASE and item-kNN rank with).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.models.inputs import ITEM_ID


def cooccurrence_vectors(interactions: Interactions, dim: int) -> np.ndarray:
    """(catalog_size, dim) item vectors whose dot products approximate positive PMI.

    ``PPMI[i, j] = max(0, log(C[i, j] * N / (c_i * c_j)))`` over the binary user x item
    matrix (``C`` co-occurrence counts, ``c`` item counts, ``N`` total of ``C``), diagonal
    zeroed; the vectors are ``U * sqrt(S)`` of its rank-``dim`` SVD (Levy & Goldberg's
    symmetric split). Items that co-occur with nothing get zero rows; components beyond
    the matrix's rank are zero columns.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    users_items = sp.csr_matrix(interactions.user_item_sets(), dtype=np.float64)
    users_items.data[:] = 1.0
    counts = (users_items.T @ users_items).tocoo()
    off_diagonal = counts.row != counts.col
    rows, cols = counts.row[off_diagonal], counts.col[off_diagonal]
    together = counts.data[off_diagonal]
    catalog = interactions.catalog_size
    vectors = np.zeros((catalog, dim), dtype=np.float32)
    if together.size == 0:
        return vectors
    marginal = np.bincount(rows, weights=together, minlength=catalog)
    pmi = np.log(together * together.sum() / (marginal[rows] * marginal[cols]))
    positive = pmi > 0
    ppmi = sp.csr_matrix((pmi[positive], (rows[positive], cols[positive])),
                         shape=(catalog, catalog))
    active = np.flatnonzero(ppmi.getnnz(axis=1))
    if active.size < 2:
        return vectors
    block = ppmi[active][:, active]
    rank = min(dim, active.size - 1)  # ARPACK needs k < n
    # a fixed start vector makes ARPACK (and so the init) deterministic
    left, singular, _ = svds(block, k=rank, v0=np.ones(active.size))
    vectors[active[:, None], np.arange(rank)] = left * np.sqrt(singular)
    return vectors


def scaled_to_init(vectors: np.ndarray, init_scale: float) -> np.ndarray:
    """Rescale so the non-zero rows' entries have the standard deviation of
    ``uniform(-init_scale, init_scale)`` (``init_scale / sqrt(3)``): the towers then see
    inputs of the size they would at a random start."""
    nonzero = vectors[np.abs(vectors).sum(axis=1) > 0]
    spread = float(nonzero.std()) if nonzero.size else 0.0
    if spread == 0.0:
        return vectors
    return (vectors * (init_scale / np.sqrt(3.0) / spread)).astype(np.float32)


def initialise_item_rows(model: torch.nn.Module, interactions: Interactions) -> int:
    """Overwrite ``model``'s ``item_id`` rows with co-occurrence vectors of
    ``interactions`` (which must share the model's item vocabulary); items without
    co-occurrences keep their random rows. Call before the optimizers fuse the tables.

    Returns:
        The number of rows overwritten.
    """
    if len(interactions.item_vocab) != model.config.num_items:
        raise DataError(f"interactions have {len(interactions.item_vocab):,} items, the model's "
                        f"item table {model.config.num_items:,} rows")
    weight = model.item_ebc.embedding_bags[ITEM_ID].weight
    vectors = scaled_to_init(cooccurrence_vectors(interactions, weight.shape[1]),
                             model.config.init_scale)
    rows = np.flatnonzero(np.abs(vectors).sum(axis=1) > 0)
    with torch.no_grad():
        weight[torch.from_numpy(rows)] = torch.from_numpy(vectors[rows]).to(weight)
    return int(rows.size)

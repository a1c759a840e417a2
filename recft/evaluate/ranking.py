"""Top-K lists of a block of scores, seen items excluded, and which list entries are relevant."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recft.errors import DataError


SELECTION_BLOCK = 64
"""Consecutive items per block in ``top_k``'s first stage (32 to 96 measured alike)."""


@dataclass(frozen=True)
class RankedBlock:
    """The top-``kmax`` lists of a block of users and which entries are relevant.

    Attributes:
        items: (B, kmax) int64 item rows, best first.
        hits: (B, kmax) bool, True where the item is relevant (never for excluded items).
        valid: (B, kmax) bool, False where fewer than kmax items were rankable (the row
            ran out of non-excluded items), so such slots count as neither hit nor coverage.
    """

    items: np.ndarray
    hits: np.ndarray
    valid: np.ndarray


def as_csr(rows: sp.spmatrix | Sequence[np.ndarray], num_rows: int, num_items: int,
           label: str = "relevant") -> sp.csr_matrix:
    """A binary (num_rows x num_items) CSR with sorted, de-duplicated indices."""
    if sp.issparse(rows):
        matrix = sp.csr_matrix(rows, dtype=np.float32)
    else:
        if len(rows) != num_rows:
            raise DataError(f"{label} has {len(rows)} rows, expected {num_rows} (one per user)")
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        columns = (np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
                   if len(rows) else np.zeros(0, np.int64))
        owners = np.repeat(np.arange(len(rows)), lengths)
        if columns.size and (columns.min() < 0 or columns.max() >= num_items):
            raise DataError(f"{label} holds item rows outside [0, {num_items})")
        matrix = sp.csr_matrix((np.ones(columns.size, np.float32), (owners, columns)),
                               shape=(num_rows, num_items))
    if matrix.shape != (num_rows, num_items):
        raise DataError(f"{label} has shape {matrix.shape}, expected {(num_rows, num_items)}")
    matrix.sum_duplicates()  # also sorts indices, which rank_block's search relies on
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


def rank_block(scores: torch.Tensor, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None,
               kmax: int) -> RankedBlock:
    """Top-``kmax`` items per row after excluding ``exclude``, and their relevance.

    ``top_k`` does the ranking; exclusion and the relevance check are single vectorised
    steps over CSR indices, whose cost grows with the excluded and relevant items, not
    with the catalog.

    Args:
        scores: (B, I) scores; left as they were on return.
        relevant: (B, I) binary CSR without duplicates (see ``as_csr``).
        exclude: (B, I) CSR of items never to recommend (seen items), or None.
        kmax: list length; clipped to I.

    Returns:
        RankedBlock with (B, kmax) arrays.
    """
    if scores.dim() != 2:
        raise DataError(f"scores must be 2-D (users x items), got shape {tuple(scores.shape)}")
    num_rows, num_items = scores.shape
    if relevant.shape != (num_rows, num_items):
        raise DataError(f"relevant has shape {relevant.shape}, scores {(num_rows, num_items)}")
    if not relevant.has_sorted_indices:
        relevant = relevant.sorted_indices()
    if not scores.is_floating_point():
        scores = scores.float()
    depth = min(kmax, num_items)
    if exclude is not None and exclude.nnz:
        index = tuple(torch.from_numpy(part).to(scores.device) for part in _coordinates(exclude))
        with _excluded(scores, index) as masked:
            top_scores, top_items = top_k(masked, depth)
    else:
        top_scores, top_items = top_k(scores, depth)
    # topk ranks NaN above everything, so checking the lists finds any NaN that matters
    if torch.isnan(top_scores).any():
        raise DataError("scores contain NaN; the model produced an invalid score")
    valid = (top_scores > float("-inf")).cpu().numpy()
    items = top_items.cpu().numpy().astype(np.int64)
    if depth < kmax:
        pad = kmax - depth
        items = np.pad(items, ((0, 0), (0, pad)))
        valid = np.pad(valid, ((0, 0), (0, pad)))
    # one sorted search instead of a per-user loop: (row, item) pairs become row * I + item,
    # which are globally sorted in a CSR with sorted indices
    owners, columns = _coordinates(relevant)
    keys = owners * num_items + columns
    queries = np.arange(num_rows, dtype=np.int64)[:, None] * num_items + items
    if keys.size:
        position = np.searchsorted(keys, queries).clip(max=keys.size - 1)
        hits = (keys[position] == queries) & valid
    else:
        hits = np.zeros_like(valid)
    return RankedBlock(items=items, hits=hits, valid=valid)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(scores, k, dim=1)`` (values, indices), faster on wide rows.

    The k best items of a row lie in the k blocks of ``SELECTION_BLOCK`` consecutive
    items with the highest maxima: an item outside those blocks is at most the k-th
    highest block maximum, and each of the k blocks holds an item at least that high. So
    a max per block, a top-k over the maxima and a top-k over the k blocks' items replace
    a top-k over the whole row: 0.05 s instead of 0.17 s for 671 x 100k scores, k = 20,
    one thread. The lists are the same up to the order of equal scores. NaN still reaches
    the result (it is the maximum of its block, and topk ranks it first).
    """
    num_rows, num_items = scores.shape
    num_blocks = num_items // SELECTION_BLOCK
    if num_blocks < 4 * k:  # the k best blocks would be a large share of the row
        return torch.topk(scores, k, dim=1)
    blocked = num_blocks * SELECTION_BLOCK
    maxima = scores[:, :blocked].unflatten(1, (num_blocks, SELECTION_BLOCK)).amax(dim=2)
    best_blocks = torch.topk(maxima, k, dim=1).indices
    offsets = torch.arange(SELECTION_BLOCK, device=scores.device)
    columns = (best_blocks.unsqueeze(2) * SELECTION_BLOCK + offsets).flatten(1)
    # the last num_items % SELECTION_BLOCK items form no full block: always candidates
    tail = torch.arange(blocked, num_items, device=scores.device).expand(num_rows, -1)
    columns = torch.cat([columns, tail], dim=1)
    values, positions = torch.topk(scores.gather(1, columns), k, dim=1)
    return values, columns.gather(1, positions)


def _coordinates(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) int64 arrays of a CSR's stored entries, in storage order."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows, matrix.indices.astype(np.int64)


@contextlib.contextmanager
def _excluded(scores: torch.Tensor,
              index: tuple[torch.Tensor, torch.Tensor]) -> Iterator[torch.Tensor]:
    """``scores`` with ``index`` set to -inf, the caller's values restored afterwards.

    Writing in place and restoring saves a (B, I) copy per block, about as costly as the
    top-k itself; tensors that cannot be written safely (expanded views, autograd leaves)
    are copied instead.
    """
    minus_infinity = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    inference_outside = scores.is_inference() and not torch.is_inference_mode_enabled()
    if not scores.is_contiguous() or scores.requires_grad or inference_outside:
        yield scores.index_put(index, minus_infinity)
        return
    saved = scores[index]
    scores.index_put_(index, minus_infinity)
    try:
        yield scores
    finally:
        scores.index_put_(index, saved)

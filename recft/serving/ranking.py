"""Deterministic top-k over score blocks: highest score first, ties broken by lowest item row."""

from __future__ import annotations

import numpy as np
import torch

from recft.errors import DataError


def top_k(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` best columns of every row, reproducibly ordered.

    ``torch.topk`` leaves the order of equal scores unspecified (it may change with the
    thread count or the batch), so equal scores are ordered by item row here, including
    ties that straddle the k-th place. Entries scored ``-inf`` (excluded) are dropped.

    Args:
        scores: (B, I) float scores; not modified.
        k: list length per row (clipped to I).

    Returns:
        ``(counts (B,), items (sum(counts),), values (sum(counts),))``: row ``b``'s list
        is the next ``counts[b]`` entries, best first.

    Example::

        counts, items, values = top_k(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 2)
        items.tolist()   # [1, 2]: equal scores, lower row first
    """
    if scores.dim() != 2:
        raise DataError(f"scores must be (users, items), got shape {tuple(scores.shape)}")
    num_rows, num_items = scores.shape
    depth = min(int(k), num_items)
    if num_rows == 0 or depth <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(num_rows, dtype=np.int64), empty, np.zeros(0, dtype=np.float32)
    # one extra place shows whether a tie straddles the cut: the (k+1)-th equals the k-th
    extra = min(depth + 1, num_items)
    values, items = torch.topk(scores, extra, dim=1)
    if torch.isnan(values).any():  # topk ranks NaN first: any NaN that matters is here
        raise DataError("scores contain NaN; the model produced an invalid score")
    kth = values[:, depth - 1:depth]
    crowded: list[int] = []
    if extra > depth:
        straddle = (values[:, depth] == values[:, depth - 1]) & torch.isfinite(values[:, depth])
        crowded = torch.nonzero(straddle).flatten().tolist()
        values, items = values[:, :depth], items[:, :depth]
    values_np = values.float().cpu().numpy()
    items_np = items.cpu().numpy().astype(np.int64)
    for row in crowded:
        candidates = torch.nonzero(scores[row] >= kth[row]).flatten().cpu().numpy()
        candidate_values = scores[row, candidates].float().cpu().numpy()
        pick = np.lexsort((candidates, -candidate_values))[:depth]
        items_np[row], values_np[row] = candidates[pick], candidate_values[pick]
    order = np.lexsort((items_np, -values_np), axis=-1)
    items_np = np.take_along_axis(items_np, order, axis=1)
    values_np = np.take_along_axis(values_np, order, axis=1)
    valid = values_np > -np.inf
    return valid.sum(axis=1).astype(np.int64), items_np[valid], values_np[valid]


def positions_within(counts: np.ndarray) -> np.ndarray:
    """``[0..c0-1, 0..c1-1, ...]``: each entry's position inside its run of ``counts``."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts,
                                                                    counts)

"""Vectorised top-K ranking metrics (RecBole definitions), coverage, popularity, RMSE/MAE/AUC."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recft.errors import DataError

RANKING_METRICS = ("ndcg", "recall", "precision", "hit", "mrr", "map")
"""Per-user metrics averaged over users with at least one relevant item."""

CATALOG_METRICS = ("coverage", "avg_popularity")
"""Metrics of the recommended lists themselves (no relevance needed)."""

ALL_METRICS = RANKING_METRICS + CATALOG_METRICS


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
        coo = exclude.tocoo()
        index = (torch.from_numpy(coo.row.astype(np.int64)).to(scores.device),
                 torch.from_numpy(coo.col.astype(np.int64)).to(scores.device))
        with _excluded(scores, index) as masked:
            top_scores, top_items = torch.topk(masked, depth, dim=1)
    else:
        top_scores, top_items = torch.topk(scores, depth, dim=1)
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
    owners = np.repeat(np.arange(num_rows, dtype=np.int64), np.diff(relevant.indptr))
    keys = owners * num_items + relevant.indices.astype(np.int64)
    queries = np.arange(num_rows, dtype=np.int64)[:, None] * num_items + items
    if keys.size:
        position = np.searchsorted(keys, queries).clip(max=keys.size - 1)
        hits = (keys[position] == queries) & valid
    else:
        hits = np.zeros_like(valid)
    return RankedBlock(items=items, hits=hits, valid=valid)


def per_user_metrics(hits: np.ndarray, num_relevant: np.ndarray, ks: Sequence[int],
                     metrics: Sequence[str] = RANKING_METRICS) -> dict[str, np.ndarray]:
    """Per-user ranking metrics from a hit matrix; all ks from one cumulative sum.

    Args:
        hits: (B, kmax) bool, relevance of each ranked slot.
        num_relevant: (B,) |R| per user.
        ks: cut-offs, each <= kmax.
        metrics: names from ``RANKING_METRICS``.

    Returns:
        ``{"ndcg@10": (B,) float64, ...}``; NaN for users with no relevant item.
    """
    hits = np.asarray(hits, dtype=np.float64)
    num_relevant = np.asarray(num_relevant, dtype=np.float64)
    kmax = hits.shape[1]
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    cumulative_hits = np.cumsum(hits, axis=1)
    dcg = np.cumsum(hits * discount, axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    # precision@i at each hit, summed: the numerator of average precision at every cut-off
    precision_sum = np.cumsum(hits * cumulative_hits / ranks, axis=1)
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, kmax + 1)
    empty = num_relevant == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        results: dict[str, np.ndarray] = {}
        for k in ks:
            if not 1 <= k <= kmax:
                raise ValueError(f"k must be in [1, {kmax}], got {k}")
            found = cumulative_hits[:, k - 1]
            capped = np.minimum(num_relevant, k)
            values = {
                "hit": (found > 0).astype(np.float64),
                "recall": found / num_relevant,
                "precision": found / k,
                "ndcg": dcg[:, k - 1] / ideal[capped.astype(np.int64)],
                "mrr": np.where(first_hit <= k, 1.0 / first_hit, 0.0),
                "map": precision_sum[:, k - 1] / capped,
            }
            for name in metrics:
                if name not in values:
                    raise ValueError(f"unknown ranking metric {name!r}; valid: {RANKING_METRICS}")
                results[f"{name}@{k}"] = np.where(empty, np.nan, values[name])
    return results


def topk_metrics(
    scores: torch.Tensor,
    relevant: sp.spmatrix | Sequence[np.ndarray],
    exclude: sp.spmatrix | Sequence[np.ndarray] | None = None,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] | None = None,
    item_popularity: np.ndarray | None = None,
    return_per_user: bool = False,
) -> dict[str, float] | tuple[dict[str, float], dict[str, np.ndarray]]:
    """Top-K metrics of a full score matrix, averaged over users with relevant items.

    Args:
        scores: (U, I) scores, higher is better.
        relevant: per-user relevant item rows, a (U, I) sparse matrix or U arrays.
        exclude: per-user items set to -inf before ranking (seen items), same forms.
        ks: cut-offs.
        metrics: names from ``ALL_METRICS``; default: every ranking metric, coverage, and
            avg_popularity when ``item_popularity`` is given.
        item_popularity: (I,) training count per item, for ``avg_popularity@k``.
        return_per_user: also return ``{"ndcg@10": (U,) array, ...}`` (NaN where R is empty).

    Returns:
        ``{"ndcg@10": ..., "recall@10": ..., "coverage@10": ..., ...}``, plus the per-user
        dict when ``return_per_user``.

    Example::

        scores = torch.tensor([[0.9, 0.1, 0.5]])
        topk_metrics(scores, [np.array([2])], ks=(1,))["hit@1"]   # 0.0: item 0 ranks first
    """
    names = resolve_metrics(metrics, item_popularity is not None)
    num_users, num_items = scores.shape
    ks = normalize_ks(ks)
    relevant_csr = as_csr(relevant, num_users, num_items)
    exclude_csr = None if exclude is None else as_csr(exclude, num_users, num_items, "exclude")
    block = rank_block(scores, relevant_csr, exclude_csr, max(ks))
    num_relevant = np.diff(relevant_csr.indptr)
    ranking = [n for n in names if n in RANKING_METRICS]
    per_user = per_user_metrics(block.hits, num_relevant, ks, ranking)
    evaluated = num_relevant > 0
    if "avg_popularity" in names:
        per_user.update(average_popularity(block, item_popularity, ks))
    summary = {key: _mean(values[evaluated]) for key, values in per_user.items()}
    if "coverage" in names:
        for k in ks:
            seen = recommended_items(block, k, evaluated, num_items)
            summary[f"coverage@{k}"] = float(seen.mean()) if num_items else 0.0
    summary = {key: summary[key] for key in _ordered_keys(names, ks) if key in summary}
    if return_per_user:
        return summary, per_user
    return summary


def average_popularity(block: RankedBlock, item_popularity: np.ndarray | None,
                       ks: Sequence[int]) -> dict[str, np.ndarray]:
    """(B,) mean training popularity of each user's top-k items, per k."""
    if item_popularity is None:
        raise ValueError("avg_popularity needs item_popularity (training counts per item)")
    popularity = np.asarray(item_popularity, dtype=np.float64)[block.items] * block.valid
    counted = np.cumsum(block.valid, axis=1)
    summed = np.cumsum(popularity, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {f"avg_popularity@{k}": summed[:, k - 1] / counted[:, k - 1] for k in ks}


def recommended_items(block: RankedBlock, k: int, rows: np.ndarray, num_items: int) -> np.ndarray:
    """(I,) bool: items in the top-k list of any of ``rows`` (a bool mask over the block)."""
    seen = np.zeros(num_items, dtype=bool)
    chosen = block.items[rows, :k][block.valid[rows, :k]]
    seen[chosen] = True
    return seen


def rmse(predictions: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> float:
    """Root mean squared error between (N,) predictions and (N,) targets."""
    error = _paired(predictions, targets)
    return float(np.sqrt(np.mean(error**2)))


def mae(predictions: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> float:
    """Mean absolute error between (N,) predictions and (N,) targets."""
    return float(np.mean(np.abs(_paired(predictions, targets))))


def auc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Area under the ROC curve of (N,) scores against (N,) binary labels."""
    from sklearn.metrics import roc_auc_score

    scores_array = _to_numpy(scores).ravel()
    labels_array = _to_numpy(labels).ravel()
    if scores_array.shape != labels_array.shape:
        raise DataError(f"scores have {scores_array.size} entries but labels {labels_array.size}")
    classes = np.unique(labels_array)
    if not np.isin(classes, (0, 1)).all():
        raise DataError(f"labels must be 0/1, got values {classes[:5].tolist()}", field="label")
    if classes.size < 2:
        raise DataError("AUC needs both positive and negative labels, got one class only",
                        field="label")
    return float(roc_auc_score(labels_array, scores_array))


# ---------------------------------------------------------------------- argument checks
def resolve_metrics(metrics: Sequence[str] | None, have_popularity: bool) -> tuple[str, ...]:
    """Validated metric names; None means all (avg_popularity only with popularity)."""
    if metrics is None:
        return ALL_METRICS if have_popularity else RANKING_METRICS + ("coverage",)
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid: {ALL_METRICS}")
    if "avg_popularity" in metrics and not have_popularity:
        raise ValueError("avg_popularity needs item_popularity (training counts per item)")
    return tuple(metrics)


def normalize_ks(ks: Sequence[int] | int) -> tuple[int, ...]:
    """Sorted distinct positive cut-offs; a single int is allowed."""
    values = (ks,) if isinstance(ks, int) else tuple(ks)
    if not values or any(int(k) != k or k < 1 for k in values):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    return tuple(sorted({int(k) for k in values}))


# ---------------------------------------------------------------------- helpers
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


def _ordered_keys(names: Sequence[str], ks: Sequence[int]) -> list[str]:
    return [f"{name}@{k}" for k in ks for name in names]


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def _to_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _paired(predictions: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> np.ndarray:
    left = _to_numpy(predictions).ravel()
    right = _to_numpy(targets).ravel()
    if left.shape != right.shape:
        raise DataError(f"predictions have {left.size} entries but targets {right.size}")
    if left.size == 0:
        raise DataError("no predictions to score")
    return left - right

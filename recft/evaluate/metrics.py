"""Vectorised top-K ranking metrics (RecBole definitions), coverage, popularity, RMSE/MAE/AUC.

``TopKTally`` is the one implementation of the top-K metric math: ``topk_metrics`` feeds
it one score matrix, ``recft.evaluate.evaluate`` one block per chunk of users.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recft.errors import DataError
from recft.evaluate.ranking import RankedBlock, as_csr, rank_block

RANKING_METRICS = ("ndcg", "recall", "precision", "hit", "mrr", "map")
"""Per-user metrics averaged over users with at least one relevant item."""

CATALOG_METRICS = ("coverage", "avg_popularity")
"""Metrics of the recommended lists themselves (no relevance needed)."""

ALL_METRICS = RANKING_METRICS + CATALOG_METRICS


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
    num_users, num_items = scores.shape
    tally = TopKTally(num_items, ks, metrics, item_popularity)
    relevant_csr = as_csr(relevant, num_users, num_items)
    exclude_csr = None if exclude is None else as_csr(exclude, num_users, num_items, "exclude")
    tally.add(scores, relevant_csr, exclude_csr)
    if return_per_user:
        return tally.summary(), tally.per_user()
    return tally.summary()


class TopKTally:
    """Top-K metrics accumulated block by block over users (rows of a score matrix).

    Each ``add`` ranks one block of scores and keeps its per-user metrics and the items
    it recommended; ``summary`` averages over every user added so far who has at least
    one relevant item. One block or many give the same numbers.

    Example::

        tally = TopKTally(num_items=3, ks=(1,))
        tally.add(torch.tensor([[0.9, 0.1, 0.5]]), sp.csr_matrix([[0, 0, 1]]), exclude=None)
        tally.summary()["hit@1"]   # 0.0
    """

    def __init__(self, num_items: int, ks: Sequence[int] | int = (10, 20),
                 metrics: Sequence[str] | None = None,
                 item_popularity: np.ndarray | None = None) -> None:
        self.names = resolve_metrics(metrics, item_popularity is not None)
        self.ks = normalize_ks(ks)
        self.ranking = tuple(n for n in self.names if n in RANKING_METRICS)
        self.num_items = int(num_items)
        self.item_popularity = item_popularity
        self.covered = ({k: np.zeros(self.num_items, dtype=bool) for k in self.ks}
                        if "coverage" in self.names else {})
        self._per_user: list[dict[str, np.ndarray]] = []
        self._evaluated: list[np.ndarray] = []

    def add(self, scores: torch.Tensor, relevant: sp.csr_matrix,
            exclude: sp.csr_matrix | None) -> RankedBlock:
        """Rank a (B, I) block (see ``rank_block``), tally it, and return its lists."""
        block = rank_block(scores, relevant, exclude, max(self.ks))
        num_relevant = np.diff(relevant.indptr)
        part = per_user_metrics(block.hits, num_relevant, self.ks, self.ranking)
        if "avg_popularity" in self.names:
            part.update(average_popularity(block, self.item_popularity, self.ks))
        evaluated = num_relevant > 0
        for k, seen in self.covered.items():
            seen |= recommended_items(block, k, evaluated, self.num_items)
        self._per_user.append(part)
        self._evaluated.append(evaluated)
        return block

    def parts(self) -> dict[str, Any]:
        """What ``extend`` needs to add this tally's users to another tally: the per-user
        values, which users count, and the item rows each k recommended (not a mask: a
        few ids per user, where a mask is the catalog's size)."""
        evaluated = (np.concatenate(self._evaluated) if self._evaluated
                     else np.zeros(0, dtype=bool))
        return {"per_user": self.per_user(), "evaluated": evaluated,
                "covered": {k: np.flatnonzero(seen) for k, seen in self.covered.items()}}

    def extend(self, parts: dict[str, Any]) -> None:
        """Add another tally's users (its ``parts()``) after this one's. Tallies of disjoint
        blocks of users, extended in order, give the numbers one tally of every block gives
        (``recft.train.rank_evaluation`` merges the ranks' tallies this way)."""
        if len(parts["evaluated"]):
            self._per_user.append(parts["per_user"])
            self._evaluated.append(parts["evaluated"])
        for k, items in parts["covered"].items():
            self.covered[k][items] = True

    def per_user(self) -> dict[str, np.ndarray]:
        """``{"ndcg@10": (U,), ...}`` in the order users were added; NaN where R is empty."""
        keys = self._per_user[0] if self._per_user else {}
        return {key: np.concatenate([part[key] for part in self._per_user]) for key in keys}

    def summary(self) -> dict[str, float]:
        """Averages over users with a relevant item, ``coverage@k`` over the catalog.

        A user with no rankable item at k (everything excluded) has no
        ``avg_popularity@k`` and is left out of that mean.
        """
        per_user = self.per_user()
        evaluated = (np.concatenate(self._evaluated) if self._evaluated
                     else np.zeros(0, dtype=bool))
        summary: dict[str, float] = {}
        for k in self.ks:
            for name in self.names:
                key = f"{name}@{k}"
                if name == "coverage":
                    summary[key] = float(self.covered[k].mean()) if self.num_items else 0.0
                else:
                    summary[key] = _nan_mean(per_user[key][evaluated])
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
def _nan_mean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or empty: the mean is NaN
        return float(np.nanmean(values)) if values.size else float("nan")


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

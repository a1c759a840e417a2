"""Segments: metrics by user activity bucket and by head / tail items."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recft.evaluate.metrics import RankedBlock, per_user_metrics

ACTIVITY_EDGES = (5, 20, 50)
"""Upper bounds of the activity buckets: 1-5, 6-20, 21-50, 51+ history interactions."""

HEAD_FRACTION = 0.2
"""Share of the interacted items, most popular first, that form the head."""


def activity_bucket_names(edges: Sequence[int] = ACTIVITY_EDGES) -> list[str]:
    """Bucket labels, e.g. ``["0", "1-5", "6-20", "21-50", "51+"]`` (0: no history)."""
    names, low = ["0"], 1
    for high in edges:
        names.append(f"{low}-{high}" if high > low else f"{low}")
        low = high + 1
    names.append(f"{low}+")
    return names


def activity_buckets(activity: np.ndarray, edges: Sequence[int] = ACTIVITY_EDGES) -> np.ndarray:
    """(U,) index into ``activity_bucket_names(edges)`` for each user's history length."""
    activity = np.asarray(activity, dtype=np.int64)
    if list(edges) != sorted(set(edges)) or (len(edges) and edges[0] < 1):
        raise ValueError(f"activity edges must be increasing positive integers, got {edges}")
    # bucket 0 holds users without history; the others are (previous edge, edge]
    return np.where(activity == 0, 0, 1 + np.searchsorted(np.asarray(edges), activity))


def head_items(popularity: np.ndarray, head_fraction: float = HEAD_FRACTION) -> np.ndarray:
    """(I,) bool: the ``head_fraction`` most popular of the items with any interaction.

    Ties at the boundary are broken by item row so the head has a fixed size.
    """
    if not 0.0 < head_fraction < 1.0:
        raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction}")
    popularity = np.asarray(popularity)
    interacted = int((popularity > 0).sum())
    size = int(np.ceil(head_fraction * interacted))
    order = np.argsort(-popularity, kind="stable")
    head = np.zeros(popularity.size, dtype=bool)
    head[order[:size]] = True
    return head


def item_segment_block(block: RankedBlock, relevant: sp.csr_matrix, head: np.ndarray,
                       ks: Sequence[int], metrics: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per-user metrics with relevance restricted to head items, then to tail items.

    The ranked lists stay as they are: a tail item recommended to a head-segment user is
    simply not a hit, which is what "how well do we recover head / tail items" means.

    Returns:
        ``{"head": {"ndcg@10": (B,), ...}, "tail": {...}}``; NaN where the user has no
        relevant item in that segment.
    """
    results = {}
    for name, mask in (("head", head), ("tail", ~head)):
        hits = block.hits & mask[block.items]
        num_relevant = np.asarray(relevant @ mask.astype(np.float32)).ravel()
        results[name] = per_user_metrics(hits, num_relevant, ks, metrics)
    return results


def summarize_segments(
    per_user: dict[str, np.ndarray],
    activity: np.ndarray,
    item_per_user: dict[str, dict[str, np.ndarray]],
    head: np.ndarray,
    popularity: np.ndarray,
    edges: Sequence[int] = ACTIVITY_EDGES,
) -> dict[str, dict[str, float]]:
    """Average per-user metrics within each segment.

    Args:
        per_user: ``{"ndcg@10": (U,), ...}`` over the evaluated users.
        activity: (U,) history interactions of those users.
        item_per_user: ``item_segment_block`` outputs concatenated over all users.
        head: (I,) head-item mask.
        popularity: (I,) history counts per item.

    Returns:
        ``{"users:activity:1-5": {"num_users": ..., "ndcg@10": ...}, ..., "items:head":
        {...}, "items:tail": {...}}``; empty buckets are left out.
    """
    segments: dict[str, dict[str, float]] = {}
    buckets = activity_buckets(activity, edges)
    for index, label in enumerate(activity_bucket_names(edges)):
        members = buckets == index
        if members.any():
            segments[f"users:activity:{label}"] = _average(per_user, members)
    total = float(popularity.sum())
    for name, mask in (("head", head), ("tail", ~head)):
        values = item_per_user[name]
        first = next(iter(values.values()))
        summary = _average(values, ~np.isnan(first))
        summary["num_items"] = int(mask.sum())
        summary["interaction_share"] = float(popularity[mask].sum() / total) if total else 0.0
        segments[f"items:{name}"] = summary
    return segments


def _average(per_user: dict[str, np.ndarray], members: np.ndarray) -> dict[str, float]:
    summary: dict[str, float] = {"num_users": int(members.sum())}
    for key, values in per_user.items():
        chosen = values[members]
        chosen = chosen[~np.isnan(chosen)]
        summary[key] = float(chosen.mean()) if chosen.size else float("nan")
    return summary

"""Implicit-feedback helpers: rating thresholds, log1p weights, k-core filtering, deduplication.

Duplicate policy: loaders keep every row exactly as in the file (a user who rated a movie
twice, or played an artist in two rows, appears twice). Nothing is dropped, merged or
filtered unless you call one of these functions. Every function returns a new
``Interactions`` that shares the input's vocabularies and side features, so rows keep
their meaning across splits.
"""

from __future__ import annotations

import numpy as np

from recft.data.interactions import Interactions
from recft.errors import DataError

DEDUPLICATE_POLICIES = ("last", "first", "sum", "max")


def _require_ratings(x: Interactions, what: str) -> np.ndarray:
    if x.ratings is None:
        raise DataError(f"{what} needs ratings or counts; {x.name or 'these interactions'} "
                        "have none", field="rating")
    return x.ratings


def binarize(x: Interactions, threshold: float) -> Interactions:
    """Keep interactions whose rating is ``>= threshold`` and mark them implicit positives.

    Ratings are kept (for reference and rating metrics); ``feedback`` becomes ``implicit``.

    Example::

        positives = binarize(load("ml-100k"), threshold=4)   # 4 and 5 stars
    """
    ratings = _require_ratings(x, "binarize")
    return x.subset(ratings >= threshold).replace(feedback="implicit")


def log1p_weights(x: Interactions) -> Interactions:
    """Sample weights ``log(1 + rating)``: damps heavy play counts (a 10,000-play artist
    weighs ~9x a 1-play one instead of 10,000x)."""
    ratings = _require_ratings(x, "log1p_weights")
    if len(ratings) and ratings.min() < 0:
        bad = int(np.argmin(ratings))
        raise DataError(f"rating {ratings[bad]:g} at interaction {bad} is negative; "
                        "log1p weights need ratings >= 0", field="rating")
    return x.replace(weights=np.log1p(ratings.astype(np.float64)).astype(np.float32))


def kcore_filter(x: Interactions, user_k: int, item_k: int) -> Interactions:
    """The largest subset where every user has ``>= user_k`` and every item ``>= item_k``
    interactions, by removing sparse users and items until nothing changes.

    Interactions are counted as rows: call ``deduplicate`` first to count distinct pairs.
    """
    if user_k < 0 or item_k < 0:
        raise DataError(f"k must be >= 0, got user_k={user_k}, item_k={item_k}")
    keep = np.ones(len(x), dtype=bool)
    while True:
        users = np.bincount(x.user_ids[keep], minlength=x.user_vocab_size)
        items = np.bincount(x.item_ids[keep], minlength=x.catalog_size)
        stable = keep & (users[x.user_ids] >= user_k) & (items[x.item_ids] >= item_k)
        if stable.sum() == keep.sum():
            return x.subset(np.flatnonzero(keep))
        keep = stable


def deduplicate(x: Interactions, keep: str = "last") -> Interactions:
    """One interaction per (user, item) pair.

    Args:
        x: interactions that may repeat pairs.
        keep: ``"last"`` / ``"first"``: the latest / earliest row of each pair (by
            timestamp, then file order); ``"sum"``: ratings and weights summed, latest
            timestamp (without ratings or weights, the weight becomes the number of
            repeats); ``"max"``: the largest rating and weight and the latest timestamp.

    Returns:
        Interactions in the order of each pair's first row (``"first"``/``"sum"``/``"max"``)
        or kept row (``"last"``).
    """
    if keep not in DEDUPLICATE_POLICIES:
        raise DataError(f"keep must be one of {DEDUPLICATE_POLICIES}, got {keep!r}")
    n = len(x)
    if n == 0:
        return x
    key = x.user_ids.astype(np.int64) * x.catalog_size + x.item_ids
    position = np.arange(n)
    when = x.timestamps if x.timestamps is not None else position
    order = np.lexsort((position, when, key))
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    ends = np.r_[starts[1:], n] - 1
    if keep in ("first", "last"):
        chosen = order[starts if keep == "first" else ends]
        return x.subset(np.sort(chosen))
    # the pair's earliest file row stands for it, so output order follows the file
    representative = np.minimum.reduceat(position[order], starts)
    sort = np.argsort(representative)
    reduce = np.add if keep == "sum" else np.maximum

    def combine(column: np.ndarray | None) -> np.ndarray | None:
        if column is None:
            return None
        return reduce.reduceat(column[order], starts)[sort].astype(column.dtype)

    weights = combine(x.weights)
    if keep == "sum" and x.ratings is None and x.weights is None:
        weights = np.diff(np.r_[starts, n])[sort].astype(np.float32)
    timestamps = None
    if x.timestamps is not None:
        timestamps = np.maximum.reduceat(x.timestamps[order], starts)[sort]
    rows = representative[sort]
    return x.replace(user_ids=x.user_ids[rows], item_ids=x.item_ids[rows],
                     ratings=combine(x.ratings), weights=weights, timestamps=timestamps)

"""Evaluation sharded over users: each rank ranks the whole catalog for its share of the
users, and the per-user metrics are gathered, so every rank gets exactly the means one
process computes (``evaluate``'s own per-user values, averaged the same way).

Used for validation during sharded training: the ranks share the work instead of waiting
for rank 0. Means over users only (NDCG, recall, precision, hit, MRR, MAP); catalog-level
figures (coverage, popularity, segments) need every user's list in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch.distributed as dist

from recft.data.interactions import Interactions
from recft.train.distributed import Distributed
from recft.train.rank_batches import split_evenly

MEAN_METRICS = ("ndcg", "recall", "precision", "hit", "mrr", "map")


def evaluate_over_ranks(model: Any, test: Interactions, context: Distributed, *,
                        exclude: Interactions | None = None,
                        history: Interactions | None = None, ks: Sequence[int] = (10,),
                        metrics: Sequence[str] = ("ndcg", "recall")) -> dict[str, float]:
    """``evaluate``'s means of ``metrics`` at ``ks``, the users split over the ranks (a
    collective: every rank calls it with the same arguments and gets the same result).

    Raises:
        ValueError: a metric that is not a mean over users.
    """
    from recft.evaluate import evaluate

    unsupported = sorted(set(metrics) - set(MEAN_METRICS))
    if unsupported:
        raise ValueError(f"{unsupported} are not means over users; evaluate_over_ranks "
                         f"computes {MEAN_METRICS}")
    users = np.unique(test.user_ids)
    mine = users[split_evenly(len(users), context.rank, context.world_size)]
    per_user: dict[str, np.ndarray] = {}
    if len(mine):
        part = test.subset(np.isin(test.user_ids, mine))
        _, per_user = evaluate(model, part, exclude=exclude, history=history, ks=ks,
                               metrics=list(metrics), return_per_user=True)
    gathered: list[dict[str, np.ndarray]] = [{} for _ in range(context.world_size)]
    dist.all_gather_object(gathered, per_user, group=context.group)
    keys = sorted(next(g for g in gathered if g))
    result = {}
    for key in keys:
        values = np.concatenate([g[key] for g in gathered if g])
        values = values[~np.isnan(values)]
        result[key] = float(values.mean()) if len(values) else 0.0
    return result


__all__ = ["MEAN_METRICS", "evaluate_over_ranks"]

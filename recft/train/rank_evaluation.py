"""Evaluation sharded over users: each rank ranks the whole catalog for its share of the
users, and what the metrics need is gathered, so every rank gets exactly the result one
process computes.

``evaluate(..., distributed=context)`` calls the two collectives here: ``users_of_rank``
picks a rank's contiguous share of the evaluated users, ``gather_tallies`` joins the ranks'
tallies in rank order. What travels is small next to the scores a rank computes (users x
catalog): per-user metric values (a few floats per user, incl. ``avg_popularity@k``),
the item rows each k recommended (for ``coverage@k``) and, with segments, the per-user
head / tail values. The means are then taken over the same values in the same order as in
one process, so they are equal, not just close.

Used for validation during sharded training (``evaluate_over_ranks``: the ranks share the
work instead of waiting for rank 0), by ``recft evaluate --nproc N``, and for catalogs and
user sets whose score blocks do not fit one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch.distributed as dist

from recft.data.interactions import Interactions
from recft.train.distributed import Distributed
from recft.train.rank_batches import split_evenly


def users_of_rank(users: np.ndarray, context: Distributed) -> np.ndarray:
    """This rank's contiguous share of ``users`` (ranks in order cover them in order)."""
    return users[split_evenly(len(users), context.rank, context.world_size)]


def gather_tallies(tally: Any, segment_parts: list[Any], users: np.ndarray,
                   context: Distributed) -> tuple[Any, list[Any], np.ndarray]:
    """Every rank's ``TopKTally``, segment blocks and users, joined in rank order (a
    collective): what one process would hold after ranking all the users itself."""
    from recft.evaluate.metrics import TopKTally

    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, (tally.parts(), segment_parts, users), group=context.group)
    joined = TopKTally(tally.num_items, tally.ks, tally.names, tally.item_popularity)
    for parts, _, _ in gathered:
        joined.extend(parts)
    blocks = [block for _, rank_blocks, _ in gathered for block in rank_blocks]
    return joined, blocks, np.concatenate([rank_users for _, _, rank_users in gathered])


def evaluate_over_ranks(model: Any, test: Interactions, context: Distributed, *,
                        exclude: Interactions | None = None,
                        history: Interactions | None = None, ks: Sequence[int] = (10,),
                        metrics: Sequence[str] = ("ndcg", "recall")) -> dict[str, float]:
    """``evaluate``'s ``metrics`` at ``ks`` (``{"ndcg@10": ...}`` only), the users split
    over the ranks (a collective: every rank calls it with the same arguments and gets the
    same result)."""
    from recft.evaluate import evaluate

    result = evaluate(model, test, exclude=exclude, history=history, ks=ks,
                      metrics=list(metrics), distributed=context)
    return {key: value for key, value in result.items()
            if "@" in key and key.split("@")[0] in metrics}


__all__ = ["evaluate_over_ranks", "gather_tallies", "users_of_rank"]

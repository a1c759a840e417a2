"""Blend: a two-tower's scores mixed with an item-item model's (EASE, item-kNN), the mixing
weight tuned on a validation split.

The two score scales are unrelated (cosines over a temperature against sums of item-item
weights), so each is standardised per user before mixing: minus its mean, over its
standard deviation, both taken over the items the user has not interacted with (the
candidates that compete for the list; seen items would inflate an item-item model's
spread). Weight 0 ranks like the two-tower alone, weight 1 like the item-item model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.evaluate.metrics import TopKTally
from recft.evaluate.scorer import Scorer
from recft.models.item_item import history_matrix

WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))
"""The item-item model's share tried by ``tune_weight``: 0, 0.1, ..., 1."""

_BLOCK_BYTES = 256 * 2**20  # about three (B, I) float32 blocks are alive per chunk


class Blend:
    """``(1 - weight) * z(two_tower) + weight * z(item_item)``, z a per-user standardisation
    over the user's unseen items; a ``Scorer``.

    Args:
        two_tower: any Scorer (a ``TwoTower``, a fine-tuned model).
        item_item: any Scorer, usually ``EASE`` or ``ItemKNN`` fitted on the same train.
        weight: the item-item model's share, in [0, 1].

    Example::

        blend = Blend.tuned(model, EASE(l2=500).fit(train), valid, exclude=train)
        evaluate(blend, test, exclude=train.concat(valid), history=train)
    """

    def __init__(self, two_tower: Scorer, item_item: Scorer, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.two_tower, self.item_item, self.weight = two_tower, item_item, float(weight)
        self.tuning: dict[float, float] = {}  # weight -> validation metric, set by tuned()

    @classmethod
    def tuned(cls, two_tower: Scorer, item_item: Scorer, valid: Interactions,
              exclude: Interactions, history: Interactions | None = None,
              weights: Sequence[float] = WEIGHTS, metric: str = "ndcg@10") -> Blend:
        """The blend whose weight scores best on ``valid`` (see ``tune_weight``)."""
        tuning = tune_weight(two_tower, item_item, valid, exclude, history, weights, metric)
        # max() keeps the first of tied weights: the least item-item share
        blend = cls(two_tower, item_item, max(tuning, key=tuning.get))
        blend.tuning = tuning
        return blend

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B, catalog_size) blended scores (the ``Scorer`` contract)."""
        first, second = _standardised_components(self.two_tower, self.item_item, users, history,
                                                 skip_first=self.weight == 1.0,
                                                 skip_second=self.weight == 0.0)
        return _mix(first, second, self.weight)

    def __repr__(self) -> str:
        return (f"Blend({type(self.two_tower).__name__}, {self.item_item!r}, "
                f"weight={self.weight:g})")


def tune_weight(two_tower: Scorer, item_item: Scorer, valid: Interactions, exclude: Interactions,
                history: Interactions | None = None, weights: Sequence[float] = WEIGHTS,
                metric: str = "ndcg@10", batch_size: int | None = None) -> dict[float, float]:
    """``metric`` on ``valid`` (full ranking, ``exclude``'s items removed) for every weight.

    Each component scores every validation user once; the weights only re-mix the
    standardised blocks, so tuning costs one evaluation of each model plus the ranking.

    Args:
        valid: held-out interactions to rank.
        exclude: items never recommended (train).
        history: what the models may know about the users; default ``exclude``.
        weights: item-item shares to try, each in [0, 1].
        metric: ``"name@k"`` of a ranking metric, e.g. ``"ndcg@10"``.

    Returns:
        ``{weight: metric}`` in the order of ``weights``.
    """
    if not weights or any(not 0.0 <= w <= 1.0 for w in weights):
        raise ValueError(f"weights must be a non-empty list of values in [0, 1], got {weights}")
    if "@" not in metric:
        raise ValueError(f"metric must look like 'ndcg@10', got {metric!r}")
    name, k = metric.split("@", 1)
    history = exclude if history is None else history
    for label, other in (("exclude", exclude), ("history", history)):
        if (other.catalog_size, other.user_vocab_size) != (valid.catalog_size,
                                                           valid.user_vocab_size):
            raise DataError(f"valid and {label} must be splits of one Interactions object "
                            f"(catalog {valid.catalog_size:,} vs {other.catalog_size:,})")
    relevant, excluded = valid.user_item_sets(), exclude.user_item_sets()
    users = np.flatnonzero(np.diff(relevant.indptr))
    if users.size == 0:
        raise DataError(f"{valid.name or 'valid'} has no interactions to tune on")
    tallies = {float(w): TopKTally(valid.catalog_size, (int(k),), [name]) for w in weights}
    rows = batch_size or max(1, _BLOCK_BYTES // (3 * 4 * valid.catalog_size))
    with torch.inference_mode():
        for start in range(0, users.size, rows):
            chunk = users[start:start + rows]
            first, second = _standardised_components(two_tower, item_item, chunk, history)
            for weight, tally in tallies.items():
                tally.add(_mix(first, second, weight), relevant[chunk], excluded[chunk])
    return {weight: float(tally.summary()[metric]) for weight, tally in tallies.items()}


# ---------------------------------------------------------------------- helpers
def _standardised_components(
    two_tower: Scorer, item_item: Scorer, users: np.ndarray, history: Interactions,
    skip_first: bool = False, skip_second: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    users = np.asarray(users, dtype=np.int64)
    unseen = torch.from_numpy(history_matrix(history)[users].toarray() == 0)
    first = None if skip_first else _standardise(two_tower.score_users(users, history), unseen)
    second = None if skip_second else _standardise(item_item.score_users(users, history), unseen)
    return first, second


def _standardise(scores: torch.Tensor, unseen: torch.Tensor) -> torch.Tensor:
    """Per row: minus the mean, over the standard deviation, of the unseen items' scores (a
    row with one unseen item or a constant row keeps a spread of 1, so stays finite)."""
    scores = scores.detach().float().cpu()
    weights = unseen.float()
    count = weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (scores * weights).sum(dim=1, keepdim=True) / count
    spread = (((scores - mean) ** 2 * weights).sum(dim=1, keepdim=True) / count).sqrt()
    return (scores - mean) / torch.where(spread > 0, spread, torch.ones_like(spread))


def _mix(first: torch.Tensor | None, second: torch.Tensor | None, weight: float) -> torch.Tensor:
    # a component with no share is left out rather than multiplied by 0 (0 * inf is nan)
    if weight == 0.0 or second is None:
        return first.clone()
    if weight == 1.0 or first is None:
        return second.clone()
    return first * (1.0 - weight) + second * weight

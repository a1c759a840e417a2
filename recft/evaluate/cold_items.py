"""Cold items: evaluate how well a model ranks items it never saw in training.

A ``cold-item`` split holds a share of the catalog out of training; its test part holds
every interaction with those items. ``evaluate_cold_items`` ranks, for each test user,
the cold items only (the usual cold-start protocol: the question is which *new* item a
user will take, not whether new items beat the old ones), with the user represented by
their training history. A model that knows items only by their ids has nothing to tell
cold items apart; a model with a text path reads what they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recft.data.interactions import Interactions
from recft.data.splits import Split
from recft.errors import DataError
from recft.evaluate.evaluate import evaluate


def cold_item_rows(parts: Split) -> np.ndarray:
    """Item rows of the test part that never occur in training (nor in valid)."""
    known = parts.known("test").item_popularity() > 0
    tested = np.zeros(parts.test.catalog_size, dtype=bool)
    tested[parts.test.item_ids] = True
    return np.flatnonzero(tested & ~known)


class CandidateScorer(torch.nn.Module):
    """A scorer restricted to candidate items: every other item scores ``-inf``.

    It keeps the wrapped model's embedding form (``encode_users`` / ``encode_items`` /
    ``score``) when it has one, so evaluation still encodes the catalog once; a module is
    held as a submodule, so evaluation's eval mode (no dropout) reaches it.
    """

    def __init__(self, model: Any, candidates: np.ndarray, catalog_size: int) -> None:
        super().__init__()
        self.model = model
        self.blocked = torch.ones(catalog_size, dtype=torch.bool)
        self.blocked[torch.from_numpy(np.asarray(candidates, dtype=np.int64))] = False
        if all(callable(getattr(model, n, None)) for n in ("encode_users", "encode_items",
                                                           "score")):
            self.encode_users = model.encode_users
            self.encode_items = model.encode_items
            self.score = self._masked_score

    def _masked_score(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self._mask(self.model.score(user_emb, item_emb))

    def _mask(self, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float().clone()
        scores[:, self.blocked.to(scores.device)] = float("-inf")
        return scores

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        return self._mask(self.model.score_users(users, history))


def evaluate_cold_items(model: Any, parts: Split, ks: Sequence[int] = (10, 20),
                        metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """Top-k metrics of ranking the cold items for the users who took them.

    Args:
        model: any ``Scorer`` over the split's catalog.
        parts: a split whose test part holds items absent from training (``cold-item``).
        ks, metrics: as for ``recft.evaluate.evaluate``.

    Returns:
        ``evaluate``'s dict, plus ``num_cold_items`` and ``"ranking": "cold items"``.

    Raises:
        DataError: the test part has no item that training lacks.
    """
    cold = cold_item_rows(parts)
    if len(cold) == 0:
        raise DataError(f"split {parts.spec!r} has no cold items in its test part; use a "
                        "cold-item split (e.g. cold-item:0.1)", field="split")
    is_cold = np.zeros(parts.test.catalog_size, dtype=bool)
    is_cold[cold] = True
    test = parts.test.subset(np.flatnonzero(is_cold[parts.test.item_ids]))
    scorer = CandidateScorer(model, cold, parts.test.catalog_size)
    result = evaluate(scorer, test, exclude=parts.known("test"), ks=ks, metrics=metrics)
    result.update(ranking="cold items", num_cold_items=int(len(cold)))
    return result

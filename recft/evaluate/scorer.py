"""Scorer: the one interface every model (neural or baseline) is evaluated through."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from recft.data.interactions import Interactions


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores the whole catalog for a batch of users.

    ``history`` is what the model may know at prediction time: the training interactions,
    or for cold users their revealed history. Users are rows of ``history.user_vocab``.

    An embedding model may also expose ``encode_users(users, history) -> (B, D)``,
    ``encode_items() -> (catalog_size, D)`` and ``score(user_emb, item_emb) -> (B, I)``; it
    then promises ``score_users(users, history) == score(encode_users(users, history),
    encode_items())``, and ``evaluate`` uses that form to encode the catalog once.

    Example::

        class Constant:
            def score_users(self, users, history):
                return torch.zeros(len(users), history.catalog_size)

        assert isinstance(Constant(), Scorer)
    """

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """Scores of every catalog item.

        Args:
            users: (B,) int64 user rows.
            history: interactions the model may use to represent the users.

        Returns:
            (B, catalog_size) float scores, higher is better.
        """
        ...

"""Tiny, seeded TwoTower models for tests (one definition instead of one per test file)."""

from __future__ import annotations

import torch

from recft.data import Interactions
from recft.models.two_tower import TwoTower, TwoTowerConfig


def tiny_two_tower(data: Interactions, dim: int = 8, hidden: tuple[int, ...] = (16,),
                   features: bool = True, seed: int = 0) -> TwoTower:
    """A TwoTower of width ``dim`` over ``data``'s vocabularies (and item features),
    without dropout so that training steps are deterministic given the seed."""
    torch.manual_seed(seed)
    config = TwoTowerConfig(embedding_dim=dim, tower_layers=(*hidden, dim), dropout=0.0)
    item_features = data.item_features.categorical if features and data.item_features else None
    return TwoTower(config, data.user_vocab, data.item_vocab, item_features=item_features)

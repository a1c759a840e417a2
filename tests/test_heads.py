"""Heads: residual retrieval towers start at zero-shot; rating / binary / custom heads train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recft.errors import TrainingError
from recft.finetune.finetune import finetune
from recft.models.heads import HEADS, Head, HeadBatch, RatingHead, register_head
from recft.models.finetuned import FineTunedTwoTower, attach_heads
from recft.finetune.recipe import Recipe, Stage
from recft.models.checkpoint import load_pretrained
from recft.models.two_tower import TwoTower, TwoTowerConfig
from tiny_models import tiny_two_tower


def _model(source) -> TwoTower:
    return tiny_two_tower(source)


def test_retrieval_head_shares_modules_and_starts_at_zero_shot(synthetic_pair) -> None:
    source = synthetic_pair.source
    model = _model(source)
    expected = model.score_users(np.arange(30), source)
    tuned = attach_heads(model, ["retrieval", "rating"])
    assert isinstance(tuned, FineTunedTwoTower)
    assert tuned.user_ebc is model.user_ebc and tuned.item_tower is model.item_tower
    assert torch.equal(tuned.score_users(np.arange(30), source), expected)
    assert set(tuned.task_heads()) == {"rating"}
    with pytest.raises(TrainingError, match="already attached"):
        attach_heads(tuned, ["rating"])
    with pytest.raises(TrainingError, match="registered heads"):
        attach_heads(model, ["ranking"])


def test_rating_head_learns_ratings(synthetic_pair) -> None:
    source = synthetic_pair.source
    recipe = Recipe(stages=[Stage("frozen", epochs=3, trainable="new", learning_rate=1e-2)],
                    heads=["rating"], loss="mse", batch_size=256)
    result = finetune(_model(source), source, recipe, progress=False)
    losses = result.stages[0].loss
    assert losses[-1] < losses[0]
    # the variance of the ratings is the loss of always predicting the mean
    assert losses[-1] < float(np.var(source.ratings))


def test_binary_head_on_implicit_feedback_separates_observed_pairs(checkerboard) -> None:
    data = checkerboard.replace(ratings=None, feedback="implicit")
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(embedding_dim=8, tower_layers=(8,), dropout=0.0),
                     data.user_vocab, data.item_vocab)
    recipe = Recipe(stages=[Stage("all", epochs=10, trainable="all", learning_rate=2e-2)],
                    heads=["binary"], loss="bce", batch_size=32)
    result = finetune(model, data, recipe, progress=False)
    assert result.stages[0].loss[-1] < result.stages[0].loss[0] * 0.9


class _ItemBias(nn.Module):
    """A custom head: one logit per item representation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, user_repr: torch.Tensor, item_repr: torch.Tensor) -> torch.Tensor:
        return self.linear(item_repr).squeeze(-1)

    def loss(self, outputs: torch.Tensor, batch: HeadBatch) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(outputs, batch.labels)


def test_custom_head_trains_saves_and_reloads(synthetic_pair, tmp_path) -> None:
    source = synthetic_pair.source
    register_head("item-bias", lambda model, **options: _ItemBias(model.config.output_dim),
                  overwrite=True)
    try:
        assert isinstance(_ItemBias(4), Head)
        recipe = Recipe(stages=[Stage("frozen", epochs=1, trainable="new")],
                        heads=["retrieval", "item-bias"], batch_size=256)
        result = finetune(_model(source), source, recipe, progress=False)
        head = result.model.heads["item-bias"]
        assert not torch.equal(head.linear.weight, torch.zeros_like(head.linear.weight))
        result.save(tmp_path / "tuned")
        loaded = load_pretrained(tmp_path / "tuned")
        assert isinstance(loaded, FineTunedTwoTower)
        assert torch.equal(loaded.heads["item-bias"].linear.weight, head.linear.weight)
        users = np.arange(12)
        assert torch.equal(loaded.score_users(users, source),
                           result.model.score_users(users, source))
    finally:
        HEADS.pop("item-bias", None)
    with pytest.raises(TrainingError, match="already registered"):
        register_head("rating", lambda model: RatingHead(8))

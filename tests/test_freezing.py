"""set_trainable / StageOptimizers: frozen means no gradient, no optimizer, identical bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributed.optim import _apply_optimizer_in_backward

from recft.config import ConfigError
from recft.errors import TrainingError
from recft.finetune.freezing import (
    mark_pretrained,
    resolve_trainable,
    set_trainable,
    unfreeze_groups,
)
from recft.finetune.model import attach_heads
from recft.finetune.optimizers import StageOptimizers
from recft.finetune.recipe import Stage
from recft.models.two_tower import TwoTower
from recft.train.batches import BatchBuilder
from recft.train.losses import sampled_softmax_loss
from tiny_models import tiny_two_tower


def _model(data) -> TwoTower:
    return tiny_two_tower(data, hidden=(16, 12), features=False)


def _train_steps(model, data, optimizers: StageOptimizers, steps: int = 3) -> None:
    builder = BatchBuilder.for_model(model, data, batch_size=32)
    for step, batch in zip(range(steps), builder.batches(epoch=0, seed=0)):
        user_emb, item_emb = model(batch.user_features, batch.item_features)
        loss = sampled_softmax_loss(user_emb, item_emb, 0.1, item_ids=batch.item_ids)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()


def test_new_freezes_pretrained_and_reports_counts(checkerboard, capsys) -> None:
    model = attach_heads(_model(checkerboard), ["retrieval"])
    report = set_trainable(model, "new", verbose=True)
    head_count = sum(p.numel() for p in model.heads.parameters())
    assert report.trainable_parameters == head_count
    assert report.total_parameters == sum(p.numel() for p in model.parameters())
    assert report.groups["heads"] == (head_count, head_count)
    assert report.groups["table:user_id"] == (0, 20 * 8)
    assert report.groups["user_tower"][0] == 0
    for name, param in model.named_parameters():
        assert param.requires_grad == name.startswith("heads.")
    assert "trainable vs total parameters" in capsys.readouterr().out


def test_frozen_weights_stay_bit_identical_despite_leftover_fused_optimizer(checkerboard) -> None:
    model = attach_heads(_model(checkerboard), ["retrieval"])
    table = model.item_ebc.embedding_bags["item_id"].weight
    # what a pretraining run can leave behind: an optimizer that steps inside backward
    _apply_optimizer_in_backward(torch.optim.SGD, [table], {"lr": 1.0})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = set_trainable(model, "new")
    assert not any(hasattr(p, "_in_backward_optimizers") for p in model.parameters())
    stage = Stage("frozen", trainable="new", weight_decay=0.5, learning_rate=0.05)
    optimizers = StageOptimizers(model, report.trainable_names, stage)
    assert optimizers.parameter_count == report.trainable_parameters
    _train_steps(model, checkerboard, optimizers)
    for name, param in model.named_parameters():
        if name.startswith("heads."):
            continue
        assert torch.equal(param, before[name]), name
    # the zero-initialised last layer of the new towers must have moved
    assert not torch.equal(model.heads["retrieval"].user[-1].weight,
                           before["heads.retrieval.user.2.weight"])


def test_all_trains_tables_at_scaled_lr(checkerboard) -> None:
    model = attach_heads(_model(checkerboard), ["retrieval"])
    report = set_trainable(model, "all")
    stage = Stage("full", trainable="all", learning_rate=1e-2, embedding_learning_rate=0.1,
                  pretrained_lr_scale=0.1, warmup_steps=4)
    optimizers = StageOptimizers(model, report.trainable_names, stage)
    lrs = {id(p): g["target_lr"] for o in optimizers.optimizers for g in o.param_groups
           for p in g["params"]}
    assert lrs[id(model.user_tower[0].weight)] == pytest.approx(1e-3)
    assert lrs[id(model.heads["retrieval"].user[0].weight)] == pytest.approx(1e-2)
    assert lrs[id(model.item_ebc.embedding_bags["item_id"].weight)] == pytest.approx(0.01)
    first = optimizers.current_lr()
    before = model.item_ebc.embedding_bags["item_id"].weight.detach().clone()
    _train_steps(model, checkerboard, optimizers, steps=2)
    assert optimizers.current_lr() > first  # warm-up raises the LR step by step
    assert not torch.equal(model.item_ebc.embedding_bags["item_id"].weight, before)


def test_stage_that_trains_nothing_raises(checkerboard) -> None:
    model = _model(checkerboard)
    mark_pretrained(model)
    with pytest.raises(TrainingError, match="trains nothing"):
        set_trainable(model, "new")
    with pytest.raises(ConfigError, match="no parameter"):  # a recipe typo: bad input
        set_trainable(model, ["decoder.*"])
    with pytest.raises(TrainingError, match="no adapters"):
        set_trainable(model, "adapters")


def test_patterns_and_freeze_tower_layers(checkerboard) -> None:
    model = _model(checkerboard)
    mark_pretrained(model)
    chosen = resolve_trainable(model, ["user_tower.*"])
    assert chosen == {n for n, _ in model.named_parameters() if n.startswith("user_tower.")}
    towers = resolve_trainable(model, "new", freeze_tower_layers=False)
    assert towers == {n for n, _ in model.named_parameters() if "_tower." in n}


def test_unfreeze_groups_go_top_down_tables_last(checkerboard) -> None:
    model = attach_heads(_model(checkerboard), ["retrieval"])
    groups = unfreeze_groups(model, resolve_trainable(model, "all"))
    assert all(n.startswith("heads.") for n in groups[0])
    # towers are Linear(16) -> Linear(12) -> Linear(8): the output layers come first
    assert set(groups[1]) == {f"{t}_tower.{i}.{p}" for t in ("user", "item")
                              for i in (4,) for p in ("weight", "bias")}
    assert set(groups[3]) == {f"{t}_tower.0.{p}" for t in ("user", "item")
                              for p in ("weight", "bias")}
    assert all("ebc" in n for n in groups[-1]) and len(groups) == 5
    flat = [n for g in groups for n in g]
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters())
    assert np.all([len(g) for g in groups])

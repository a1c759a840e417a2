"""set_trainable / Optimizers: frozen means no gradient, no optimizer, identical bits; fused
tables train at per-row learning-rate scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributed.optim import _apply_optimizer_in_backward

from recft.config import ConfigError
from recft.errors import TrainingError
from recft.finetune.freezing import resolve_trainable, set_trainable, unfreeze_groups
from recft.finetune.vocab_transfer import align_vocabulary
from recft.models.finetuned import attach_heads
from recft.models.roles import ParameterRoles
from recft.models.two_tower import TwoTower
from recft.train.batches import BatchBuilder
from recft.train.losses import sampled_softmax_loss
from recft.train.optimizers import OptimizerSettings, Optimizers
from tiny_models import tiny_two_tower

TABLE = "item_ebc.embedding_bags.item_id.weight"


def _model(data) -> TwoTower:
    return tiny_two_tower(data, hidden=(16, 12), features=False)


def _stage_optimizers(model, report, roles, **settings) -> Optimizers:
    options = {"dense_optimizer": "adamw", **settings}
    return Optimizers(model, OptimizerSettings(**options), trainable=report.trainable_names,
                      roles=roles, masked_rows=report.masked_rows)


def _table(model) -> torch.Tensor:
    with_plain = dict(model.named_parameters())
    if TABLE in with_plain:
        return with_plain[TABLE]
    return model.item_ebc.table_weight("item_id")  # fused during training


def _train_steps(model, data, optimizers: Optimizers, steps: int = 3) -> None:
    builder = BatchBuilder.for_model(model, data, batch_size=32)
    for step, batch in zip(range(steps), builder.batches(epoch=0, seed=0)):
        user_emb, item_emb = model(batch.user_features, batch.item_features)
        loss = sampled_softmax_loss(user_emb, item_emb, 0.1, item_ids=batch.item_ids)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()


def test_new_freezes_pretrained_and_reports_counts(checkerboard, capsys) -> None:
    base = _model(checkerboard)
    roles = ParameterRoles.of(base)
    model = attach_heads(base, ["retrieval"])
    report = set_trainable(model, "new", roles, verbose=True)
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
    base = _model(checkerboard)
    roles = ParameterRoles.of(base)
    model = attach_heads(base, ["retrieval"])
    table = model.item_ebc.embedding_bags["item_id"].weight
    # what a pretraining run can leave behind: an optimizer that steps inside backward
    _apply_optimizer_in_backward(torch.optim.SGD, [table], {"lr": 1.0})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = set_trainable(model, "new", roles)
    assert not any(hasattr(p, "_in_backward_optimizers") for p in model.parameters())
    optimizers = _stage_optimizers(model, report, roles, weight_decay=0.5, dense_lr=0.05)
    assert optimizers.parameter_count == report.trainable_parameters
    assert not optimizers.fused  # frozen tables: no fused module, no optimizer state
    _train_steps(model, checkerboard, optimizers)
    optimizers.close()
    for name, param in model.named_parameters():
        if name.startswith("heads."):
            continue
        assert torch.equal(param, before[name]), name
    # the zero-initialised last layer of the new towers must have moved
    assert not torch.equal(model.heads["retrieval"].user[-1].weight,
                           before["heads.retrieval.user.2.weight"])


def test_all_trains_dense_layers_at_scaled_lr_and_fuses_tables(checkerboard) -> None:
    base = _model(checkerboard)
    roles = ParameterRoles.of(base)
    model = attach_heads(base, ["retrieval"])
    report = set_trainable(model, "all", roles)
    optimizers = _stage_optimizers(model, report, roles, dense_lr=1e-2, embedding_lr=0.1,
                                   pretrained_lr_scale=0.1, warmup_steps=4)
    lrs = {id(p): g["target_lr"] for o in optimizers.torch_optimizers for g in o.param_groups
           for p in g["params"]}
    assert lrs[id(model.user_tower[0].weight)] == pytest.approx(1e-3)
    assert lrs[id(model.heads["retrieval"].user[0].weight)] == pytest.approx(1e-2)
    assert sorted(optimizers.fused) == ["item_ebc", "user_ebc"]  # tables: fused kernels
    before = _table(model).detach().clone()
    _train_steps(model, checkerboard, optimizers, steps=2)
    assert optimizers.warmup_factor() > 0.25  # warm-up raises the rates step by step
    assert not torch.equal(_table(model), before)
    optimizers.close()
    assert TABLE in dict(model.named_parameters())  # plain collections are back


def _one_step_delta(checkerboard, **settings) -> torch.Tensor:
    torch.manual_seed(0)
    model = _model(checkerboard)
    roles = ParameterRoles.of(model)
    report = set_trainable(model, "all", roles)
    optimizers = _stage_optimizers(model, report, roles, **settings)
    before = _table(model).detach().clone()
    _train_steps(model, checkerboard, optimizers, steps=1)
    optimizers.close()
    return _table(model).detach() - before


def test_pretrained_lr_scale_scales_the_fused_table_step_exactly(checkerboard) -> None:
    full = _one_step_delta(checkerboard, embedding_lr=0.1)
    scaled = _one_step_delta(checkerboard, embedding_lr=0.1, pretrained_lr_scale=0.25)
    assert (full.abs().sum(dim=1) > 0).any()
    torch.testing.assert_close(scaled, 0.25 * full, rtol=1e-4, atol=1e-7)
    # warm-up step 1 of 4: a quarter of the rate, on the same rows
    warm = _one_step_delta(checkerboard, embedding_lr=0.1, warmup_steps=4)
    torch.testing.assert_close(warm, 0.25 * full, rtol=1e-4, atol=1e-7)


def test_train_only_new_rows_keeps_pretrained_rows_bit_identical(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = tiny_two_tower(source, hidden=(16, 8), features=False)
    roles = ParameterRoles.of(model)
    alignment = align_vocabulary(model, target, init="mean")
    roles = roles.with_new_rows(alignment.first_new_rows)
    first_new = roles.first_new_rows[TABLE]
    assert first_new < len(model.item_vocab)  # the target brought new items
    report = set_trainable(model, "all", roles, train_only_new_rows=True)
    assert report.masked_rows[TABLE] == first_new
    optimizers = _stage_optimizers(model, report, roles, embedding_lr=0.5)
    before = _table(model).detach().clone()
    _train_steps(model, alignment.remap(target), optimizers, steps=5)
    optimizers.close()
    after = _table(model).detach()
    assert torch.equal(after[:first_new], before[:first_new])
    assert not torch.equal(after[first_new:], before[first_new:])


def test_stage_that_trains_nothing_raises(checkerboard) -> None:
    model = _model(checkerboard)
    roles = ParameterRoles.of(model)
    with pytest.raises(TrainingError, match="trains nothing"):
        set_trainable(model, "new", roles)
    with pytest.raises(ConfigError, match="no parameter"):  # a recipe typo: bad input
        set_trainable(model, ["decoder.*"], roles)
    with pytest.raises(TrainingError, match="no adapters"):
        set_trainable(model, "adapters", roles)


def test_patterns_and_freeze_tower_layers(checkerboard) -> None:
    model = _model(checkerboard)
    roles = ParameterRoles.of(model)
    chosen = resolve_trainable(model, ["user_tower.*"], roles)
    assert chosen == {n for n, _ in model.named_parameters() if n.startswith("user_tower.")}
    towers = resolve_trainable(model, "new", roles, freeze_tower_layers=False)
    assert towers == {n for n, _ in model.named_parameters() if "_tower." in n}


def test_unfreeze_groups_go_top_down_tables_last(checkerboard) -> None:
    base = _model(checkerboard)
    roles = ParameterRoles.of(base)
    model = attach_heads(base, ["retrieval"])
    groups = unfreeze_groups(model, resolve_trainable(model, "all", roles), roles)
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

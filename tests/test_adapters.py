"""Adapters: start as the identity, train few parameters, merge exactly, save only the delta."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recft.errors import CheckpointError, TrainingError
from recft.finetune.adapter_io import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    delta_size,
    load_adapter,
)
from recft.models.adapters import (
    LowRankEmbeddingBag,
    LowRankLinear,
    adapter_state_dict,
    attach_adapters,
    merge_adapters,
)
from recft.finetune.finetune import finetune
from recft.finetune.freezing import resolve_trainable
from recft.models.roles import ParameterRoles
from recft.finetune.recipe import Recipe
from recft.models.checkpoint import save_pretrained
from recft.models.two_tower import TwoTower
from tiny_models import tiny_two_tower


def _model(source, dim: int = 16) -> TwoTower:
    return tiny_two_tower(source, dim=dim, hidden=(2 * dim,))


def _scores(model, data) -> torch.Tensor:
    return model.score_users(np.arange(20), data)


def test_attached_adapters_start_as_identity(synthetic_pair) -> None:
    source = synthetic_pair.source
    model = _model(source)
    expected = _scores(model, source)
    roles = ParameterRoles.of(model)
    wrapped = attach_adapters(model, rank=4, roles=roles)
    assert isinstance(model.user_tower[0], LowRankLinear)
    assert isinstance(model.item_ebc.embedding_bags["item_id"], LowRankEmbeddingBag)
    assert len(wrapped) == 4 + 2 + len(source.item_features.categorical)
    assert torch.equal(_scores(model, source), expected)
    # base parameters are the same objects: state-dict keys and the pretrained record hold
    assert roles.pretrained <= {n for n, _ in model.named_parameters()}
    with pytest.raises(TrainingError, match="targets"):
        attach_adapters(_model(source), targets=["heads"])


def test_adapters_train_far_fewer_parameters_and_merge_exactly(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    recipe = Recipe.adapters(rank=2, epochs=1, batch_size=256)
    result = finetune(model, target, recipe, progress=False)
    model = result.model
    full = len(resolve_trainable(model, "all", result.roles))
    assert full > len(adapter_state_dict(model))
    trainable = result.trainable_parameters
    total = result.stages[0].total_parameters
    assert trainable < 0.25 * total, (trainable, total)
    # pretrained weights untouched (new rows of grown tables are not pretrained)
    params = dict(model.named_parameters())
    for name, old in base.items():
        assert torch.equal(params[name].detach()[: len(old)], old), name
    assert any(not torch.equal(v, torch.zeros_like(v))
               for n, v in adapter_state_dict(model).items() if n.endswith("lora_up"))
    scored = result.scorer().score_users(np.arange(10), target)
    merge_adapters(model)
    assert not any(isinstance(m, (LowRankLinear, LowRankEmbeddingBag)) for m in model.modules())
    assert torch.allclose(result.scorer().score_users(np.arange(10), target), scored, atol=1e-4)


def test_save_and_load_adapter_delta(synthetic_pair, tmp_path) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    base_dir = tmp_path / "base"
    save_pretrained(_model(source, dim=32), base_dir)
    from recft.models.checkpoint import load_pretrained

    result = finetune(load_pretrained(base_dir), target, Recipe.adapters(rank=2, epochs=1),
                      base=base_dir, progress=False)
    adapter_dir = result.save_adapter(tmp_path / "adapter")
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    assert config["base"]["path"] == str(base_dir) and len(config["base"]["sha256"]) == 64
    assert len(config["new_ids"]["users"]) == len(target.user_vocab)
    size = delta_size(base_dir, adapter_dir)
    assert size["adapter_bytes"] == (adapter_dir / ADAPTER_WEIGHTS).stat().st_size
    assert size["ratio"] < 1.0

    loaded = load_adapter(base_dir, adapter_dir)
    users = np.arange(15)
    expected = result.scorer().score_users(users, target)
    assert loaded.user_vocab == result.model.user_vocab
    assert loaded.item_vocab == result.model.item_vocab
    scores = result.scorer().__class__(loaded, result.alignment).score_users(users, target)
    assert torch.allclose(scores, expected, atol=1e-5)

    # a different base checkpoint is refused
    other = tmp_path / "other"
    save_pretrained(_model(source, dim=32).requires_grad_(False).apply(_perturb), other)
    with pytest.raises(CheckpointError, match="sha256"):
        load_adapter(other, adapter_dir)


def _perturb(module: torch.nn.Module) -> None:
    if isinstance(module, torch.nn.Linear):
        module.weight.data.add_(1.0)

"""Learned history pooling (TwoTowerConfig.history_pooling): attention and transformer."""

from __future__ import annotations

import copy
import json
import socket

import numpy as np
import pytest
import torch

from recft.config import ConfigError
from recft.data import Interactions, Vocabulary, synthetic
from recft.finetune.finetune import finetune
from recft.finetune.recipe import Recipe
from recft.models.checkpoint import load_pretrained
from recft.models.history_pooling import (
    AttentionPooling,
    TransformerPooling,
    padded_history,
    pool_history,
)
from recft.models.inputs import ITEM_ID, USER_ID, item_features_kjt, user_features_kjt
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.serving.user_tower import export_user_tower
from recft.train import PretrainConfig, pretrain
from recft.train.batches import BatchBuilder
from recft.train.distributed import Distributed
from recft.train.optimizers import OptimizerSettings
from recft.train.sharded_optimizers import ShardedOptimizers

LEARNED = ("attention", "transformer")


@pytest.fixture(scope="module")
def train() -> Interactions:
    return synthetic("movies", size="tiny", seed=0).source


@pytest.fixture(scope="module")
def trained(train: Interactions) -> dict[str, TwoTower]:
    """One briefly trained model per mode (training moves the poolers off their start)."""
    models = {}
    for mode in ("mean", *LEARNED):
        config = TwoTowerConfig(embedding_dim=16, tower_layers=(32, 16), history_pooling=mode)
        models[mode], _ = pretrain(train, config, pretrain_config=PretrainConfig(
            epochs=2, seed=0, user_id_dropout=0.3), progress=False)
    return models


def _history(model: TwoTower, train: Interactions, user: int) -> np.ndarray:
    """``user``'s training items, oldest first (the order the towers read)."""
    histories = model._histories(train)
    return histories.items[histories.indptr[user]:histories.indptr[user + 1]]


def _stranger(model: TwoTower, rows: np.ndarray) -> Interactions:
    """One user the model's vocabulary has never seen, holding item ``rows`` in order."""
    items = model.item_vocab.decode(rows)
    return Interactions.from_raw(["never-seen"] * len(items), items,
                                 user_vocab=Vocabulary(["never-seen"]),
                                 item_vocab=model.item_vocab)


# ---------------------------------------------------------------------- the modules
def test_untrained_attention_is_the_mean_of_the_real_items() -> None:
    torch.manual_seed(0)
    pooler = AttentionPooling(4)
    items = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    pooled = pooler(items, mask, torch.randn(2, 4))
    torch.testing.assert_close(pooled[0], items[0, :2].mean(0))
    assert torch.equal(pooled[1], torch.zeros(4))  # no history: zeros, like an empty MEAN bag


@pytest.mark.parametrize("mode", LEARNED)
def test_padding_does_not_change_the_pooled_history(mode: str) -> None:
    torch.manual_seed(0)
    pooler = AttentionPooling(8) if mode == "attention" else TransformerPooling(8, 10, 0.0)
    with torch.no_grad():  # queries and keys away from zero: the weights are not uniform
        for param in pooler.parameters():
            param.normal_()
    pooler.eval()
    rows, lengths, user = torch.randn(5, 8), torch.tensor([3, 2, 0]), torch.randn(3, 8)
    items, mask, recency = padded_history(rows, lengths)
    wider = torch.cat([items, torch.randn(3, 4, 8)], dim=1)  # garbage in the padding
    wider_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    wider_recency = torch.cat([recency, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        narrow = pool_history(pooler, items, mask, recency, user)
        wide = pool_history(pooler, wider, wider_mask, wider_recency, user)
        alone = pool_history(pooler, items[1:2, :2], mask[1:2, :2], recency[1:2, :2],
                             user[1:2])[0]
    torch.testing.assert_close(narrow, wide)
    torch.testing.assert_close(narrow[1], alone)
    assert torch.equal(narrow[2], torch.zeros(8))
    assert not torch.allclose(narrow[0], items[0, :3].mean(0))  # it is not a mean


# ---------------------------------------------------------------------- the model
@pytest.mark.parametrize("mode", LEARNED)
def test_a_user_scores_the_same_whatever_the_batch(mode: str, train: Interactions,
                                                   trained: dict[str, TwoTower]) -> None:
    """Batch-mates with longer histories widen the padding; a user's scores must not move."""
    model = trained[mode]
    lengths = np.diff(np.r_[0, np.cumsum(np.bincount(train.user_ids))])
    short = int(np.argmin(lengths))
    alone = model.score_users(np.array([short]), train)
    together = model.score_users(np.array([short, int(np.argmax(lengths))]), train)
    torch.testing.assert_close(alone[0], together[0])


@pytest.mark.parametrize("mode", LEARNED)
def test_the_mode_round_trips_with_identical_scores(mode: str, train: Interactions,
                                                    trained: dict[str, TwoTower],
                                                    tmp_path) -> None:
    model = trained[mode]
    model.save_pretrained(tmp_path)
    architecture = json.loads((tmp_path / "config.json").read_text())["architecture"]
    assert architecture["history_pooling"] == mode
    loaded = TwoTower.from_pretrained(tmp_path)
    assert loaded.config.history_pooling == mode
    users = np.arange(20)
    assert torch.equal(loaded.score_users(users, train), model.score_users(users, train))


@pytest.mark.parametrize("mode", LEARNED)
def test_a_user_unknown_to_the_vocabulary_is_scored_from_history(
        mode: str, train: Interactions, trained: dict[str, TwoTower]) -> None:
    """Served like a known user whose id row is zero: the query is the learned vector."""
    model = trained[mode]
    known = 0
    stranger_scores = model.score_users(np.array([0]), _stranger(model, _history(model, train,
                                                                                  known)))[0]
    other_scores = model.score_users(np.array([0]), _stranger(model, np.arange(5)))[0]
    assert torch.isfinite(stranger_scores).all()
    assert not torch.allclose(stranger_scores, other_scores)
    blank = copy.deepcopy(model)
    with torch.no_grad():
        blank.user_ebc.embedding_bags[USER_ID].weight[known] = 0.0
    torch.testing.assert_close(stranger_scores, blank.score_users(np.array([known]), train)[0])


@pytest.mark.parametrize("mode", LEARNED)
def test_the_exported_user_tower_matches_the_model(mode: str, train: Interactions,
                                                   trained: dict[str, TwoTower]) -> None:
    """The torch.export program (what a bundle serves) computes the model's embeddings."""
    model = trained[mode]
    tower = export_user_tower(model).module()
    users = np.array([0, 1, 2])
    rows = [_history(model, train, u) for u in users]
    width = max(len(r) for r in rows) + 2
    history = torch.full((len(users), width), -1, dtype=torch.int64)
    for n, row in enumerate(rows):
        history[n, :len(row)] = torch.from_numpy(row)
    lengths = torch.tensor([len(r) for r in rows])
    with torch.no_grad():
        exported = tower(torch.from_numpy(users), history, lengths)
        expected = model.eval().encode_users(users, train)
    torch.testing.assert_close(exported, expected, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------- mean and refusals
def test_mean_mode_keeps_its_layout_and_config(train: Interactions,
                                               trained: dict[str, TwoTower], tmp_path) -> None:
    """A "mean" model has no pooler parameters and its config.json has no new field, so a
    checkpoint written before the option existed is this one: it loads as "mean"."""
    model = trained["mean"]
    assert model.history_pooler is None
    assert not any("history_pooler" in name for name in model.state_dict())
    model.save_pretrained(tmp_path)
    architecture = json.loads((tmp_path / "config.json").read_text())["architecture"]
    assert "history_pooling" not in architecture and "max_history" in architecture
    loaded = TwoTower.from_pretrained(tmp_path)
    assert loaded.config.history_pooling == "mean"
    users = np.arange(20)
    assert torch.equal(loaded.score_users(users, train), model.score_users(users, train))


def test_mean_mode_pools_the_mean_of_the_history_rows(train: Interactions,
                                                      trained: dict[str, TwoTower]) -> None:
    model = trained["mean"].eval()
    user = 3
    history = model._histories(train)
    lengths, values = history.gather(np.array([user]), model.config.max_history)
    table = model.item_ebc.embedding_bags[ITEM_ID].weight
    with torch.no_grad():
        base, _ = model.base_representations(
            user_features_kjt(np.array([user]), model.user_features),
            item_features_kjt(None, model.item_features, (lengths, values), batch_size=1))
    dim = model.config.embedding_dim
    torch.testing.assert_close(base[0, dim:2 * dim], table[torch.from_numpy(values)].mean(0))


@pytest.mark.parametrize("settings", [
    {"history_pooling": "max"},
    {"history_pooling": "attention", "use_history": False},
    {"history_pooling": "transformer", "item_text": "id+text", "text_dim": 8},
])
def test_unsupported_settings_are_refused(settings: dict) -> None:
    with pytest.raises(ConfigError, match="history_pooling"):
        TwoTowerConfig(**settings)


def test_sharded_training_is_refused(train: Interactions, monkeypatch) -> None:
    """Tables sharded by DMP (--nproc, torchrun; here one rank) refuse the learned pooling
    with a one-line ConfigError; a plain model in the same process group still scores
    (``recft evaluate --nproc`` ranks with whole models)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "GLOO_SOCKET_IFNAME": "lo"}.items():
        monkeypatch.setenv(key, value)
    torch.manual_seed(0)
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(8,), history_pooling="attention")
    plain = TwoTower(config, train.user_vocab, train.item_vocab)
    sharded = copy.deepcopy(plain)
    context = Distributed.from_environment()
    try:
        ShardedOptimizers(sharded, OptimizerSettings("rowwise_adagrad", 0.05, "adam", 1e-3,
                                                     0.0), context=context)
        batch = BatchBuilder.for_model(sharded, train, batch_size=8).build(
            np.arange(8), np.random.default_rng(0))
        with pytest.raises(ConfigError, match="sharded training"):
            sharded(batch.user_features, batch.item_features)
        assert torch.isfinite(plain.score_users(np.array([0]), train)).all()
    finally:
        context.close()


def test_finetuning_trains_the_pooler_and_the_result_reloads(synthetic_pair, tmp_path) -> None:
    """Frozen stage: the pooler is pretrained and stays put; full stage: it trains; the
    fine-tuned checkpoint (grown tables, new users) reloads with identical scores."""
    source, target = synthetic_pair.source, synthetic_pair.target
    torch.manual_seed(0)
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.0,
                            history_pooling="attention")
    model = TwoTower(config, source.user_vocab, source.item_vocab,
                     item_features=source.item_features.categorical)
    with torch.no_grad():  # a pooler as pretraining would leave it: not at its zero start
        model.history_pooler.query.normal_()
    before = model.history_pooler.query.detach().clone()
    recipe = Recipe.frozen_only()
    recipe.stages[0].epochs, recipe.batch_size = 1, 256
    frozen = finetune(copy.deepcopy(model), target, recipe, progress=False).model
    assert torch.equal(frozen.history_pooler.query, before)
    recipe = Recipe.default()
    for stage in recipe.stages:
        stage.epochs = 1
    result = finetune(model, target, recipe, base="runs/base", progress=False)
    assert not torch.equal(result.model.history_pooler.query, before)
    loaded = load_pretrained(result.save(tmp_path / "tuned"))
    assert loaded.config.history_pooling == "attention"
    users = target.user_vocab.encode(target.user_vocab.ids[:5])
    assert torch.equal(loaded.score_users(users, target),
                       result.model.score_users(users, target))

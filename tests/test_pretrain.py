"""pretrain(): learns planted structure, deterministic, early stopping, resumable after a kill."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from recft.data import CategoricalFeature, EntityFeatures, Interactions
from recft.errors import CheckpointError
from recft.evaluate import evaluate
from recft.models import TwoTower, TwoTowerConfig
from recft.train import PretrainConfig, pretrain

# the module, not the function of the same name that recft.train exports
objectives_module = importlib.import_module("recft.train.objectives")
CLUSTERS, USERS_PER_CLUSTER, ITEMS_PER_CLUSTER = 4, 20, 10


@pytest.fixture(scope="module")
def clustered() -> tuple[Interactions, Interactions, Interactions]:
    """Users of cluster c only interact with items of cluster c: a known right answer."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for user in range(CLUSTERS * USERS_PER_CLUSTER):
        cluster = user // USERS_PER_CLUSTER
        chosen = rng.choice(ITEMS_PER_CLUSTER, size=7, replace=False) + cluster * ITEMS_PER_CLUSTER
        users += [user] * 7
        items += chosen.tolist()
    num_items = CLUSTERS * ITEMS_PER_CLUSTER
    genres = CategoricalFeature.from_lists(
        [[f"c{i // ITEMS_PER_CLUSTER}"] for i in range(num_items)])
    x = Interactions.from_raw(users, items, timestamps=rng.permutation(len(users)),
                              item_features=EntityFeatures({"genres": genres}))
    part = rng.random(len(x))
    return x.subset(part < 0.7), x.subset((part >= 0.7) & (part < 0.85)), x.subset(part >= 0.85)


ARCH = TwoTowerConfig(embedding_dim=16, tower_layers=(32, 16), dropout=0.0)
FAST = PretrainConfig(epochs=4, batch_size=32, embedding_lr=0.1, lr=3e-3, seed=3)


class _Random:
    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return torch.rand(len(users), history.catalog_size, generator=generator)


def test_pretraining_learns_the_clusters(clustered):
    train, valid, test = clustered
    model, history = pretrain(train, ARCH, pretrain_config=FAST, progress=False)
    assert isinstance(model, TwoTower) and not model.training
    assert len(history.loss) == 4 and history.loss[-1] < history.loss[0]
    assert all(rate > 0 for rate in history.throughput)
    ours = evaluate(model, test, exclude=train, ks=(10,))["ndcg@10"]
    chance = evaluate(_Random(), test, exclude=train, ks=(10,))["ndcg@10"]
    assert ours > 2 * chance
    # the right answer: a user's top 3 unseen items lie in the user's own cluster (at least
    # 3 of its 10 items are unseen: each user has 7)
    scores = model.score_users(np.arange(CLUSTERS * USERS_PER_CLUSTER), train).numpy()
    seen = train.user_item_sets().toarray() > 0
    scores[seen] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :3]
    item_cluster = train.item_vocab.ids[top] // ITEMS_PER_CLUSTER
    user_cluster = train.user_vocab.ids // USERS_PER_CLUSTER
    assert (item_cluster == user_cluster[:, None]).mean() > 0.95


def test_same_seed_same_weights(clustered):
    train = clustered[0]
    short = PretrainConfig(epochs=2, batch_size=32, seed=5, num_negatives=8)
    first, _ = pretrain(train, ARCH, pretrain_config=short, progress=False)
    second, _ = pretrain(train, ARCH, pretrain_config=short, progress=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    other, _ = pretrain(train, ARCH, pretrain_config=PretrainConfig(epochs=2, batch_size=32, seed=6,
                                                                    num_negatives=8),
                        progress=False)
    assert not torch.equal(other.item_tower[-1].weight, first.item_tower[-1].weight)


def test_early_stopping_restores_the_best_epoch(clustered):
    train, valid, _ = clustered
    settings = PretrainConfig(epochs=6, batch_size=32, embedding_lr=0.3, lr=1e-2, patience=1,
                              seed=0)
    model, history = pretrain(train, ARCH, valid=valid, pretrain_config=settings, progress=False)
    assert history.best_epoch is not None and len(history.valid) == len(history.loss)
    scores = [entry["ndcg@10"] for entry in history.valid]
    assert history.best_metric == max(scores) and scores[history.best_epoch - 1] == max(scores)
    # these rates overfit after a couple of epochs: patience 1 stops at the first drop
    assert history.stopped_early and len(scores) == history.best_epoch + 1 < 6
    assert scores[-1] < history.best_metric
    # the returned weights are the best epoch's, not the last epoch's
    again = evaluate(model, valid, exclude=train, ks=(10,))["ndcg@10"]
    assert again == pytest.approx(history.best_metric, abs=1e-9)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["rowwise_adagrad", "sparse_adam"])
def test_resume_after_kill_gives_the_same_weights(clustered, tmp_path, monkeypatch, optimizer):
    train, valid, _ = clustered
    arch = TwoTowerConfig(embedding_dim=16, tower_layers=(32, 16), dropout=0.2)
    settings = PretrainConfig(epochs=2, batch_size=32, seed=1, checkpoint_every=4,
                              user_id_dropout=0.3, embedding_optimizer=optimizer,
                              embedding_lr=0.05 if optimizer == "rowwise_adagrad" else 0.01)
    reference, reference_history = pretrain(train, arch, valid=valid, pretrain_config=settings,
                                             progress=False)

    real_loss = objectives_module.sampled_softmax_loss
    calls = {"n": 0}

    def dying_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11 + 6:  # epoch 2, step 6: two steps after the last checkpoint
            raise _Killed
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(objectives_module, "sampled_softmax_loss", dying_loss)
    with pytest.raises(_Killed):
        pretrain(train, arch, valid=valid, pretrain_config=settings, resume_dir=tmp_path,
                 progress=False)
    monkeypatch.setattr(objectives_module, "sampled_softmax_loss", real_loss)
    resumed, history = pretrain(train, arch, valid=valid, pretrain_config=settings,
                                resume_dir=tmp_path, progress=False)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert history.loss == reference_history.loss
    assert history.valid == reference_history.valid

    changed = PretrainConfig(**{**settings.to_dict(), "lr": 0.5})
    with pytest.raises(CheckpointError, match="lr"):
        pretrain(train, arch, pretrain_config=changed, resume_dir=tmp_path, progress=False)


def test_bpr_loss_trains(clustered):
    train = clustered[0]
    settings = PretrainConfig(epochs=3, batch_size=32, loss="bpr", num_negatives=16, seed=0,
                              embedding_lr=0.1, lr=3e-3)
    _, history = pretrain(train, ARCH, pretrain_config=settings, progress=False)
    assert history.loss[-1] < history.loss[0]

"""TwoTower: shapes, catalog encoding, scoring contract, unknown users, config sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recft.config import ConfigError
from recft.data import CategoricalFeature, EntityFeatures, Interactions, Vocabulary
from recft.errors import DataError
from recft.models import TwoTower, TwoTowerConfig
from recft.models.inputs import item_features_kjt, user_features_kjt


@pytest.fixture
def data() -> Interactions:
    rng = np.random.default_rng(0)
    genres = CategoricalFeature.from_lists([["g%d" % (i % 3)] for i in range(9)] + [[]])
    ages = CategoricalFeature.from_lists([["young"], ["old"], ["young"], ["old"], ["young"]])
    return Interactions.from_raw(
        rng.integers(0, 5, 60), rng.integers(0, 10, 60), timestamps=np.arange(60),
        item_vocab=Vocabulary(np.arange(10), "item"), user_vocab=Vocabulary(np.arange(5), "user"),
        item_features=EntityFeatures({"genres": genres}),
        user_features=EntityFeatures({"age": ages}),
    )


def _model(x: Interactions, **overrides) -> TwoTower:
    torch.manual_seed(0)
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 4), **overrides)
    return TwoTower(config, x.user_vocab, x.item_vocab,
                    item_features=x.item_features.categorical,
                    user_features=x.user_features.categorical).eval()


def test_shapes_and_sizes_filled_from_data(data):
    model = _model(data)
    assert (model.config.num_users, model.config.num_items) == (5, 10)
    assert model.config.item_feature_sizes == {"genres": 3}
    assert model.config.user_feature_sizes == {"age": 2}
    users = np.array([0, 3, 4])
    assert model.encode_users(users, data).shape == (3, 4)
    catalog = model.encode_items()
    assert catalog.shape == (10, 4)
    assert torch.allclose(catalog.norm(dim=1), torch.ones(10), atol=1e-5)
    # encoding in chunks or by row covers the catalog identically
    assert torch.allclose(model.encode_items(chunk_size=3), catalog, atol=1e-6)
    assert torch.allclose(model.encode_items(np.array([7, 2])), catalog[[7, 2]], atol=1e-6)
    user_kjt = user_features_kjt(users, model.user_features)
    item_kjt = item_features_kjt(np.array([1, 2, 3]), model.item_features)
    user_base, item_base = model.base_representations(user_kjt, item_kjt)
    assert user_base.shape == (3, model.user_base_dim) == (3, 8 * 3)
    assert item_base.shape == (3, model.item_base_dim) == (3, 8 * 2)


def test_score_users_is_dot_over_temperature_and_in_eval_mode(data):
    model = _model(data, dropout=0.5, temperature=0.25)
    model.train()
    users = np.array([1, 2])
    scores = model.score_users(users, data)
    assert scores.shape == (2, data.catalog_size)
    assert model.training  # mode restored
    model.eval()
    expected = model.encode_users(users, data) @ model.encode_items().T / 0.25
    assert torch.allclose(scores, expected, atol=1e-5)


def test_history_changes_user_embedding_and_uses_recent_items(data):
    model = _model(data, max_history=2)
    users = np.array([0])
    with_history = model.encode_users(users, data)
    without = model.encode_users(users, None)
    assert not torch.allclose(with_history, without)
    # only the two most recent items count: older interactions do not change the embedding
    mine = np.flatnonzero(data.user_ids == 0)
    recent_only = data.subset(mine[-2:])
    assert torch.allclose(model.encode_users(users, recent_only), with_history, atol=1e-6)


def test_unknown_user_with_history_takes_the_zero_id_path(data):
    model = _model(data)
    # a cold user "new" with exactly user 3's items, in a vocabulary the model has not seen
    mine = data.subset(data.user_ids == 3)
    cold = Interactions.from_raw(["new"] * len(mine), data.item_vocab.decode(mine.item_ids),
                                 timestamps=mine.timestamps, item_vocab=data.item_vocab)
    cold_emb = model.encode_users(np.array([0]), cold)
    with torch.no_grad():
        model.user_ebc.embedding_bags["user_id"].weight[3] = 0.0
        model.user_ebc.embedding_bags["age"].weight.zero_()
    known_emb = model.encode_users(np.array([3]), data)
    # documented: an unknown id is an empty bag, i.e. a zero id (and feature) block
    assert torch.allclose(cold_emb, known_emb, atol=1e-6)
    assert model.score_users(np.array([0]), cold).shape == (1, 10)


def test_config_round_trip_and_mismatch(data):
    model = _model(data)
    again = TwoTowerConfig.from_dict(model.config.to_dict())
    assert again == model.config
    rebuilt = TwoTower(again, data.user_vocab, data.item_vocab,
                       item_features=data.item_features.categorical,
                       user_features=data.user_features.categorical)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    users = np.arange(5)
    assert torch.equal(rebuilt.score_users(users, data), model.score_users(users, data))
    with pytest.raises(DataError, match="num_items"):
        TwoTower(TwoTowerConfig(num_items=11), data.user_vocab, data.item_vocab)
    with pytest.raises(ConfigError, match="reserved"):
        TwoTowerConfig(item_feature_sizes={"item_id": 3})
    names = set(model.state_dict())
    assert {"user_ebc.embedding_bags.user_id.weight", "item_ebc.embedding_bags.item_id.weight",
            "item_ebc.embedding_bags.genres.weight", "user_ebc.embedding_bags.age.weight"} <= names


def test_without_history_or_normalisation(data):
    model = _model(data, use_history=False, normalize=False)
    assert model.user_base_dim == 8 * 2
    emb = model.encode_users(np.array([0, 1]), data)
    assert torch.allclose(emb, model.encode_users(np.array([0, 1]), None))
    assert not torch.allclose(model.encode_items().norm(dim=1), torch.ones(10))

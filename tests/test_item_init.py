"""Co-occurrence item init: items consumed by the same users start close, the rows have the
table's shape and the random init's spread, and pretrain() starts from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recft.config import ConfigError
from recft.data import Interactions
from recft.errors import DataError
from recft.models.inputs import ITEM_ID
from recft.models.item_init import cooccurrence_vectors, initialise_item_rows, scaled_to_init
from recft.train import PretrainConfig, pretrain
from tests.tiny_models import tiny_two_tower

GROUP_ITEMS = (np.arange(0, 6), np.arange(6, 12))  # raw ids of the two taste groups
UNSEEN_ITEM = 12  # in the vocabulary, but with no training interaction


def two_taste_groups(users_per_group: int = 20, seed: int = 0) -> Interactions:
    """Each user consumes a random ~70% of their group's items and nothing of the other
    group's, so items co-occur within a group and never across; ``UNSEEN_ITEM`` is in the
    catalog only (its one interaction is dropped after the vocabulary is built)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for group, group_items in enumerate(GROUP_ITEMS):
        for position in range(users_per_group):
            user = group * users_per_group + position
            chosen = group_items[rng.random(group_items.size) < 0.7]
            chosen = chosen if chosen.size >= 2 else group_items[:2]
            users += [user] * chosen.size
            items += chosen.tolist()
    data = Interactions.from_raw(np.array(users + [0]), np.array(items + [UNSEEN_ITEM]))
    return data.subset(np.arange(len(data) - 1))


def cosine(vectors: np.ndarray, first: int, second: int) -> float:
    a, b = vectors[first], vectors[second]
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_items_that_co_occur_start_closer_than_items_that_never_do() -> None:
    data = two_taste_groups()
    vectors = cooccurrence_vectors(data, dim=4)
    rows = {group: data.item_vocab.encode(items) for group, items in enumerate(GROUP_ITEMS)}
    within = [cosine(vectors, a, b) for g in rows for a in rows[g] for b in rows[g] if a < b]
    across = [cosine(vectors, a, b) for a in rows[0] for b in rows[1]]
    assert max(abs(c) for c in across) < 0.05  # separate subspaces
    assert min(within) > 0.1 and np.mean(within) > 0.5


def test_vectors_have_the_tables_shape_and_the_random_inits_spread() -> None:
    data = two_taste_groups()
    vectors = scaled_to_init(cooccurrence_vectors(data, dim=8), init_scale=0.1)
    assert vectors.shape == (data.catalog_size, 8) and vectors.dtype == np.float32
    unseen_row = data.item_vocab.encode(np.array([UNSEEN_ITEM]))[0]
    assert not vectors[unseen_row].any()  # nothing to place it by
    seen = np.delete(vectors, unseen_row, axis=0)
    assert seen.std() == pytest.approx(0.1 / np.sqrt(3.0), rel=1e-4)  # uniform(-0.1, 0.1)'s


def test_initialise_overwrites_seen_rows_and_keeps_random_rows_for_the_rest() -> None:
    data = two_taste_groups()
    model = tiny_two_tower(data, dim=8, features=False)
    weight = model.item_ebc.embedding_bags[ITEM_ID].weight
    random_rows = weight.detach().clone()
    written = initialise_item_rows(model, data)
    unseen_row = int(data.item_vocab.encode(np.array([UNSEEN_ITEM]))[0])
    assert written == data.catalog_size - 1
    assert torch.equal(weight[unseen_row], random_rows[unseen_row])
    expected = scaled_to_init(cooccurrence_vectors(data, 8), model.config.init_scale)
    others = np.delete(np.arange(data.catalog_size), unseen_row)
    assert torch.allclose(weight[others], torch.from_numpy(expected[others]))


def test_pretrain_starts_from_cooccurrence_rows() -> None:
    """With a vanishing learning rate the trained item rows are still the initial ones, so
    this sees the init wired in before the optimizers copy the tables."""
    data = two_taste_groups()
    settings = PretrainConfig(epochs=1, batch_size=16, embedding_lr=1e-12, lr=1e-12,
                              item_init="cooccurrence")
    model, _ = pretrain(data, pretrain_config=settings, progress=False)
    expected = scaled_to_init(cooccurrence_vectors(data, model.config.embedding_dim),
                              model.config.init_scale)
    trained = model.item_ebc.embedding_bags[ITEM_ID].weight.detach().numpy()
    seen = np.abs(expected).sum(axis=1) > 0
    np.testing.assert_allclose(trained[seen], expected[seen], atol=1e-6)


def test_a_model_of_another_catalog_and_an_unknown_init_are_refused() -> None:
    data = two_taste_groups()
    other = Interactions.from_raw(np.array([0, 1]), np.array([0, 1]))
    with pytest.raises(DataError, match="item table"):
        initialise_item_rows(tiny_two_tower(other, features=False), data)
    with pytest.raises(ConfigError, match="item_init must be one of"):
        PretrainConfig(item_init="glove")

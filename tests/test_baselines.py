"""Baselines on block-structured data where the right answer is known, and their formulas."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recft.data import Interactions
from recft.errors import DataError
from recft.evaluate import Scorer, evaluate
from recft.models.baselines import EASE, ItemKNN, MostPopular


def block_split(blocks: int = 4, items_per_block: int = 5,
                users_per_block: int = 6) -> tuple[Interactions, Interactions]:
    """Users of a block consume that block's items; each holds one in-block item out.

    The held-out item of a user is consumed by the block's other users, so any sensible
    item-item model must rank it first once the user's seen items are excluded.
    """
    users, items, held_out = [], [], []
    for block in range(blocks):
        for position in range(users_per_block):
            user = block * users_per_block + position
            for offset in range(items_per_block):
                users.append(user)
                items.append(block * items_per_block + offset)
                held_out.append(offset == position % items_per_block)
    data = Interactions.from_raw(users, items)
    mask = np.asarray(held_out)
    return data.subset(~mask), data.subset(mask)


def random_binary(num_users: int, num_items: int, seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    matrix = rng.random((num_users, num_items)) < 0.3
    matrix[np.arange(num_users), rng.integers(0, num_items, num_users)] = True
    users, items = np.nonzero(matrix)
    return Interactions.from_raw(users, items)


@pytest.mark.parametrize("model", [EASE(l2=1.0), ItemKNN(k=3)], ids=repr)
def test_item_models_rank_the_held_out_in_block_item_first(model: EASE | ItemKNN) -> None:
    train, test = block_split()
    model.fit(train)
    users = np.unique(test.user_ids)
    scores = model.score_users(users, train)
    scores[torch.from_numpy(train.user_item_sets()[users].toarray() > 0)] = float("-inf")
    top = scores.argmax(dim=1).numpy()
    expected = test.item_ids[np.argsort(test.user_ids)]
    np.testing.assert_array_equal(top, expected)
    assert evaluate(model, test, exclude=train, ks=(1,))["hit@1"] == 1.0


def test_most_popular_ranks_by_training_count() -> None:
    train = Interactions.from_raw([0, 1, 2, 0, 1, 0], [7, 7, 7, 9, 9, 8])
    model = MostPopular().fit(train)
    scores = model.score_users(np.array([0, 2]), train)
    assert scores.shape == (2, 3)
    # items 7, 8, 9 were consumed 3, 1 and 2 times
    assert scores[0].argsort(descending=True).tolist() == [0, 2, 1]
    assert torch.equal(scores[0], scores[1])
    assert isinstance(model, Scorer)


def test_ease_matches_closed_form_and_has_zero_diagonal() -> None:
    train = random_binary(30, 8, seed=1)
    model = EASE(l2=3.0).fit(train)
    matrix = train.user_item_sets().toarray()
    precision = np.linalg.inv(matrix.T @ matrix + 3.0 * np.eye(8))
    expected = np.eye(8) - precision / np.diag(precision)[None, :]
    weights = model.item_weights.numpy()
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    assert np.all(np.diag(weights) == 0.0)
    scores = model.score_users(np.array([4]), train).numpy()
    np.testing.assert_allclose(scores[0], matrix[4] @ weights, rtol=1e-5, atol=1e-6)


def test_item_knn_is_pruned_cosine_similarity() -> None:
    train = random_binary(25, 10, seed=2)
    matrix = train.user_item_sets().toarray()
    norms = np.linalg.norm(matrix, axis=0)
    cosine = (matrix.T @ matrix) / (np.outer(norms, norms) + 1.0)
    np.fill_diagonal(cosine, 0.0)
    full = ItemKNN(k=10, shrink=1.0).fit(train).similarity.toarray()
    np.testing.assert_allclose(full, cosine, rtol=1e-6)
    pruned = ItemKNN(k=2, shrink=1.0).fit(train).similarity.toarray()
    for item in range(10):
        kept = np.flatnonzero(pruned[:, item])
        assert len(kept) <= 2
        # compare values, not indices: tied neighbours may be kept either way
        np.testing.assert_allclose(np.sort(pruned[kept, item]), np.sort(cosine[:, item])[-2:],
                                   rtol=1e-6)


def test_errors_name_the_problem() -> None:
    train = random_binary(10, 6, seed=3)
    with pytest.raises(DataError, match="ItemKNN"):
        EASE(max_items=5).fit(train)
    with pytest.raises(RuntimeError, match="not fitted"):
        EASE().score_users(np.array([0]), train)
    other = random_binary(10, 7, seed=4)
    with pytest.raises(DataError, match="catalog"):
        MostPopular().fit(train).score_users(np.array([0]), other)


@pytest.mark.realdata
def test_ease_beats_popularity_on_movielens_100k() -> None:
    data_dir = os.environ.get("RECFT_DATA_DIR")
    path = Path(data_dir or "") / "ml-100k" / "u.data"
    if not data_dir or not path.is_file():
        pytest.skip("set RECFT_DATA_DIR to a folder holding ml-100k/u.data")
    table = np.loadtxt(path, dtype=np.int64, usecols=(0, 1))
    data = Interactions.from_raw(table[:, 0], table[:, 1])
    held_out = np.random.default_rng(0).random(len(data)) < 0.2
    train, test = data.subset(~held_out), data.subset(held_out)
    popular = evaluate(MostPopular().fit(train), test, exclude=train, ks=(10,))
    ease = evaluate(EASE(l2=500.0).fit(train), test, exclude=train, ks=(10,))
    knn = evaluate(ItemKNN(k=100).fit(train), test, exclude=train, ks=(10,))
    assert ease["ndcg@10"] > knn["ndcg@10"] > popular["ndcg@10"]
    assert ease["ndcg@10"] > 1.3 * popular["ndcg@10"]

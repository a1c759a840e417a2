"""Baselines on block-structured data where the right answer is known, and their formulas."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recft.data import Interactions
from recft.errors import DataError
from recft.evaluate import Scorer, evaluate
from recft.models.baselines import (
    EASE,
    ItemKNN,
    MostPopular,
    ease_sweep,
    history_matrix,
    rows_in_catalog,
)


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


def ease_closed_form(matrix: np.ndarray, l2: float) -> np.ndarray:
    """B of EASE over every column of a dense binary matrix, by the textbook formula."""
    precision = np.linalg.inv(matrix.T @ matrix + l2 * np.eye(matrix.shape[1]))
    return np.eye(matrix.shape[1]) - precision / np.diag(precision)[None, :]


def test_ease_matches_closed_form_and_has_zero_diagonal() -> None:
    train = random_binary(30, 8, seed=1)
    model = EASE(l2=3.0).fit(train)
    matrix = train.user_item_sets().toarray()
    expected = ease_closed_form(matrix, 3.0)
    assert model.item_rows.tolist() == list(range(8))  # every item occurs
    weights = model.weights.numpy()
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    assert np.all(np.diag(weights) == 0.0)
    scores = model.score_users(np.array([4]), train).numpy()
    np.testing.assert_allclose(scores[0], matrix[4] @ weights, rtol=1e-5, atol=1e-6)


def test_fitting_only_occurring_items_gives_the_full_catalog_scores() -> None:
    # items 8 and 9 are in the catalog but nobody consumed them in train
    data = random_binary(30, 10, seed=5)
    train = data.subset(np.flatnonzero(data.item_ids < 8))
    matrix = train.user_item_sets().toarray()
    assert matrix.shape[1] == 10 and not matrix[:, 8:].any()
    full = matrix @ ease_closed_form(matrix, 3.0)  # over all 10 columns
    model = EASE(l2=3.0).fit(train)
    assert model.item_rows.tolist() == list(range(8))
    warm = np.flatnonzero(matrix.any(axis=1))  # a user without history gets popularity
    scores = model.score_users(warm, train).numpy()
    reached = full[warm] != 0  # exact zeros (e.g. a lone item's own score) are popularity ties
    np.testing.assert_allclose(scores[reached], full[warm][reached], atol=1e-5)
    assert np.all(scores[:, 8:] == 0.0)


@pytest.mark.parametrize("model", [EASE(l2=1.0), ItemKNN(k=2)], ids=repr)
def test_item_models_break_zero_ties_by_popularity(model: EASE | ItemKNN) -> None:
    # items 0-2 co-occur (popularity 3, 2, 4); items 3-5 co-occur (popularity 1, 5, 2):
    # a user of one group reaches none of the other group's items
    pairs = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 2), ("c", 0), ("c", 1), ("c", 2),
             ("d", 2), ("e", 3), ("e", 4), ("f", 4), ("f", 5), ("g", 4), ("h", 4), ("i", 4),
             ("i", 5)]
    train = Interactions.from_raw([u for u, _ in pairs], [i for _, i in pairs])
    model.fit(train)
    rows = train.item_vocab.encode(np.arange(6))
    raw = model.weights if isinstance(model.weights, torch.Tensor) else torch.from_numpy(
        model.weights.toarray())
    history = torch.from_numpy(train.user_item_sets().toarray()[:, model.item_rows])
    for user in ("a", "d", "e"):
        row = train.user_vocab.encode([user])[0]
        scores = model.score_users(np.array([row]), train)[0]
        propagated = (history[row] @ raw)[torch.from_numpy(np.argsort(model.item_rows))]
        reached = propagated != 0
        # nonzero scores are untouched; the unreached items follow, ordered by popularity
        assert torch.equal(scores[torch.from_numpy(rows)][reached], propagated[reached])
        unreached = [item for item in range(6) if not reached[item]]
        by_score = sorted(unreached, key=lambda item: -scores[rows[item]].item())
        popularity = {0: 3, 1: 2, 2: 4, 3: 1, 4: 5, 5: 2}
        assert [popularity[item] for item in by_score] == sorted(
            (popularity[item] for item in unreached), reverse=True)
        positive = scores[torch.from_numpy(rows)][reached & (propagated > 0)]
        assert all(scores[rows[item]] < positive.min() for item in unreached)
    # a user whose history row is empty gets exactly MostPopular's order
    without_a = train.subset(np.flatnonzero(train.user_ids != train.user_vocab.encode(["a"])[0]))
    cold_scores = model.score_users(train.user_vocab.encode(["a"]), without_a)[0]
    expected = MostPopular().fit(train).score_users(np.array([0]), train)[0]
    assert cold_scores.min() >= 0 and cold_scores.max() > 0
    assert torch.equal(torch.argsort(cold_scores, descending=True, stable=True),
                       torch.argsort(expected, descending=True, stable=True))


@pytest.mark.parametrize("shared_users", [0, 25])
def test_ease_sweep_equals_refitting_each_stack(shared_users: int) -> None:
    """The Woodbury sweep (one inverse per l2) gives the same model as fitting each
    shared + extra stack from scratch, with and without shared rows."""
    rng = np.random.default_rng(7)
    shared = sp.csr_matrix((rng.random((shared_users, 12)) < 0.3).astype(np.float32))
    extras = [sp.csr_matrix((rng.random((9, 12)) < p).astype(np.float32)) for p in (0.15, 0.4)]
    swept = {(l2, index): model for l2, index, model in
             ease_sweep(shared, extras, l2s=(2.0, 10.0))}
    assert sorted(swept) == [(2.0, 0), (2.0, 1), (10.0, 0), (10.0, 1)]
    for (l2, index), model in swept.items():
        stacked = sp.vstack([shared, extras[index]], format="csr").toarray()
        # the sweep covers every item of any stack; one that is absent here weighs 0
        expected = ease_closed_form(stacked, l2) * stacked.any(axis=0)[:, None]
        np.fill_diagonal(expected, 0.0)
        direct = EASE(l2=l2).fit_matrix(sp.csr_matrix(stacked))
        for fitted in (model, direct):
            np.testing.assert_allclose(dense_weights(fitted, 12), expected, atol=1e-5)
        assert torch.equal(model.tie_share, direct.tie_share)  # the same popularity tie order


def dense_weights(model: EASE, num_items: int) -> np.ndarray:
    weights = np.zeros((num_items, num_items))
    weights[np.ix_(model.item_rows, model.item_rows)] = model.weights.numpy()
    return weights


def test_rows_in_catalog_matches_items_by_raw_id() -> None:
    target = Interactions.from_raw(["t1", "t1", "t2"], ["a", "b", "c"])
    source = Interactions.from_raw(["s1", "s1", "s2", "s2"], ["b", "z", "c", "c"])
    rows = rows_in_catalog(source, target.item_vocab).toarray()
    # target catalog a, b, c; "z" is source-only and dropped; duplicates count once
    assert rows.tolist() == [[0, 1, 0], [0, 0, 1]]
    assert rows_in_catalog(target, target.item_vocab).nnz == 3
    music = Interactions.from_raw([1, 2], [100, 200])  # integer ids, no shared item
    assert rows_in_catalog(music, target.item_vocab).nnz == 0


def test_item_knn_on_stacked_source_rows_scores_the_target_catalog() -> None:
    # the source co-consumes b and c; the target fraction alone never shows that
    catalog = Interactions.from_raw(["t1", "t2", "t3"], ["a", "b", "c"], name="target")
    target = catalog.subset(np.array([0, 1]))  # nobody in the target fraction saw c
    source = Interactions.from_raw(["s1", "s1", "s2", "s2"], ["b", "c", "b", "c"])
    alone = ItemKNN(k=2).fit(target)
    c = target.item_vocab.encode(["c"])[0]
    assert alone.score_users(np.array([1]), target)[0, c] == 0  # c is outside its fit
    stacked = sp.vstack([rows_in_catalog(source, target.item_vocab), history_matrix(target)])
    model = ItemKNN(k=2).fit_matrix(stacked)
    scores = model.score_users(np.array([1]), target)[0]  # t2 has seen b
    assert scores.argmax().item() == c


def test_item_knn_pruned_copy_equals_a_fit_with_fewer_neighbours() -> None:
    train = random_binary(40, 15, seed=6)
    wide = ItemKNN(k=10, shrink=1.0).fit(train)
    for k in (1, 3, 10):
        pruned = wide.with_neighbours(k).weights.toarray()
        direct = ItemKNN(k=k, shrink=1.0).fit(train).weights.toarray()
        np.testing.assert_allclose(np.sort(pruned, axis=0), np.sort(direct, axis=0), rtol=1e-6)
        assert (np.count_nonzero(pruned, axis=0) <= k).all()
    with pytest.raises(ValueError, match="fitted k"):
        wide.with_neighbours(11)


def test_item_knn_is_pruned_cosine_similarity() -> None:
    train = random_binary(25, 10, seed=2)
    matrix = train.user_item_sets().toarray()
    norms = np.linalg.norm(matrix, axis=0)
    cosine = (matrix.T @ matrix) / (np.outer(norms, norms) + 1.0)
    np.fill_diagonal(cosine, 0.0)
    full = ItemKNN(k=10, shrink=1.0).fit(train).weights.toarray()
    np.testing.assert_allclose(full, cosine, rtol=1e-6)
    pruned = ItemKNN(k=2, shrink=1.0).fit(train).weights.toarray()
    for item in range(10):
        kept = np.flatnonzero(pruned[:, item])
        assert len(kept) <= 2
        # compare values, not indices: tied neighbours may be kept either way
        np.testing.assert_allclose(np.sort(pruned[kept, item]), np.sort(cosine[:, item])[-2:],
                                   rtol=1e-6)


def test_errors_name_the_problem() -> None:
    train = random_binary(10, 6, seed=3)
    with pytest.raises(DataError, match="above max_items=5; raise max_items or use ItemKNN"):
        EASE(max_items=5).fit(train)
    with pytest.raises(DataError, match="no interactions"):
        EASE().fit_matrix(sp.csr_matrix((3, 6), dtype=np.float32))
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

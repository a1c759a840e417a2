"""Top-K metrics against a naive per-user implementation and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recft.errors import DataError
from recft.evaluate.metrics import RANKING_METRICS, TopKTally, auc, mae, rmse, topk_metrics
from recft.evaluate.ranking import SELECTION_BLOCK, top_k


def naive_metrics(scores: np.ndarray, relevant: list[set[int]], exclude: list[set[int]],
                  ks: tuple[int, ...]) -> dict[str, float]:
    """RecBole's definitions, one user at a time, straight from the formulas."""
    sums: dict[str, float] = {}
    counted = 0
    for user, wanted in enumerate(relevant):
        if not wanted:
            continue
        counted += 1
        order = [int(i) for i in np.argsort(-scores[user]) if int(i) not in exclude[user]]
        for k in ks:
            top = order[:k]
            hits = [item in wanted for item in top]
            found = sum(hits)
            dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
            idcg = sum(1 / math.log2(rank + 2) for rank in range(min(len(wanted), k)))
            first = next((rank + 1 for rank, hit in enumerate(hits) if hit), None)
            precisions = [sum(hits[: rank + 1]) / (rank + 1) for rank, hit in enumerate(hits) if hit]
            values = {
                "hit": float(found > 0),
                "recall": found / len(wanted),
                "precision": found / k,
                "ndcg": dcg / idcg,
                "mrr": 1 / first if first else 0.0,
                "map": sum(precisions) / min(len(wanted), k),
            }
            for name, value in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + value
    return {key: value / counted for key, value in sums.items()}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_naive_implementation_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_users, num_items = 40, 60
    scores = rng.standard_normal((num_users, num_items))  # continuous: no ties
    relevant = [set(rng.choice(num_items, rng.integers(0, 12), replace=False).tolist())
                for _ in range(num_users)]
    exclude = [set(rng.choice(num_items, rng.integers(0, 15), replace=False).tolist()) - r
               for r in relevant]
    assert_matches_naive(scores, relevant, exclude, ks=(1, 5, 10, 20))


def test_matches_naive_implementation_on_a_wide_catalog() -> None:
    # 100 blocks of 64 items and a tail of 37: ranked by top_k's two stages; relevant and
    # excluded items come from each user's 40 best, so the lists hold hits to get wrong
    rng = np.random.default_rng(4)
    num_users, num_items = 30, 100 * SELECTION_BLOCK + 37
    scores = rng.standard_normal((num_users, num_items))
    best = np.argsort(-scores, axis=1)[:, :40]
    relevant = [set(rng.choice(row, rng.integers(0, 12), replace=False).tolist()) for row in best]
    exclude = [set(rng.choice(row, 10, replace=False).tolist()) - wanted
               for row, wanted in zip(best, relevant)]
    assert_matches_naive(scores, relevant, exclude, ks=(1, 5, 10, 20))


def assert_matches_naive(scores: np.ndarray, relevant: list[set[int]], exclude: list[set[int]],
                         ks: tuple[int, ...]) -> None:
    expected = naive_metrics(scores, relevant, exclude, ks)
    got = topk_metrics(torch.tensor(scores), [np.array(sorted(r)) for r in relevant],
                       exclude=[np.array(sorted(e)) for e in exclude], ks=ks,
                       metrics=RANKING_METRICS)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("k", [1, 20, 25])
def test_two_stage_top_k_equals_torch_topk(k: int) -> None:
    num_items = 100 * SELECTION_BLOCK + 37  # 100 blocks (>= 4k: two stages) and a tail
    scores = torch.randn(12, num_items, generator=torch.Generator().manual_seed(k))
    scores[0] = float("-inf")  # nothing rankable
    scores[1, SELECTION_BLOCK:] = float("-inf")  # fewer than k rankable items, in one block
    scores[2, -37:] += 10.0  # the best items sit in the tail, outside every full block
    scores[3, ::SELECTION_BLOCK] += 10.0  # one winner per block: the blocks' maxima decide
    values, items = top_k(scores, k)
    expected_values, expected_items = torch.topk(scores, k, dim=1)
    assert torch.equal(values, expected_values)
    finite = torch.isfinite(expected_values)  # -inf slots may list any -inf item
    assert torch.equal(items[finite], expected_items[finite])


def test_nan_in_a_wide_row_is_reported() -> None:
    scores = torch.randn(3, 100 * SELECTION_BLOCK)
    scores[1, 5000] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        topk_metrics(scores, [np.array([0])] * 3, ks=(10,))


def test_tally_over_blocks_equals_one_block() -> None:
    rng = np.random.default_rng(5)
    num_users, num_items = 30, 25
    scores = torch.tensor(rng.standard_normal((num_users, num_items)))
    relevant = sp.csr_matrix((rng.random((num_users, num_items)) < 0.15).astype(np.float32))
    exclude = sp.csr_matrix((rng.random((num_users, num_items)) < 0.2).astype(np.float32))
    popularity = rng.integers(0, 50, num_items)
    whole, per_user = topk_metrics(scores, relevant, exclude=exclude, ks=(3, 7),
                                   item_popularity=popularity, return_per_user=True)
    tally = TopKTally(num_items, ks=(7, 3), item_popularity=popularity)
    for start in range(0, num_users, 4):
        rows = slice(start, start + 4)
        tally.add(scores[rows], relevant[rows], exclude[rows])
    assert list(tally.summary()) == list(whole)  # same keys in the same order
    for key, value in whole.items():
        assert tally.summary()[key] == pytest.approx(value, abs=1e-12), key
    for key, values in per_user.items():
        np.testing.assert_array_equal(tally.per_user()[key], values)


def test_hand_computed_single_user() -> None:
    # ranking is items 0, 1, 2, 3, ... ; R = {1, 3, 5}; at k = 4 hits sit at ranks 2 and 4.
    # DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
    # IDCG over min(|R|, k) = 3 slots = 1 + 0.630930 + 0.5 = 2.130930 -> NDCG = 0.498189
    # MAP = (precision@2 + precision@4) / min(3, 4) = (1/2 + 2/4) / 3 = 1/3
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    got = topk_metrics(scores, [np.array([1, 3, 5])], ks=(4,))
    assert got["ndcg@4"] == pytest.approx(0.498189, abs=1e-6)
    assert got["map@4"] == pytest.approx(1 / 3)
    assert got["recall@4"] == pytest.approx(2 / 3)
    assert got["precision@4"] == pytest.approx(0.5)
    assert got["mrr@4"] == pytest.approx(0.5)
    assert got["hit@4"] == 1.0
    assert got["coverage@4"] == pytest.approx(4 / 6)


def test_excluded_top_item_is_never_a_hit() -> None:
    # item 0 has the top score and is relevant, but the user has already seen it
    scores = torch.tensor([[5.0, 1.0, 2.0, 3.0]])
    relevant = [np.array([0])]
    assert topk_metrics(scores, relevant, ks=(1,))["hit@1"] == 1.0
    excluded = topk_metrics(scores, relevant, exclude=[np.array([0])], ks=(1, 4))
    assert excluded["hit@1"] == 0.0
    assert excluded["hit@4"] == 0.0  # excluded slots at -inf never count, even with k = I
    assert excluded["coverage@4"] == pytest.approx(3 / 4)
    assert scores[0, 0] == 5.0  # the caller's tensor is left untouched
    # a shared, expanded row (one list for every user) cannot be written in place
    shared = scores.expand(3, -1)
    got = topk_metrics(shared, [np.array([3]), np.array([0]), np.array([1])],
                       exclude=[np.array([0]), np.array([], dtype=np.int64), np.array([0, 3])],
                       ks=(1,))
    assert got["hit@1"] == pytest.approx(2 / 3)  # items 3 and 0 hit; user 2 gets 2, wants 1
    assert scores[0, 0] == 5.0


def test_users_without_relevant_items_are_skipped() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    both = topk_metrics(scores, [np.array([], dtype=np.int64), np.array([0])], ks=(1,),
                        metrics=RANKING_METRICS)
    alone = topk_metrics(scores[1:], [np.array([0])], ks=(1,), metrics=RANKING_METRICS)
    assert both == alone
    assert both["hit@1"] == 1.0


def test_sparse_and_list_inputs_agree_and_per_user_values() -> None:
    rng = np.random.default_rng(7)
    scores = torch.tensor(rng.random((5, 8)))
    lists = [np.array([0, 3]), np.array([], dtype=np.int64), np.array([7]), np.array([1, 2, 5]),
             np.array([6])]
    matrix = sp.lil_matrix((5, 8))
    for user, items in enumerate(lists):
        matrix[user, items] = 1
    from_lists, per_user = topk_metrics(scores, lists, ks=(3,), return_per_user=True)
    assert topk_metrics(scores, matrix.tocsr(), ks=(3,)) == from_lists
    assert per_user["recall@3"].shape == (5,)
    assert np.isnan(per_user["recall@3"][1])
    assert np.nanmean(per_user["ndcg@3"]) == pytest.approx(from_lists["ndcg@3"])


def test_average_popularity_and_k_beyond_catalog() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    popularity = np.array([10, 4, 1])
    got = topk_metrics(scores, [np.array([2]), np.array([2])], ks=(2, 5),
                       item_popularity=popularity)
    # top-2 lists: [0, 1] -> (10 + 4) / 2 = 7 and [1, 2] -> (4 + 1) / 2 = 2.5
    assert got["avg_popularity@2"] == pytest.approx((7 + 2.5) / 2)
    # k = 5 > 3 items: the whole catalog is listed, precision still divides by k
    assert got["precision@5"] == pytest.approx(1 / 5)
    assert got["recall@5"] == 1.0
    assert got["coverage@2"] == 1.0


def test_invalid_inputs_raise_clear_errors() -> None:
    with pytest.raises(DataError, match="NaN"):
        topk_metrics(torch.tensor([[float("nan"), 1.0]]), [np.array([0])], ks=(1,))
    with pytest.raises(DataError, match="rows"):
        topk_metrics(torch.zeros(2, 3), [np.array([0])], ks=(1,))
    with pytest.raises(ValueError, match="unknown metrics"):
        topk_metrics(torch.zeros(1, 3), [np.array([0])], metrics=("ndgc",))
    with pytest.raises(ValueError, match="item_popularity"):
        topk_metrics(torch.zeros(1, 3), [np.array([0])], metrics=("avg_popularity",))


def test_rating_and_auc_metrics() -> None:
    predictions = np.array([3.0, 4.0, 2.0])
    targets = np.array([4.0, 4.0, 4.0])
    assert rmse(predictions, targets) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert mae(torch.tensor(predictions), targets) == pytest.approx(1.0)
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of the 4 pairs ordered correctly
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    with pytest.raises(DataError, match="one class"):
        auc(np.array([0.1, 0.2]), np.array([1, 1]))

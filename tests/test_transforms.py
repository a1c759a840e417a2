"""Implicit-feedback helpers on inputs whose right answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recft.data import Interactions
from recft.data.transforms import binarize, deduplicate, kcore_filter, log1p_weights
from recft.errors import DataError


def _pairs(x: Interactions) -> list[tuple]:
    return list(zip(x.user_vocab.decode(x.user_ids).tolist(),
                    x.item_vocab.decode(x.item_ids).tolist()))


@pytest.fixture
def repeats() -> Interactions:
    # (1, a) three times with ratings 3, 1, 4 at t = 10, 30, 20; (2, a) and (2, b) once
    return Interactions.from_raw([1, 2, 1, 1, 2], ["a", "a", "a", "a", "b"],
                                 ratings=[3, 5, 1, 4, 2], timestamps=[10, 5, 30, 20, 1])


def test_binarize_keeps_ratings_at_or_above_threshold() -> None:
    x = Interactions.from_raw([1, 1, 2, 2], [1, 2, 1, 3], ratings=[1, 4, 5, 3.5])
    y = binarize(x, threshold=4)
    assert _pairs(y) == [(1, 2), (2, 1)] and y.feedback == "implicit"
    assert y.ratings.tolist() == [4.0, 5.0]
    assert y.item_vocab is x.item_vocab  # rows keep their meaning
    with pytest.raises(DataError, match="binarize needs ratings"):
        binarize(Interactions.from_raw([1], [1]), 4)


def test_log1p_weights() -> None:
    x = Interactions.from_raw([1, 1], [1, 2], ratings=[0.0, math.e - 1], feedback="count")
    assert np.allclose(log1p_weights(x).weights, [0.0, 1.0])
    with pytest.raises(DataError, match="negative"):
        log1p_weights(Interactions.from_raw([1], [1], ratings=[-2.0]))


def test_kcore_iterates_until_stable() -> None:
    # dropping (u2, i2) for item_k leaves u2 with one interaction, so (u2, i0) goes too
    x = Interactions.from_raw(["u0", "u0", "u1", "u1", "u2", "u2"],
                              ["i0", "i1", "i0", "i1", "i2", "i0"])
    y = kcore_filter(x, user_k=2, item_k=2)
    assert _pairs(y) == [("u0", "i0"), ("u0", "i1"), ("u1", "i0"), ("u1", "i1")]
    assert _pairs(kcore_filter(x, user_k=1, item_k=1)) == _pairs(x)
    assert len(kcore_filter(x, user_k=3, item_k=1)) == 0


@pytest.mark.parametrize("keep, rows", [("first", [0, 1, 4]), ("last", [1, 2, 4])])
def test_deduplicate_first_last_by_time(repeats: Interactions, keep: str, rows: list[int]) -> None:
    y = deduplicate(repeats, keep=keep)
    assert y.timestamps.tolist() == repeats.timestamps[rows].tolist()
    assert y.ratings.tolist() == repeats.ratings[rows].tolist()


def test_deduplicate_sum_and_max(repeats: Interactions) -> None:
    summed = deduplicate(repeats, keep="sum")
    assert _pairs(summed) == [(1, "a"), (2, "a"), (2, "b")]
    assert summed.ratings.tolist() == [8.0, 5.0, 2.0]
    assert summed.timestamps.tolist() == [30, 5, 1]
    largest = deduplicate(repeats, keep="max")
    assert largest.ratings.tolist() == [4.0, 5.0, 2.0]
    assert largest.timestamps.tolist() == [30, 5, 1]


def test_deduplicate_without_time_uses_file_order_and_counts() -> None:
    x = Interactions.from_raw([1, 1, 2, 1], [7, 8, 7, 7])
    assert _pairs(deduplicate(x, keep="last")) == [(1, 8), (2, 7), (1, 7)]
    counted = deduplicate(x, keep="sum")
    assert _pairs(counted) == [(1, 7), (1, 8), (2, 7)]
    assert counted.weights.tolist() == [2.0, 1.0, 1.0]
    with pytest.raises(DataError, match=r"keep must be one of \('last', 'first', 'sum', 'max'\)"):
        deduplicate(x, keep="mean")

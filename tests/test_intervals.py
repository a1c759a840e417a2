"""Bootstrap intervals over test users: known cases, coverage, pairing, and per-user values
that average to evaluate()'s numbers."""

from __future__ import annotations

import numpy as np
import pytest

from recft.data import Interactions
from recft.errors import DataError
from recft.evaluate import evaluate
from recft.evaluate.intervals import (
    PerUserMetrics,
    bootstrap_interval,
    interval_table,
    paired_differences,
    per_user_metrics,
    verdict,
)
from recft.models.baselines import EASE, MostPopular


def random_split(seed: int = 0) -> tuple[Interactions, Interactions]:
    rng = np.random.default_rng(seed)
    matrix = rng.random((60, 25)) < 0.3
    users, items = np.nonzero(matrix)
    data = Interactions.from_raw(users, items)
    held_out = rng.random(len(data)) < 0.25
    return data.subset(np.flatnonzero(~held_out)), data.subset(np.flatnonzero(held_out))


def test_per_user_values_average_to_evaluate() -> None:
    train, test = random_split()
    for model in (MostPopular().fit(train), EASE(l2=5.0).fit(train)):
        summary = evaluate(model, test, exclude=train, ks=(5, 10))
        measured = per_user_metrics(model, test, exclude=train, ks=(5, 10))
        np.testing.assert_array_equal(measured.users, np.unique(test.user_ids))
        for key in ("ndcg@5", "recall@10", "precision@10", "hit@5"):
            assert measured[key].shape == measured.users.shape
            assert measured.mean(key) == pytest.approx(summary[key], abs=1e-12)


def test_interval_of_constant_values_is_the_value() -> None:
    assert bootstrap_interval(np.full(50, 0.3)) == pytest.approx((0.3, 0.3))
    # strata: the mean of stratum means, whatever their sizes (0 and 1 -> 0.5)
    assert bootstrap_interval([np.zeros(10), np.ones(200)]) == pytest.approx((0.5, 0.5))
    assert all(np.isnan(bootstrap_interval(np.array([np.nan]))))


def test_interval_matches_the_normal_approximation_and_is_seeded() -> None:
    values = np.random.default_rng(1).normal(0.2, 0.1, size=4_000)
    low, high = bootstrap_interval(values)
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.15 * half)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(values, level=1.5)


def test_pairing_detects_a_small_consistent_gain_that_separate_intervals_miss() -> None:
    rng = np.random.default_rng(2)
    users = np.arange(300)
    hardness = rng.random(300)  # users differ a lot; model a is better by 0.02 on each
    a = PerUserMetrics(users, {"ndcg@10": hardness + 0.02 + rng.normal(0, 0.01, 300)})
    b = PerUserMetrics(users, {"ndcg@10": hardness})
    a_low, a_high = bootstrap_interval(a["ndcg@10"])
    b_low, b_high = bootstrap_interval(b["ndcg@10"])
    assert a_low < b_high  # separately, the intervals overlap
    low, high = bootstrap_interval(paired_differences(a, b, "ndcg@10"))
    assert 0 < low < 0.02 < high
    assert verdict(low, high) == "better" and verdict(-high, -low) == "worse"
    assert verdict(-0.01, 0.01) == "tie"
    other = PerUserMetrics(users + 1, b.values)
    with pytest.raises(DataError, match="same test users"):
        paired_differences(a, other, "ndcg@10")


def test_interval_table_compares_every_model_with_the_reference() -> None:
    train, test = random_split(3)
    results = {name: per_user_metrics(model, test, exclude=train, ks=(10,))
               for name, model in (("ease", EASE(l2=5.0).fit(train)),
                                   ("popularity", MostPopular().fit(train)))}
    rows = interval_table(results, reference="popularity", metrics=("ndcg@10",))
    assert [row["model"] for row in rows] == ["ease", "popularity"]
    ease = rows[0]
    assert ease["low"] <= ease["mean"] <= ease["high"]
    assert ease["vs popularity"] == pytest.approx(
        results["ease"].mean("ndcg@10") - results["popularity"].mean("ndcg@10"))
    assert ease["verdict"] == verdict(ease["diff low"], ease["diff high"])
    assert "verdict" not in rows[1]
    with pytest.raises(KeyError, match="reference"):
        interval_table(results, reference="scratch")

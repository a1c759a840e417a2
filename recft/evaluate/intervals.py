"""Uncertainty of top-K metrics: per-user values and bootstrap intervals over test users.

A metric is a mean over test users, so its uncertainty comes from which users happened to
be in the test set. ``bootstrap_interval`` resamples users (within each stratum, e.g. one
per seed or cohort draw, when values come from several runs); the interval of a
*difference* between two models is the interval of the per-user differences on the same
users (a paired bootstrap), which is far narrower than comparing two separate intervals
because both models face the same easy and hard users.

Example::

    ease = per_user_metrics(EASE().fit(train), test, exclude=train)
    pop = per_user_metrics(MostPopular().fit(train), test, exclude=train)
    bootstrap_interval(ease["ndcg@10"])                                  # (low, high)
    bootstrap_interval(paired_differences(ease, pop, "ndcg@10"))         # excludes 0?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.evaluate.metrics import topk_metrics

LEVEL = 0.95
RESAMPLES = 2_000
_BLOCK_BYTES = 256 * 2**20  # one (B, I) float32 score block, as in evaluate()


@dataclass(frozen=True)
class PerUserMetrics:
    """Metric values of each evaluated test user (those with at least one test item).

    Attributes:
        users: (U,) user rows, sorted.
        values: ``{"ndcg@10": (U,) float64, ...}``, aligned with ``users``.
    """

    users: np.ndarray
    values: dict[str, np.ndarray]

    def __getitem__(self, metric: str) -> np.ndarray:
        return self.values[metric]

    def mean(self, metric: str) -> float:
        return float(np.mean(self.values[metric]))


def per_user_metrics(model, test: Interactions, exclude: Interactions | None = None,
                     history: Interactions | None = None, ks: Sequence[int] = (10, 20),
                     metrics: Sequence[str] = ("ndcg", "recall", "precision", "hit"),
                     ) -> PerUserMetrics:
    """Per-user ranking metrics under ``evaluate``'s protocol (full ranking, ``exclude``
    scored -inf, ``history`` given to the model, defaulting to ``exclude``); their means
    are ``evaluate``'s numbers. Users are scored in blocks of about 256 MB of scores."""
    if history is None:
        history = exclude if exclude is not None else test.subset(np.zeros(0, dtype=np.int64))
    relevant = test.user_item_sets()
    users = np.flatnonzero(np.diff(relevant.indptr))
    if users.size == 0:
        raise DataError(f"{test.name or 'test'} has no interactions to evaluate")
    excluded = exclude.user_item_sets() if exclude is not None else None
    rows_per_block = max(1, _BLOCK_BYTES // (4 * max(test.catalog_size, 1)))
    parts: list[dict[str, np.ndarray]] = []
    training = isinstance(model, torch.nn.Module) and model.training
    if training:
        model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, users.size, rows_per_block):
                chunk = users[start:start + rows_per_block]
                scores = model.score_users(chunk, history)
                _, values = topk_metrics(scores, relevant[chunk],
                                         None if excluded is None else excluded[chunk],
                                         ks=ks, metrics=metrics, return_per_user=True)
                parts.append(values)
    finally:
        if training:
            model.train()
    return PerUserMetrics(users, {key: np.concatenate([p[key] for p in parts])
                                  for key in parts[0]})


def paired_differences(first: PerUserMetrics, second: PerUserMetrics, metric: str) -> np.ndarray:
    """(U,) ``first - second`` per user; both must have been measured on the same users."""
    if not np.array_equal(first.users, second.users):
        raise DataError(f"paired differences need the same test users; got {first.users.size:,} "
                        f"and {second.users.size:,} users that differ")
    return first[metric] - second[metric]


def bootstrap_interval(samples: np.ndarray | Sequence[np.ndarray], level: float = LEVEL,
                       resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean over users.

    Args:
        samples: per-user values, or one array per stratum (seed, cohort draw): users are
            resampled within each stratum and the statistic is the mean of the stratum
            means, which is what a table averaging several seeds reports.
        level: coverage of the interval.
        resamples: bootstrap replicates.
        seed: the resampling seed (the same seed gives the same interval).

    Returns:
        ``(low, high)``; both NaN when there is no value at all.
    """
    strata = [samples] if isinstance(samples, np.ndarray) else list(samples)
    strata = [np.asarray(values, dtype=np.float64) for values in strata]
    strata = [values[~np.isnan(values)] for values in strata]
    strata = [values for values in strata if values.size]
    if not strata:
        return float("nan"), float("nan")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    replicates = np.zeros(resamples)
    for values in strata:
        picks = rng.integers(0, values.size, size=(resamples, values.size))
        replicates += values[picks].mean(axis=1)
    replicates /= len(strata)
    tail = (1 - level) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


def interval_table(results: Mapping[str, PerUserMetrics], reference: str,
                   metrics: Sequence[str] = ("ndcg@10", "recall@10")) -> list[dict[str, object]]:
    """One row per model and metric: mean, 95% interval, and the paired difference to
    ``reference`` with its interval and a verdict (better / worse where the interval
    excludes zero, else tie). Rows are plain dicts, ready for a DataFrame."""
    if reference not in results:
        raise KeyError(f"reference {reference!r} is not among {sorted(results)}")
    rows = []
    for name, measured in results.items():
        for metric in metrics:
            low, high = bootstrap_interval(measured[metric])
            row: dict[str, object] = {"model": name, "metric": metric,
                                      "mean": measured.mean(metric), "low": low, "high": high}
            if name != reference:
                difference = paired_differences(measured, results[reference], metric)
                diff_low, diff_high = bootstrap_interval(difference)
                row.update({f"vs {reference}": float(difference.mean()),
                            "diff low": diff_low, "diff high": diff_high,
                            "verdict": verdict(diff_low, diff_high)})
            rows.append(row)
    return rows


def verdict(low: float, high: float) -> str:
    """``"better"`` / ``"worse"`` when a difference's interval excludes zero, else ``"tie"``."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "tie"

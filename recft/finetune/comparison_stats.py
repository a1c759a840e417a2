"""Summaries of compare() runs: means over seeds, bootstrap intervals over test users, and
paired verdicts against the best baseline of each fraction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recft.evaluate.intervals import bootstrap_interval, paired_differences, verdict
from recft.finetune.compare_baselines import BASELINES

if TYPE_CHECKING:
    from recft.finetune.compare import SeedRun

VERDICTS = {"better": "win", "worse": "loss", "tie": "tie"}
_SUMMED_COMPUTE = ("wall_seconds", "examples_seen", "trainable_parameters")


def summarize(runs: Sequence[SeedRun]) -> list[dict[str, Any]]:
    """One JSON row per (strategy, fraction) over every seed's run.

    Each row holds ``metrics`` (the mean over seeds), ``ci95`` (``{metric: [low, high]}``,
    a bootstrap over test users resampled within each seed), and for recft's strategies
    ``vs_best_baseline`` (``{metric: {"baseline", "difference", "ci95", "verdict"}}``: the
    paired interval of the per-user difference to the baseline with the best mean at that
    fraction; ``"win"`` / ``"loss"`` only where it excludes zero). With several seeds,
    ``seeds``, ``per_seed`` (each seed's value) and ``spread`` (their standard deviation)
    are added and ``compute`` holds means.
    """
    if not runs:
        raise ValueError("summarize needs at least one run")
    by_seed = [{(row["strategy"], row["fraction"]): row for row in run.rows} for run in runs]
    rows = []
    for key in by_seed[0]:
        measured = [run.per_user[key] for run in runs]
        row = _merged([rows_of_seed[key] for rows_of_seed in by_seed], [r.seed for r in runs])
        row["ci95"] = {metric: list(bootstrap_interval([m[metric] for m in measured]))
                       for metric in measured[0].values}
        rows.append(row)
    _compare_with_baselines(rows, runs)
    return [_ordered(row) for row in rows]


def best_baselines(rows: Sequence[dict[str, Any]], metric: str) -> dict[float, str]:
    """``{fraction: strategy}``: the baseline with the highest mean ``metric`` per fraction."""
    best: dict[float, str] = {}
    for row in rows:
        if row["strategy"] not in BASELINES or metric not in row["metrics"]:
            continue
        current = best.get(row["fraction"])
        if current is None or row["metrics"][metric] > _value(rows, current, row["fraction"],
                                                              metric):
            best[row["fraction"]] = row["strategy"]
    return best


def _compare_with_baselines(rows: list[dict[str, Any]], runs: Sequence[SeedRun]) -> None:
    for metric in rows[0]["ci95"]:
        best = best_baselines(rows, metric)
        for row in rows:
            baseline = best.get(row["fraction"])
            if row["strategy"] in BASELINES or baseline is None:
                continue
            differences = [paired_differences(run.per_user[row["strategy"], row["fraction"]],
                                              run.per_user[baseline, row["fraction"]], metric)
                           for run in runs]
            low, high = bootstrap_interval(differences)
            row.setdefault("vs_best_baseline", {})[metric] = {
                "baseline": baseline,
                "difference": float(np.mean([d.mean() for d in differences])),
                "ci95": [low, high], "verdict": VERDICTS[verdict(low, high)]}


def _merged(seed_rows: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    if len(seed_rows) == 1:
        return dict(seed_rows[0])
    first = seed_rows[0]
    metrics = {key: [row["metrics"][key] for row in seed_rows] for key in first["metrics"]}
    compute = dict(first["compute"])
    for key in _SUMMED_COMPUTE:
        compute[key] = float(np.mean([row["compute"][key] for row in seed_rows]))
    merged = {**first, "seeds": seeds,
              "metrics": {key: float(np.mean(values)) for key, values in metrics.items()},
              "spread": {key: float(np.std(values, ddof=1)) for key, values in metrics.items()},
              "per_seed": metrics, "compute": compute,
              "train_interactions": float(np.mean([r["train_interactions"] for r in seed_rows]))}
    if "params" in first:
        merged["params"] = [row["params"] for row in seed_rows]
        merged["valid"] = [row["valid"] for row in seed_rows]
    return merged


def _value(rows: Sequence[dict[str, Any]], strategy: str, fraction: float, metric: str) -> float:
    return next(r["metrics"][metric] for r in rows
                if r["strategy"] == strategy and r["fraction"] == fraction)


_ORDER = ("strategy", "fraction", "metrics", "ci95", "vs_best_baseline", "seeds", "per_seed",
          "spread", "compute", "train_interactions", "params", "valid")


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    return {**{key: row[key] for key in _ORDER if key in row},
            **{key: value for key, value in row.items() if key not in _ORDER}}

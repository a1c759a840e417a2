"""Figures and tables the notebooks show: data shape, learning curves, segments, comparisons.

Every function returns a matplotlib ``Figure`` (or a pandas ``DataFrame`` for tables) and
draws nothing global, so notebooks stay one call per step and reports embed the same
figures. matplotlib is imported lazily: ``import recft`` stays light for batch jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recft.data.interactions import Interactions


def _figure(ncols: int = 1, width: float = 5.0, height: float = 3.4):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def plot_data_overview(x: Interactions) -> Any:
    """Popularity long tail, user activity and the rating (or play-count) distribution."""
    fig, (tail, activity, values) = _figure(3)
    popularity = np.sort(x.item_popularity()[x.item_popularity() > 0])[::-1]
    ranks = np.arange(1, len(popularity) + 1)
    tail.loglog(ranks, popularity, lw=1.5)
    share = np.cumsum(popularity) / max(popularity.sum(), 1)
    head = int(np.searchsorted(share, 0.5)) + 1
    tail.set(title=f"item popularity (top {head} hold 50% of interactions)",
             xlabel="item rank", ylabel="interactions")
    per_user = x.user_activity()[x.user_activity() > 0]
    bins = np.unique(np.logspace(0, np.log10(max(per_user.max(), 2)), 30).astype(int))
    activity.hist(per_user, bins=bins, color="tab:green")
    activity.set(xscale="log", title=f"user activity (median {np.median(per_user):.0f})",
                 xlabel="interactions per user", ylabel="users")
    if x.ratings is not None:
        distinct = np.unique(x.ratings)
        if len(distinct) <= 12:
            counts = pd.Series(x.ratings).value_counts().sort_index()
            values.bar(counts.index.astype(str), counts.values, color="tab:orange")
            values.set(title="rating distribution", xlabel="rating", ylabel="interactions")
        else:
            values.hist(np.log1p(x.ratings), bins=40, color="tab:orange")
            values.set(title=f"{x.feedback} distribution", xlabel="log(1 + value)",
                       ylabel="interactions")
    else:
        values.text(0.5, 0.5, "implicit feedback:\nno ratings", ha="center", va="center")
        values.set_axis_off()
    fig.tight_layout()
    return fig


def plot_timeline(x: Interactions, freq: str = "MS") -> Any:
    """Interactions per period (monthly by default); empty axes when there are no timestamps."""
    fig, (axis,) = _figure(1, width=8)
    if x.timestamps is None or len(x) == 0:
        axis.text(0.5, 0.5, "no timestamps", ha="center", va="center")
        axis.set_axis_off()
        return fig
    times = pd.to_datetime(x.timestamps, unit="s")
    counts = pd.Series(1, index=times).resample(freq).sum()
    axis.plot(counts.index, counts.values, lw=1.5)
    axis.set(title="interactions over time", ylabel="interactions")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot_feature_frequencies(x: Interactions, top: int = 20) -> Any:
    """The most frequent values of each item feature, weighted by interactions."""
    features = {} if x.item_features is None else dict(x.item_features.categorical)
    fig, axes = _figure(max(len(features), 1), width=4.5, height=max(3.0, top * 0.18))
    if not features:
        axes[0].text(0.5, 0.5, "no item features", ha="center", va="center")
        axes[0].set_axis_off()
        return fig
    popularity = x.item_popularity()
    for axis, (name, feature) in zip(axes, features.items()):
        owners = np.repeat(np.arange(feature.num_entities), feature.lengths())
        weight = np.bincount(feature.values, weights=popularity[owners], minlength=len(feature.vocab))
        order = np.argsort(-weight)[:top][::-1]
        axis.barh([str(v) for v in feature.vocab.decode(order)], weight[order])
        axis.set(title=f"{name} ({feature.coverage():.0%} of items)", xlabel="interactions")
    fig.tight_layout()
    return fig


def plot_learning_curves(curves: Mapping[str, Sequence[float]], metrics: Mapping[str, Sequence[float]]
                         | None = None, title: str = "training") -> Any:
    """Loss curves (left) and validation metrics (right), one line per named series."""
    fig, (loss_axis, metric_axis) = _figure(2)
    for label, values in curves.items():
        loss_axis.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
    loss_axis.set(title=f"{title}: loss", xlabel="epoch", ylabel="loss")
    for label, values in (metrics or {}).items():
        metric_axis.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
    metric_axis.set(title=f"{title}: validation", xlabel="epoch")
    for axis in (loss_axis, metric_axis):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_segments(metrics: Mapping[str, Any], metric: str = "ndcg@10",
                  models: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """Bars of ``metric`` per segment (user-activity buckets, head/tail items).

    Args:
        metrics: an ``evaluate(..., segments=True)`` result, or None when ``models`` given.
        models: several results by model name, drawn side by side.
    """
    results = dict(models) if models else {"model": metrics}
    # evaluate() lists segments in their natural order (activity buckets ascending)
    names = list(dict.fromkeys(s for r in results.values() for s in (r.get("segments") or {})))
    fig, (axis,) = _figure(1, width=max(6.0, 0.9 * len(names) + 2))
    width = 0.8 / max(len(results), 1)
    for offset, (label, result) in enumerate(results.items()):
        values = [(result.get("segments") or {}).get(n, {}).get(metric, np.nan) for n in names]
        axis.bar(np.arange(len(names)) + offset * width, values, width, label=label)
    axis.set_xticks(np.arange(len(names)) + width * (len(results) - 1) / 2)
    axis.set_xticklabels([n.replace("users:activity:", "users ").replace("items:", "items ")
                          for n in names], rotation=30, ha="right")
    axis.set(title=f"{metric} by segment", ylabel=metric)
    if len(results) > 1:
        axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_data_efficiency(rows: Iterable[Mapping[str, Any]], metric: str = "ndcg@10") -> Any:
    """Test ``metric`` against the fraction of target training data, one line per strategy."""
    frame = comparison_table(rows, metrics=(metric,))
    fig, (axis,) = _figure(1, width=7, height=4.2)
    for strategy, group in frame.groupby("strategy", sort=False):
        group = group.sort_values("fraction")
        axis.plot(group["fraction"], group[metric], marker="o", label=strategy)
    axis.set(xscale="log", xlabel="fraction of target training data", ylabel=f"test {metric}",
             title="data efficiency")
    fractions = sorted(frame["fraction"].unique())
    axis.set_xticks(fractions)
    axis.set_xticklabels([f"{f:g}" for f in fractions])
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def comparison_table(rows: Iterable[Mapping[str, Any]],
                     metrics: Sequence[str] = ("ndcg@10", "recall@10")) -> pd.DataFrame:
    """Flatten ``comparison.json`` rows into one table: strategy, fraction, metrics, compute."""
    records = []
    for row in rows:
        record = {"strategy": row["strategy"], "fraction": float(row["fraction"])}
        record.update({m: row.get("metrics", {}).get(m, np.nan) for m in metrics})
        record.update(row.get("compute", {}))
        records.append(record)
    return pd.DataFrame.from_records(records)


def metrics_table(results: Mapping[str, Mapping[str, Any]],
                  keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows = models, columns = the scalar metrics they share (or ``keys``)."""
    frame = pd.DataFrame({name: {k: v for k, v in result.items() if isinstance(v, (int, float))}
                          for name, result in results.items()}).T
    if keys is not None:
        frame = frame[[k for k in keys if k in frame.columns]]
    return frame

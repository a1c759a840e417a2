"""Notebook figures and tables are drawn from the data they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from recft import plots  # noqa: E402
from recft.data import Interactions  # noqa: E402


def toy() -> Interactions:
    return Interactions.from_raw(["a", "a", "b", "c", "c", "c"], [1, 2, 1, 1, 2, 3],
                                 ratings=[5, 3, 4, 1, 2, 5], timestamps=[0, 86400 * 40, 5, 6, 7, 8])


def test_overview_popularity_curve_is_sorted_item_counts() -> None:
    fig = plots.plot_data_overview(toy())
    line = fig.axes[0].get_lines()[0]
    assert line.get_ydata().tolist() == [3, 2, 1]
    assert "top 1 hold 50%" in fig.axes[0].get_title()  # item 1: 3 of 6


def test_data_efficiency_draws_one_line_per_strategy_in_fraction_order() -> None:
    rows = [
        {"strategy": "scratch", "fraction": 1.0, "metrics": {"ndcg@10": 0.3}, "compute": {"wall_seconds": 2.0}},
        {"strategy": "scratch", "fraction": 0.1, "metrics": {"ndcg@10": 0.1}, "compute": {"wall_seconds": 1.0}},
        {"strategy": "frozen+full", "fraction": 0.1, "metrics": {"ndcg@10": 0.2}, "compute": {}},
    ]
    fig = plots.plot_data_efficiency(rows)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"scratch", "frozen+full"}
    assert lines["scratch"].get_ydata().tolist() == [0.1, 0.3]
    table = plots.comparison_table(rows)
    assert table.loc[0, "wall_seconds"] == 2.0 and np.isnan(table.loc[2, "wall_seconds"])


def test_segments_and_metrics_table() -> None:
    result = {"ndcg@10": 0.2, "segments": {"items:head": {"ndcg@10": 0.3}, "items:tail": {"ndcg@10": 0.1}}}
    fig = plots.plot_segments(result)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights == [0.3, 0.1]
    table = plots.metrics_table({"m": result, "n": {"ndcg@10": 0.5}})
    assert table.loc["n", "ndcg@10"] == 0.5 and "segments" not in table.columns


def test_timeline_counts_per_month() -> None:
    fig = plots.plot_timeline(toy())
    assert sum(fig.axes[0].get_lines()[0].get_ydata()) == 6

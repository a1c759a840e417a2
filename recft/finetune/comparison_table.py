"""Markdown tables of compare() rows: strategies x fractions for metrics and compute."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def comparison_markdown(rows: Sequence[dict[str, Any]],
                        metrics: Sequence[str] = ("ndcg@10", "recall@10")) -> str:
    """One table per metric (strategies x fractions, best per column in bold) and one of
    compute (trainable parameters, wall seconds and examples seen per fraction)."""
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    fractions = list(dict.fromkeys(r["fraction"] for r in rows))
    by = {(r["strategy"], r["fraction"]): r for r in rows}
    header = "| strategy | " + " | ".join(f"{f:g}" for f in fractions) + " |"
    rule = "|---|" + "---:|" * len(fractions)
    parts = []
    for metric in metrics:
        best = {f: max((by[s, f]["metrics"].get(metric, float("-inf")) for s in strategies
                        if (s, f) in by), default=None) for f in fractions}
        lines = [f"**{metric}** (test; columns: share of the target's training interactions)",
                 "", header, rule]
        for strategy in strategies:
            cells = []
            for fraction in fractions:
                value = by.get((strategy, fraction), {}).get("metrics", {}).get(metric)
                text = "" if value is None else f"{value:.4f}"
                cells.append(f"**{text}**" if value is not None and value == best[fraction]
                             else text)
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    lines = ["**compute** (training only: wall seconds / examples seen)", "",
             "| strategy | trainable parameters | " + " | ".join(f"{f:g}" for f in fractions)
             + " |", "|---|---:|" + "---:|" * len(fractions)]
    for strategy in strategies:
        present = [by[strategy, f] for f in fractions if (strategy, f) in by]
        trainable = max(r["compute"]["trainable_parameters"] for r in present)
        cells = []
        for fraction in fractions:
            row = by.get((strategy, fraction))
            cells.append("" if row is None else
                         f"{row['compute']['wall_seconds']:.1f} s / "
                         f"{row['compute']['examples_seen']:,}")
        lines.append(f"| {strategy} | {trainable:,} | " + " | ".join(cells) + " |")
    parts.append("\n".join(lines))
    deltas = [r["compute"]["delta"] for r in rows if "delta" in r["compute"]]
    if deltas:
        delta = deltas[0]
        parts.append(f"Adapter delta on disk: {delta['adapter_bytes']:,} bytes vs base "
                     f"checkpoint weights {delta['base_bytes']:,} bytes "
                     f"({100 * delta['ratio']:.1f}%).")
    return "\n\n".join(parts) + "\n"

"""The comparison files: ``comparison.json`` (rows), ``comparison_protocol.json`` and
``comparison.md`` (metric tables with intervals, the verdict against the best baseline,
compute), written by ``write_comparison`` alone, and read back by ``load_comparison``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recft.errors import DataError
from recft.finetune.compare_baselines import BASELINES
from recft.finetune.comparison_stats import best_baselines
from recft.io import atomic_write_text

COMPARISON_NAME = "comparison.json"  # the list of rows, as the issue and README specify
PROTOCOL_NAME = "comparison_protocol.json"  # split, fractions, recipes, base, baselines
MARKDOWN_NAME = "comparison.md"
MARKS = {"win": " ▲", "loss": " ▼", "tie": ""}


def write_comparison(out: str | Path, rows: Sequence[dict[str, Any]],
                     protocol: dict[str, Any], title: str, description: str = "") -> Path:
    """Write the three comparison files into ``out`` (atomically); returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PROTOCOL_NAME, _json(protocol))
    atomic_write_text(out / COMPARISON_NAME, _json(list(rows)))
    intro = f"# {title}\n\n" + (f"{description}\n\n" if description else "")
    atomic_write_text(out / MARKDOWN_NAME, intro + comparison_markdown(rows))
    return out


def load_comparison(directory: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(rows, protocol)`` of a comparison written by ``write_comparison``."""
    directory = Path(directory)
    try:
        rows = json.loads((directory / COMPARISON_NAME).read_text())
        protocol = json.loads((directory / PROTOCOL_NAME).read_text())
    except FileNotFoundError as error:
        raise DataError(f"no comparison in {directory}: {Path(error.filename).name} missing") from None
    return rows, protocol


def comparison_markdown(rows: Sequence[dict[str, Any]],
                        metrics: Sequence[str] = ("ndcg@10", "recall@10")) -> str:
    """Per metric a strategies x fractions table (mean, spread over seeds, 95% interval,
    ▲/▼ where the paired interval against the best baseline excludes zero, best mean in
    bold); the verdict per fraction for the first metric; the compute table."""
    parts = [metric_table(rows, metric) for metric in metrics]
    if any(row["strategy"] in BASELINES for row in rows) and any(
            "vs_best_baseline" in row for row in rows):
        parts.append(verdict_table(rows, metrics[0]))
    parts.append(compute_table(rows))
    deltas = [r["compute"]["delta"] for r in rows if "delta" in r["compute"]]
    if deltas:
        delta = deltas[0]
        parts.append(f"Adapter delta on disk: {delta['adapter_bytes']:,} bytes vs base "
                     f"checkpoint weights {delta['base_bytes']:,} bytes "
                     f"({100 * delta['ratio']:.1f}%).")
    return "\n\n".join(parts) + "\n"


def metric_table(rows: Sequence[dict[str, Any]], metric: str) -> str:
    strategies, fractions, by = _index(rows)
    best = {f: max((by[s, f]["metrics"].get(metric, float("-inf")) for s in strategies
                    if (s, f) in by), default=None) for f in fractions}
    seeds = next((row["seeds"] for row in rows if "seeds" in row), None)
    averaged = f"mean over seeds {', '.join(map(str, seeds))} ± their spread; " if seeds else ""
    lines = [f"**{metric}** (test; {averaged}95% bootstrap interval over test users in "
             "brackets; ▲ / ▼: better / worse than the column's best baseline with a paired "
             "95% interval excluding zero; bold: best mean; columns: share of the target's "
             "training interactions)", "", _header("strategy", fractions),
             "|---|" + "---:|" * len(fractions)]
    for strategy in strategies:
        cells = []
        for fraction in fractions:
            row = by.get((strategy, fraction))
            value = None if row is None else row["metrics"].get(metric)
            if value is None:
                cells.append("")
                continue
            text = f"**{value:.4f}**" if value == best[fraction] else f"{value:.4f}"
            if metric in row.get("spread", {}):
                text += f" ±{row['spread'][metric]:.3f}"
            if metric in row.get("ci95", {}):
                low, high = row["ci95"][metric]
                text += f" [{low:.3f}, {high:.3f}]"
            versus = row.get("vs_best_baseline", {}).get(metric)
            cells.append(text + (MARKS[versus["verdict"]] if versus else ""))
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_table(rows: Sequence[dict[str, Any]], metric: str) -> str:
    """Per fraction: the best baseline, recft's best strategy (by mean), their paired
    difference with its 95% interval, and win / tie / loss."""
    _, fractions, by = _index(rows)
    baselines = best_baselines(rows, metric)
    lines = [f"**recft against the best baseline** ({metric}; paired 95% interval of the "
             "per-user difference; win or loss only where it excludes zero)", "",
             "| fraction | best baseline | best recft strategy | difference [95% interval] "
             "| verdict |", "|---|---|---|---|---|"]
    for fraction in fractions:
        candidates = [r for r in rows if r["fraction"] == fraction
                      and metric in r.get("vs_best_baseline", {})]
        if fraction not in baselines or not candidates:
            continue
        best = max(candidates, key=lambda r: r["metrics"][metric])
        versus = best["vs_best_baseline"][metric]
        baseline = by[baselines[fraction], fraction]["metrics"][metric]
        low, high = versus["ci95"]
        lines.append(f"| {fraction:g} | {baselines[fraction]} {baseline:.4f} | "
                     f"{best['strategy']} {best['metrics'][metric]:.4f} | "
                     f"{versus['difference']:+.4f} [{low:+.3f}, {high:+.3f}] | "
                     f"{versus['verdict']} |")
    return "\n".join(lines)


def compute_table(rows: Sequence[dict[str, Any]]) -> str:
    strategies, fractions, by = _index(rows)
    lines = ["**compute** (training only: wall seconds / examples seen; baselines: every "
             "grid value fitted, examples = interactions fitted)", "",
             _header("strategy | trainable parameters", fractions),
             "|---|---:|" + "---:|" * len(fractions)]
    for strategy in strategies:
        present = [by[strategy, f] for f in fractions if (strategy, f) in by]
        trainable = max(int(r["compute"]["trainable_parameters"]) for r in present)
        cells = []
        for fraction in fractions:
            row = by.get((strategy, fraction))
            cells.append("" if row is None else
                         f"{row['compute']['wall_seconds']:.1f} s / "
                         f"{int(round(row['compute']['examples_seen'])):,}")
        lines.append(f"| {strategy} | {trainable:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _index(rows: Sequence[dict[str, Any]]):
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    fractions = list(dict.fromkeys(r["fraction"] for r in rows))
    return strategies, fractions, {(r["strategy"], r["fraction"]): r for r in rows}


def _header(first: str, fractions: Sequence[float]) -> str:
    return f"| {first} | " + " | ".join(f"{f:g}" for f in fractions) + " |"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

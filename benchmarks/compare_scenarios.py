"""Pretrain on each scenario's source, then compare fine-tuning strategies on its target.

Writes ``<out>/<scenario>/base/`` (the pretrained checkpoint), ``comparison.json`` and
``comparison.md`` (strategies x fractions, with compute). Real-data scenarios (movies,
movies-temporal, music) run only when ``RECFT_DATA_DIR`` holds the releases.

    .venv/bin/python benchmarks/compare_scenarios.py --scenarios synthetic music
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from recft.errors import DataError
from recft.finetune.compare import FRACTIONS, STRATEGIES, compare, default_recipes
from recft.finetune.comparison_table import comparison_markdown
from recft.finetune.scenarios import REAL_DATA, SCENARIOS, Scenario
from recft.io import atomic_write_text
from recft.models.checkpoint import save_pretrained
from recft.models.two_tower import TwoTowerConfig
from recft.train.pretrain import PretrainConfig, pretrain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS),
                        choices=list(SCENARIOS))
    parser.add_argument("--out", default="benchmarks/results/compare", help="output root")
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="demo", help="synthetic size preset")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared 2-core machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data_dir = os.environ.get("RECFT_DATA_DIR")
    for name in args.scenarios:
        if name in REAL_DATA and not data_dir:
            print(f"[{name}] skipped: set RECFT_DATA_DIR to the folder holding the releases")
            continue
        try:
            scenario = (SCENARIOS[name](seed=args.seed, size=args.size) if name == "synthetic"
                        else SCENARIOS[name](data_dir=data_dir, seed=args.seed))
        except DataError as error:
            print(f"[{name}] skipped: {error}")
            continue
        run(scenario, Path(args.out) / name, args)
    return 0


def run(scenario: Scenario, out: Path, args: argparse.Namespace) -> None:
    print(f"[{scenario.name}] {scenario.description}")
    print(f"  source {scenario.source}\n  target {scenario.target}")
    started = time.perf_counter()
    config = TwoTowerConfig(embedding_dim=args.embedding_dim,
                            tower_layers=(2 * args.embedding_dim, args.embedding_dim))
    # id dropout teaches the user tower to work from history alone: target users are new
    settings = PretrainConfig(epochs=args.pretrain_epochs, batch_size=512, user_id_dropout=0.5,
                              seed=args.seed)
    model, history = pretrain(scenario.source, config, pretrain_config=settings,
                              progress=False)
    base = save_pretrained(model, out / "base", training={
        "stage": "pretrain", "dataset": scenario.source.name, "seed": args.seed,
        "pretrain": settings.to_dict(), "history": history.to_dict()})
    print(f"  pretrained in {time.perf_counter() - started:.0f} s, loss "
          f"{history.loss[0]:.3f} -> {history.loss[-1]:.3f}")
    recipes = default_recipes(args.seed)
    for recipe in recipes.values():
        for key, value in scenario.recipe_overrides.items():
            setattr(recipe, key, value)
    rows = compare(base, scenario.target, scenario.split_spec, seed=args.seed,
                   fractions=args.fractions, strategies=args.strategies, out=out,
                   recipes=recipes)
    table = comparison_markdown(rows)
    atomic_write_text(out / "comparison.md", f"# {scenario.name}\n\n{scenario.description}\n\n"
                      f"Source: {scenario.source}\n\nTarget: {scenario.target}\n\n{table}")
    print(table)
    print(f"  total {time.perf_counter() - started:.0f} s; wrote {out}/comparison.json, .md")


if __name__ == "__main__":
    sys.exit(main())

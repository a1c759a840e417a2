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
from recft.finetune.compare import FRACTIONS, STRATEGIES
from recft.finetune.comparison_table import comparison_markdown
from recft.finetune.scenario_run import run_scenario
from recft.finetune.scenarios import REAL_DATA, SCENARIOS, Scenario


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
    started = time.perf_counter()
    rows = run_scenario(scenario, out, seed=args.seed, fractions=args.fractions,
                        strategies=args.strategies, pretrain_epochs=args.pretrain_epochs,
                        embedding_dim=args.embedding_dim)
    print(comparison_markdown(rows))
    print(f"  total {time.perf_counter() - started:.0f} s; wrote {out}/comparison.json, .md")


if __name__ == "__main__":
    sys.exit(main())

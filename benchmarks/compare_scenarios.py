"""Pretrain on each scenario's source, then compare baselines and fine-tuning strategies.

Writes ``<out>/<scenario>/`` with the pretrained checkpoint(s) (``base/``, or
``seed-<s>/base/`` with several seeds), ``comparison.json``, ``comparison_protocol.json``
and ``comparison.md`` (strategies x fractions with 95% intervals, the verdict against the
best baseline, compute), and prints the tables. Real-data scenarios (movies,
movies-temporal, music) run only when ``RECFT_DATA_DIR`` holds the releases; by default
they average three cohort draws (``DEFAULT_SEEDS``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compare_scenarios.py --scenarios synthetic music
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
from recft.finetune.comparison_table import MARKDOWN_NAME
from recft.finetune.scenario_run import run_scenario
from recft.finetune.scenarios import DEFAULT_SEEDS, REAL_DATA, SCENARIOS, scenario_draws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS),
                        choices=list(SCENARIOS))
    parser.add_argument("--out", default="benchmarks/results/compare", help="output root")
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    parser.add_argument("--seeds", nargs="+", type=int,
                        help="seeds (cohort draws) for every scenario; default DEFAULT_SEEDS")
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
        draws = scenario_draws(name, data_dir=data_dir, size=args.size)
        try:
            draws(0)  # a missing release is reported here, before any training
        except DataError as error:
            print(f"[{name}] skipped: {error}")
            continue
        out = Path(args.out) / name
        started = time.perf_counter()
        run_scenario(draws, out, seeds=tuple(args.seeds or DEFAULT_SEEDS[name]),
                     fractions=args.fractions, strategies=args.strategies,
                     pretrain_epochs=args.pretrain_epochs, embedding_dim=args.embedding_dim)
        print((out / MARKDOWN_NAME).read_text())
        print(f"  total {time.perf_counter() - started:.0f} s; wrote {out}/comparison.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

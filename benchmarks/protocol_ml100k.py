"""ml-100k under RecBole's protocol: baseline rows next to RecBole's published BPR.

Protocol (RecBole's defaults for general recommenders): every rating is a positive, a
per-user random 80/10/10 split, full ranking over the whole catalog, seen items excluded
(train for validation, train + valid for test); models learn from train only and score
test users from their train history, like RecBole's trainers.

Each row is one function ``run_<model>(split) -> metrics`` (hyperparameters tuned on
valid inside the function); add a model by adding a function to ``ROWS``.

Usage::

    RECFT_DATA_DIR=/path/to/data python benchmarks/protocol_ml100k.py [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recft.data import Interactions, load_movielens, split
from recft.evaluate import evaluate
from recft.io import atomic_write_text
from recft.models.baselines import EASE, ItemKNN, MostPopular

RESULTS = Path(__file__).parent / "results" / "protocol_ml100k.json"
KS = (10, 20)
COLUMNS = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10")
# RecBole's published ml-100k results for BPR (same protocol; RecBole's docs, v1.x)
RECBOLE_BPR = {"ndcg@10": 0.2768, "recall@10": 0.2368, "mrr@10": 0.4519, "hit@10": 0.7614}
EASE_L2_GRID = (100.0, 250.0, 500.0, 1000.0)
ITEMKNN_K_GRID = (50, 100, 200)
TUNING_METRIC = "ndcg@10"


@dataclass(frozen=True)
class ProtocolSplit:
    """train / valid / test of one seed, plus what is excluded when ranking for test."""

    train: Interactions
    valid: Interactions
    test: Interactions
    seen_before_test: Interactions  # train + valid
    protocol: dict[str, Any] = field(default_factory=dict)


def load_split(data_dir: Path, seed: int) -> ProtocolSplit:
    """ml-100k, all ratings positive, per-user random 80/10/10 split."""
    interactions = load_movielens("ml-100k", data_dir=data_dir)
    parts = split(interactions, "random:0.8,0.1,0.1", seed=seed)
    train, valid, test = parts.train, parts.valid, parts.test
    protocol = {
        "dataset": "ml-100k",
        "positives": "every rating",
        "split": "random:0.8,0.1,0.1 per user",
        "seed": seed,
        "ranking": "full",
        "exclude_seen": "train for valid, train+valid for test",
        "model_history": "train",
        "sizes": {"train": len(train), "valid": len(valid), "test": len(test)},
    }
    return ProtocolSplit(train, valid, test, train.concat(valid), protocol)


def score_valid(model: Any, split: ProtocolSplit) -> dict[str, Any]:
    return evaluate(model, split.valid, exclude=split.train, ks=KS)


def score_test(model: Any, split: ProtocolSplit) -> dict[str, Any]:
    return evaluate(model, split.test, exclude=split.seen_before_test, history=split.train, ks=KS)


# ---------------------------------------------------------------------- rows
def run_most_popular(split: ProtocolSplit) -> dict[str, Any]:
    return {**score_test(MostPopular().fit(split.train), split), "params": {}}


def _tuned(factory: Callable[[Any], Any], grid: tuple[Any, ...], label: str,
           split: ProtocolSplit) -> dict[str, Any]:
    """Fit one model per grid value, keep the best on valid, score it on test (no refit)."""
    fitted = {value: factory(value).fit(split.train) for value in grid}
    tuning = {value: score_valid(model, split)[TUNING_METRIC] for value, model in fitted.items()}
    best = max(tuning, key=tuning.get)
    return {**score_test(fitted[best], split), "params": {label: best},
            "valid": {f"{label}={value:g}": score for value, score in tuning.items()}}


def run_ease(split: ProtocolSplit) -> dict[str, Any]:
    return _tuned(lambda l2: EASE(l2=l2), EASE_L2_GRID, "l2", split)


def run_itemknn(split: ProtocolSplit) -> dict[str, Any]:
    return _tuned(lambda k: ItemKNN(k=k), ITEMKNN_K_GRID, "k", split)


def run_two_tower(split: ProtocolSplit) -> dict[str, Any]:
    """recft's two-tower with default configs: early stopping on valid ndcg@10."""
    from recft.train import PretrainConfig, pretrain

    settings = PretrainConfig(seed=split.protocol["seed"])
    model, history = pretrain(split.train, valid=split.valid, pretrain_config=settings, progress=False)
    return {**score_test(model, split), "params": {"best_epoch": history.best_epoch,
                                                   "epochs_run": len(history.loss)}}


ROWS: dict[str, Callable[[ProtocolSplit], dict[str, Any]]] = {
    "MostPopular": run_most_popular,
    "ItemKNN": run_itemknn,
    "EASE": run_ease,
    "recft TwoTower": run_two_tower,
}


# ---------------------------------------------------------------------- report
def format_table(rows: dict[str, dict[str, Any]]) -> str:
    header = f"{'model':<22}" + "".join(f"{c:>14}" for c in COLUMNS) + f"{'seconds':>10}"
    lines = [header, "-" * len(header)]
    for name, metrics in rows.items():
        cells = "".join(f"{metrics[c]:>14.4f}" if c in metrics else f"{'-':>14}" for c in COLUMNS)
        seconds = f"{metrics['seconds']:>10.1f}" if "seconds" in metrics else f"{'-':>10}"
        lines.append(f"{name:<22}{cells}{seconds}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("RECFT_DATA_DIR"))
    parser.add_argument("--seed", type=int, default=0, help="RecBole's own default is 2020")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (1 is steadiest on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.data_dir is None or not (Path(args.data_dir) / "ml-100k" / "u.data").is_file():
        print("ml-100k not found: set RECFT_DATA_DIR (or --data-dir) to a folder holding "
              "ml-100k/u.data", file=sys.stderr)
        return 2
    split = load_split(Path(args.data_dir), args.seed)
    results: dict[str, dict[str, Any]] = {}
    for name in args.rows:
        start = time.perf_counter()
        results[name] = ROWS[name](split)
        results[name]["seconds"] = time.perf_counter() - start
    shown = {**results, "RecBole BPR (published)": RECBOLE_BPR}
    print(json.dumps(split.protocol))
    print(format_table(shown))
    report = {"protocol": split.protocol, "rows": results, "reference": {"RecBole BPR": RECBOLE_BPR}}
    atomic_write_text(args.output, json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

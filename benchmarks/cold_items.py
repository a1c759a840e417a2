"""Cold items: NDCG@10 of ranking items never seen in training, text models vs baselines.

Protocol, per dataset: a ``cold-item:0.1,0.1`` split (seed 0): 10% of the items occur only
in test, another 10% only in valid (early stopping); every interaction is a positive.
For each test user, the cold test items are ranked (the other items are not candidates),
the user represented by their training history; NDCG@10 and recall@10 over users with a
cold test item (``recft.evaluate.cold_items``).

Rows: the two-tower with ids only (its cold rows are untrained: it cannot tell cold items
apart), with ids and the dataset's categorical item features (ml-latest-small: genres, year,
tags; lastfm-2k: tags), and reading item text (all-MiniLM-L6-v2 vectors of
``recft.text.item_texts``: title, year, genres, tags / artist name, tags) alone, with the
features, and with ids and features; popularity counted on training (every cold item 0:
ties), popularity counted on the test part itself (an oracle no real system has), random.

    RECFT_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/cold_items.py --datasets ml-latest-small lastfm-2k
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recft.data import load, split
from recft.evaluate.cold_items import evaluate_cold_items
from recft.io import atomic_write_text
from recft.models.baselines import MostPopular
from recft.models.text_path import ItemTextVectors
from recft.models.two_tower import TwoTowerConfig
from recft.text import item_texts, text_encoder
from recft.train import PretrainConfig, pretrain

RESULTS = Path(__file__).parent / "results" / "cold_items.json"
SPLIT = "cold-item:0.1,0.1"
KS = (10,)
METRICS = ("ndcg", "recall")
# row name -> (item_text mode, with the dataset's categorical item features)
ROWS = {"ids": ("none", False), "ids + features": ("none", True), "text": ("text", False),
        "text + features": ("text", True), "ids + text + features": ("id+text", True)}


class RandomScores:
    """Seeded uniform scores: the expected ranking of a model that knows nothing."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def score_users(self, users: np.ndarray, history: Any) -> torch.Tensor:
        return torch.rand(len(users), history.catalog_size, generator=self.generator)


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    data = load(name)
    parts = split(data, SPLIT, seed=args.seed)
    texts = item_texts(data)
    started = time.perf_counter()
    encoder = text_encoder(args.encoder)
    vectors = ItemTextVectors.encode(data, encoder, texts=texts, progress=True)
    encode_seconds = time.perf_counter() - started
    rows: dict[str, Any] = {}

    def record(label: str, scorer: Any, seconds: float = 0.0) -> None:
        metrics = evaluate_cold_items(scorer, parts, ks=KS, metrics=METRICS)
        rows[label] = {"ndcg@10": metrics["ndcg@10"], "recall@10": metrics["recall@10"],
                       "train_seconds": round(seconds, 1)}
        print(f"[{name}] {label:<34} ndcg@10 {metrics['ndcg@10']:.4f}  "
              f"recall@10 {metrics['recall@10']:.4f}  ({seconds:.0f} s)", flush=True)
        rows["_protocol"] = {"users": metrics["num_users"],
                             "cold_items": metrics["num_cold_items"]}

    record("random", RandomScores(args.seed))
    record("popularity (training counts)", MostPopular().fit(parts.train))
    record("popularity (oracle: test counts)", MostPopular().fit(parts.test))
    for row in args.rows:
        mode, features = ROWS[row]
        train = parts.train if features else parts.train.replace(item_features=None)
        config = TwoTowerConfig.for_data(train, embedding_dim=args.dim,
                                         tower_layers=(2 * args.dim, args.dim), item_text=mode)
        settings = PretrainConfig(epochs=args.epochs, seed=args.seed, patience=args.patience)
        started = time.perf_counter()
        model, history = pretrain(train, config, valid=parts.valid, pretrain_config=settings,
                                  progress=False, item_text=None if mode == "none" else vectors)
        label = f"two-tower: {row}"
        record(label, model, time.perf_counter() - started)
        rows[label].update(epochs=len(history.loss), best_epoch=history.best_epoch)
    protocol = rows.pop("_protocol")
    return {"dataset": name, "split": SPLIT, "seed": args.seed, "encoder": encoder.name,
            "encoder_version": encoder.version, "encode_seconds": round(encode_seconds, 1),
            "text_coverage": texts.coverage(), "text_fields": list(texts.fields),
            "embedding_dim": args.dim, "max_epochs": args.epochs, **protocol, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-latest-small", "lastfm-2k"])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [run_dataset(name, args) for name in args.datasets]
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    for result in results:
        popularity = result["rows"]["popularity (oracle: test counts)"]["ndcg@10"]
        print(f"\n{result['dataset']}: {result['users']} users, {result['cold_items']} cold "
              f"items ({result['encoder']}, {result['encode_seconds']} s to encode)")
        print("| model | NDCG@10 | Recall@10 | x oracle popularity |")
        print("|---|---:|---:|---:|")
        for label, row in result["rows"].items():
            ratio = row["ndcg@10"] / popularity if popularity else float("nan")
            print(f"| {label} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | {ratio:.2f} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

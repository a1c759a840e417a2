"""Batch recommendation throughput and peak memory at 100k users x 50k items, vs naive loops.

A randomly initialised TwoTower (dim 64, towers 128 -> 64) with random histories (mean
length 20, Zipf-like item popularity) serves top-100 lists, seen items excluded.
``recommend_batch`` runs over every user (wall, CPU, users/s, peak RSS above the start).
Then the same subsample of users goes through two naive per-user loops, back to back in
the same run: the model API one user at a time (``model.score_users`` + a full argsort),
and the facade one user at a time (``Recommender.recommend([user])``); their lists are
compared with the batch output (identical share and mean overlap: a (1, D) and a (671, D)
matmul may differ in the last bit, which reorders float32 near-ties) and their times
extrapolated to all users.

Usage::

    python benchmarks/batch_recommend.py [--users 100000 --items 50000 --naive-users 100]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recft.data import Interactions, Vocabulary
from recft.io import atomic_write_text
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.serving import Recommender, recommend_batch
from peak_memory import PeakMemory

RESULTS = Path(__file__).parent / "results" / "batch_recommend.json"
K = 100


def timed(function: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, wall seconds, CPU seconds, peak extra RSS MiB)."""
    cpu, wall = time.process_time(), time.perf_counter()
    with PeakMemory() as memory:
        result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu, memory.extra_mib


def random_histories(num_users: int, num_items: int, mean_length: int,
                     seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    lengths = rng.geometric(1 / mean_length, size=num_users)
    users = np.repeat(np.arange(num_users), lengths)
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8  # Zipf-like head and long tail
    items = rng.choice(num_items, size=len(users), p=popularity / popularity.sum())
    stamps = rng.integers(1_500_000_000, 1_700_000_000, size=len(users))
    return Interactions(users, items.astype(np.int64),
                        Vocabulary(np.arange(num_users), name="user"),
                        Vocabulary(np.arange(num_items), name="item"), timestamps=stamps)


def naive_model_loop(model: TwoTower, history: Interactions, users: np.ndarray) -> list[list[int]]:
    """What a first attempt looks like: score one user, mask seen, argsort everything."""
    seen = history.user_item_sets()
    lists = []
    with torch.no_grad():
        for user in users:
            scores = model.score_users(np.array([user]), history)[0].numpy().copy()
            scores[seen[user].indices] = -np.inf
            order = np.lexsort((np.arange(len(scores)), -scores))[:K]
            lists.append(order.tolist())
    return lists


def naive_facade_loop(rec: Recommender, users: np.ndarray) -> list[list[int]]:
    return [rec.recommend([user], k=K)["item"].tolist() for user in users]


def agreement(lists: list[list[int]], expected: list[list[int]]) -> dict[str, float]:
    """Share of identical lists and mean overlap of the top-K sets with the batch output."""
    same = [a == b for a, b in zip(lists, expected)]
    overlap = [len(set(a) & set(b)) / K for a, b in zip(lists, expected)]
    return {"identical_lists_share": float(np.mean(same)),
            "mean_overlap_at_k": float(np.mean(overlap))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--mean-history", type=int, default=20)
    parser.add_argument("--naive-users", type=int, default=100)
    parser.add_argument("--naive-model-users", type=int, default=20,
                        help="users of the (slow) model loop: the first of the sample")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    history = random_histories(args.users, args.items, args.mean_history, args.seed)
    config = TwoTowerConfig(embedding_dim=args.dim, tower_layers=(2 * args.dim, args.dim))
    model = TwoTower(config, history.user_vocab, history.item_vocab).eval()
    rec = Recommender(model, history=history)
    rec.embed_items()  # item tower once, outside the timings (both paths need it)
    users = history.user_vocab.ids
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "recs.parquet"
        _, wall, cpu, extra = timed(lambda: recommend_batch(
            rec, users, out, k=K, chunk_size=args.chunk_size, progress=False))
        batch = pd.read_parquet(out)
        output_mib = out.stat().st_size / 2**20
    assert batch["user"].nunique() == len(users) and len(batch) == len(users) * K

    rng = np.random.default_rng(args.seed + 1)
    sample = np.sort(rng.choice(len(users), size=args.naive_users, replace=False))
    grouped = batch[batch["user"].isin(sample)].groupby("user")["item"].agg(list)
    expected = [[int(i) for i in grouped[user]] for user in sample]
    model_lists, model_wall, model_cpu, model_extra = timed(
        lambda: naive_model_loop(model, history, sample[:args.naive_model_users]))
    facade_lists, facade_wall, facade_cpu, facade_extra = timed(
        lambda: naive_facade_loop(rec, sample))

    per_user = {
        "recommend_batch": wall / len(users),
        "naive_model_loop": model_wall / len(model_lists),
        "naive_facade_loop": facade_wall / len(sample),
    }
    result = {
        "users": len(users), "items": args.items, "dim": args.dim, "k": K,
        "interactions": len(history), "mean_history": round(len(history) / len(users), 2),
        "chunk_size": args.chunk_size or "default (128 MB score block)",
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "dense_score_matrix_mib": len(users) * args.items * 4 / 2**20,
        "recommend_batch": {
            "wall_seconds": wall, "cpu_seconds": cpu, "users_per_second": len(users) / wall,
            "peak_extra_rss_mib": extra, "output_mib": output_mib,
        },
        "naive_model_loop": {
            "what": "model.score_users one user at a time (it re-encodes the catalog each "
                    "call) + full argsort",
            "wall_seconds": model_wall, "cpu_seconds": model_cpu,
            "users": len(model_lists), "users_per_second": len(model_lists) / model_wall,
            "peak_extra_rss_mib": model_extra,
            "seconds_extrapolated_to_all_users": per_user["naive_model_loop"] * len(users),
            "agreement_with_batch": agreement(model_lists, expected[:len(model_lists)]),
        },
        "naive_facade_loop": {
            "what": "Recommender.recommend([user]) one user at a time",
            "wall_seconds": facade_wall, "cpu_seconds": facade_cpu,
            "users": len(sample), "users_per_second": len(sample) / facade_wall,
            "peak_extra_rss_mib": facade_extra,
            "seconds_extrapolated_to_all_users": per_user["naive_facade_loop"] * len(users),
            "agreement_with_batch": agreement(facade_lists, expected),
        },
        "speedup_vs_naive_model_loop": per_user["naive_model_loop"] / per_user["recommend_batch"],
        "speedup_vs_naive_facade_loop": per_user["naive_facade_loop"] / per_user["recommend_batch"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

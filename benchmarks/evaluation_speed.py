"""Full-ranking evaluation speed and peak memory at 100k users x 100k items, vs a naive loop.

A dot-product scorer with random embeddings ranks the whole catalog for every user, seen
items excluded. ``recft.evaluate`` is timed on all users (wall, CPU, peak RSS). Then
the same subsample of users goes through recft and through a naive per-user loop (score
one row, argsort the full catalog, compute metrics in Python) back to back: the ratio of
the two, the naive time extrapolated to all users, and the metrics agreeing there.

Usage::

    python benchmarks/evaluation_speed.py [--users 100000 --items 100000 --naive-users 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from recft.data import Interactions, Vocabulary
from recft.evaluate import evaluate
from recft.io import atomic_write_text
from peak_memory import PeakMemory

RESULTS = Path(__file__).parent / "results" / "evaluation_speed.json"
KS = (10, 20)


class DotProductScorer:
    """(B, D) user embeddings times (I, D) item embeddings."""

    def __init__(self, num_users: int, num_items: int, dim: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.users = torch.randn(num_users, dim, generator=generator)
        self.items = torch.randn(num_items, dim, generator=generator)
        self.seconds = 0.0  # time spent scoring, to separate the model from the ranking

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        start = time.perf_counter()
        scores = self.users[torch.from_numpy(users)] @ self.items.T
        self.seconds += time.perf_counter() - start
        return scores


def make_data(num_users: int, num_items: int, seen: int, held_out: int,
              seed: int) -> tuple[Interactions, Interactions]:
    """Each user has ``seen`` train items and ``held_out`` distinct test items."""
    rng = np.random.default_rng(seed)
    per_user = seen + held_out
    # distinct items per user without a per-user loop: a random offset and stride mod I
    start = rng.integers(0, num_items, num_users)[:, None]
    stride = rng.integers(1, num_items // per_user, num_users)[:, None]
    items = (start + stride * np.arange(per_user)[None, :]) % num_items
    users = np.repeat(np.arange(num_users), per_user).reshape(num_users, per_user)
    user_vocab = Vocabulary(np.arange(num_users), name="user")
    item_vocab = Vocabulary(np.arange(num_items), name="item")

    def part(columns: slice) -> Interactions:
        return Interactions(users[:, columns].ravel().astype(np.int64),
                            items[:, columns].ravel().astype(np.int64), user_vocab, item_vocab)

    return part(slice(0, seen)), part(slice(seen, per_user))


def naive_evaluate(scorer: DotProductScorer, users: np.ndarray, train: Interactions,
                   test: Interactions, k: int) -> dict[str, float]:
    """One user at a time: full-catalog scores, argsort, Python metric formulas."""
    seen = train.user_item_sets()
    relevant = test.user_item_sets()
    items = scorer.items.numpy()
    user_vectors = scorer.users.numpy()
    totals = {"ndcg": 0.0, "recall": 0.0}
    for user in users:
        scores = items @ user_vectors[user]
        scores[seen.indices[seen.indptr[user]:seen.indptr[user + 1]]] = -np.inf
        top = np.argsort(-scores)[:k]
        wanted = set(relevant.indices[relevant.indptr[user]:relevant.indptr[user + 1]].tolist())
        hits = [int(item) in wanted for item in top]
        dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        idcg = sum(1 / math.log2(rank + 2) for rank in range(min(len(wanted), k)))
        totals["ndcg"] += dcg / idcg
        totals["recall"] += sum(hits) / len(wanted)
    return {f"{name}@{k}": value / len(users) for name, value in totals.items()}


def timed(run: Callable[[], Any]) -> dict[str, Any]:
    """``run()``'s result with its wall and CPU seconds (all threads of this process)."""
    process = psutil.Process()
    cpu_before = sum(process.cpu_times()[:2])
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return {"result": result, "seconds": seconds,
            "cpu_seconds": sum(process.cpu_times()[:2]) - cpu_before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seen", type=int, default=20, help="train items per user (excluded)")
    parser.add_argument("--held-out", type=int, default=5, help="test items per user")
    parser.add_argument("--naive-users", type=int, default=1000,
                        help="users timed through both recft and the naive loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    train, test = make_data(args.users, args.items, args.seen, args.held_out, args.seed)
    scorer = DotProductScorer(args.users, args.items, args.dim, args.seed)
    load_before = os.getloadavg()[0]
    with PeakMemory() as memory:
        full = timed(lambda: evaluate(scorer, test, exclude=train, ks=KS))
    scoring_seconds = scorer.seconds

    # the same users through both, back to back, so the ratio shares the machine's load
    sample = np.sort(np.random.default_rng(args.seed).choice(args.users, args.naive_users,
                                                             replace=False))
    sample_test = test.subset(np.isin(test.user_ids, sample))
    recft_sample = timed(lambda: evaluate(scorer, sample_test, exclude=train, ks=(10,)))
    naive_sample = timed(lambda: naive_evaluate(scorer, sample, train, test, k=10))
    agreement = max(abs(recft_sample["result"][key] - naive_sample["result"][key])
                    for key in naive_sample["result"])
    scale = args.users / args.naive_users

    report: dict[str, Any] = {
        "users": args.users,
        "items": args.items,
        "dim": args.dim,
        "seen_per_user": args.seen,
        "held_out_per_user": args.held_out,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": psutil.cpu_count(),
        # wall time depends on what else runs: CPU time and the load are recorded too
        "load_average_before": load_before,
        "recft_seconds": full["seconds"],
        "recft_cpu_seconds": full["cpu_seconds"],
        "recft_users_per_second": args.users / full["seconds"],
        "recft_scoring_seconds": scoring_seconds,
        "recft_ranking_and_metrics_seconds": full["seconds"] - scoring_seconds,
        "recft_peak_extra_rss_mib": memory.extra_mib,
        "dense_score_matrix_mib": args.users * args.items * 4 / 2**20,
        "sample_users": args.naive_users,
        "sample_recft_seconds": recft_sample["seconds"],
        "sample_recft_cpu_seconds": recft_sample["cpu_seconds"],
        "sample_naive_seconds": naive_sample["seconds"],
        "sample_naive_cpu_seconds": naive_sample["cpu_seconds"],
        "speedup_wall_on_sample": naive_sample["seconds"] / recft_sample["seconds"],
        # process_time ticks coarsely: a tiny sample can measure 0 s of CPU
        "speedup_cpu_on_sample": naive_sample["cpu_seconds"] / max(recft_sample["cpu_seconds"], 1e-9),
        "naive_seconds_extrapolated": naive_sample["seconds"] * scale,
        "max_metric_difference_on_sample": agreement,
        "metrics": {key: value for key, value in full["result"].items()
                    if isinstance(value, float)},
    }
    print(f"recft.evaluate: {args.users:,} users x {args.items:,} items in "
          f"{full['seconds']:.1f} s wall / {full['cpu_seconds']:.1f} s CPU "
          f"({report['recft_users_per_second']:,.0f} users/s; scoring {scoring_seconds:.1f} s, "
          f"ranking + metrics {full['seconds'] - scoring_seconds:.1f} s), peak extra RSS "
          f"{memory.extra_mib:,.0f} MiB (a dense score matrix would be "
          f"{report['dense_score_matrix_mib']:,.0f} MiB); load average {load_before:.1f}")
    print(f"same {args.naive_users} users: recft {recft_sample['seconds']:.2f} s, naive loop "
          f"{naive_sample['seconds']:.2f} s -> x{report['speedup_wall_on_sample']:.0f} wall, "
          f"x{report['speedup_cpu_on_sample']:.0f} CPU; naive extrapolated to all users "
          f"{report['naive_seconds_extrapolated']:,.0f} s; max |metric diff| {agreement:.1e}")
    atomic_write_text(args.output, json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Full-ranking evaluation at 100k users x 100k items: recft vs a bare matmul + top-k.

A dot-product model with random embeddings ranks the whole catalog for every user, seen
items excluded. In the same run, interleaved (bare, recft, recft, bare, ... so a drift in
the machine's load hits both alike), ``recft.evaluate`` and a bare ``torch.matmul`` +
``torch.topk`` over the same embeddings, in the same user chunks, are timed (wall and CPU);
the ratio of their medians is the figure to keep within 1.5. recft's peak extra memory
is recorded (a dense score matrix would be 38 GiB). Then the same subsample of users goes
through recft and through a naive per-user loop (score one row, argsort the full catalog,
compute metrics in Python) back to back: their ratio, and the metrics agreeing there.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/evaluation_speed.py --threads 1 \\
        [--users 100000 --items 100000 --rounds 2 --naive-users 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from recft.data import Interactions, Vocabulary
from recft.evaluate import evaluate
from recft.evaluate.evaluate import BLOCK_BYTES
from recft.io import atomic_write_text
from peak_memory import PeakMemory

RESULTS = Path(__file__).parent / "results" / "evaluation_speed.json"
KS = (10, 20)


class DotProductModel:
    """(B, D) user embeddings times (I, D) item embeddings, shaped like a TwoTower:
    ``encode_users`` / ``encode_items`` / ``score``, and ``score_users`` built from them."""

    def __init__(self, num_users: int, num_items: int, dim: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.users = torch.randn(num_users, dim, generator=generator)
        self.items = torch.randn(num_items, dim, generator=generator)
        self.seconds = 0.0  # time spent in score(), to separate the matmul from the ranking

    def encode_users(self, users: np.ndarray, history: Interactions | None = None) -> torch.Tensor:
        return self.users[torch.from_numpy(np.asarray(users, dtype=np.int64))]

    def encode_items(self) -> torch.Tensor:
        return self.items

    def score(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        scores = torch.matmul(user_emb, item_emb.T)
        self.seconds += time.perf_counter() - start
        return scores

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        return self.score(self.encode_users(users, history), self.encode_items())


def bare_matmul_topk(model: DotProductModel, rows_per_chunk: int, k: int) -> int:
    """The floor: ``topk(matmul(users, items.T))`` per chunk of users, nothing else."""
    listed = 0
    with torch.inference_mode():
        for start in range(0, model.users.shape[0], rows_per_chunk):
            scores = torch.matmul(model.users[start:start + rows_per_chunk], model.items.T)
            listed += torch.topk(scores, k, dim=1).indices.shape[0]
    return listed


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


def naive_evaluate(scorer: DotProductModel, users: np.ndarray, train: Interactions,
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
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds of bare and recft (median reported)")
    parser.add_argument("--naive-users", type=int, default=1000,
                        help="users timed through both recft and the naive loop")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is steadiest on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train, test = make_data(args.users, args.items, args.seen, args.held_out, args.seed)
    model = DotProductModel(args.users, args.items, args.dim, args.seed)
    rows_per_chunk = max(1, BLOCK_BYTES // (4 * args.items))  # evaluate()'s default chunk
    load_before = os.getloadavg()[0]
    bare_runs: list[dict[str, Any]] = []
    recft_runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        order = ("bare", "recft") if round_index % 2 == 0 else ("recft", "bare")
        for name in order:
            if name == "bare":
                bare_runs.append(timed(lambda: bare_matmul_topk(model, rows_per_chunk, max(KS))))
                continue
            model.seconds = 0.0
            with PeakMemory() as memory:
                run = timed(lambda: evaluate(model, test, exclude=train, ks=KS))
            recft_runs.append({**run, "scoring_seconds": model.seconds,
                               "peak_extra_rss_mib": memory.extra_mib})
    bare_seconds = statistics.median(r["seconds"] for r in bare_runs)
    bare_cpu = statistics.median(r["cpu_seconds"] for r in bare_runs)
    recft_seconds = statistics.median(r["seconds"] for r in recft_runs)
    recft_cpu = statistics.median(r["cpu_seconds"] for r in recft_runs)
    scoring_seconds = statistics.median(r["scoring_seconds"] for r in recft_runs)
    peak_mib = max(r["peak_extra_rss_mib"] for r in recft_runs)
    full = recft_runs[0]

    # the same users through both, back to back, so the ratio shares the machine's load
    sample = np.sort(np.random.default_rng(args.seed).choice(args.users, args.naive_users,
                                                             replace=False))
    sample_test = test.subset(np.isin(test.user_ids, sample))
    recft_sample = timed(lambda: evaluate(model, sample_test, exclude=train, ks=(10,)))
    naive_sample = timed(lambda: naive_evaluate(model, sample, train, test, k=10))
    agreement = max(abs(recft_sample["result"][key] - naive_sample["result"][key])
                    for key in naive_sample["result"])

    report: dict[str, Any] = {
        "users": args.users,
        "items": args.items,
        "dim": args.dim,
        "seen_per_user": args.seen,
        "held_out_per_user": args.held_out,
        "rows_per_chunk": rows_per_chunk,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": psutil.cpu_count(),
        # wall time depends on what else runs: CPU time and the load are recorded too
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "bare_matmul_topk_seconds": bare_seconds,
        "bare_matmul_topk_cpu_seconds": bare_cpu,
        "recft_seconds": recft_seconds,
        "recft_cpu_seconds": recft_cpu,
        "recft_over_bare_wall": recft_seconds / bare_seconds,
        "recft_over_bare_cpu": recft_cpu / bare_cpu,
        "bare_runs_seconds": [r["seconds"] for r in bare_runs],
        "recft_runs_seconds": [r["seconds"] for r in recft_runs],
        "recft_users_per_second": args.users / recft_seconds,
        "recft_scoring_seconds": scoring_seconds,
        "recft_ranking_and_metrics_seconds": recft_seconds - scoring_seconds,
        "recft_peak_extra_rss_mib": peak_mib,
        "dense_score_matrix_mib": args.users * args.items * 4 / 2**20,
        "sample_users": args.naive_users,
        "sample_recft_seconds": recft_sample["seconds"],
        "sample_naive_seconds": naive_sample["seconds"],
        "speedup_wall_on_sample": naive_sample["seconds"] / recft_sample["seconds"],
        "max_metric_difference_on_sample": agreement,
        "metrics": {key: value for key, value in full["result"].items()
                    if isinstance(value, float)},
    }
    print(f"{args.users:,} users x {args.items:,} items, dim {args.dim}, "
          f"{torch.get_num_threads()} thread(s), median of {args.rounds} interleaved round(s), "
          f"load average {load_before:.1f}")
    print(f"bare matmul + topk: {bare_seconds:.1f} s wall / {bare_cpu:.1f} s CPU")
    print(f"recft.evaluate:     {recft_seconds:.1f} s wall / {recft_cpu:.1f} s CPU "
          f"(scoring {scoring_seconds:.1f} s, ranking + metrics "
          f"{recft_seconds - scoring_seconds:.1f} s), peak extra RSS {peak_mib:,.0f} MiB "
          f"(a dense score matrix would be {report['dense_score_matrix_mib']:,.0f} MiB)")
    print(f"recft / bare: x{report['recft_over_bare_wall']:.2f} wall, "
          f"x{report['recft_over_bare_cpu']:.2f} CPU (target <= 1.5)")
    print(f"same {args.naive_users} users: recft {recft_sample['seconds']:.2f} s, naive loop "
          f"{naive_sample['seconds']:.2f} s -> x{report['speedup_wall_on_sample']:.0f} wall; "
          f"max |metric diff| {agreement:.1e}")
    atomic_write_text(args.output, json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

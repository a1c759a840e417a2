"""Sharded pretraining throughput: 1 process x 2 threads vs 2 processes x 1 thread (DMP).

The world of benchmarks/pretrain_speed.py: 1M users x 100k items, dim 64, towers 128 ->
64, ~20-item histories, 1-3 genres per item, in-batch softmax, fused row-wise Adagrad on
the tables and Adam on the towers. Both variants train on the same global batches of 1024
examples (the sharded run: 512 per rank, tables sharded by the planner or ``--sharding``),
for one epoch of ``--steps`` batches:

  (a) ``recft.train.pretrain`` in one process with 2 torch threads;
  (b) the same call as 2 ranks of a gloo job on 127.0.0.1 (``recft ... --nproc 2``'s
      setup: torchrun's environment, ``Distributed.from_environment``), 1 thread each.

Reported: examples/s (all ranks' examples over rank 0's epoch seconds) and, per process,
the resident memory at the end of the epoch before the tables are gathered back (what a
rank holds while it trains: its shards, their optimizer state, the towers) and the peak
(RSS high-water mark: imports, building the whole model before DMP shards it, and the
final gather onto every rank). Rounds interleave (a) and (b); the median round is reported.

    .venv/bin/python benchmarks/distributed_speed.py [--steps 100] [--rounds 3]

On a 2-core machine (b) shows the cost of distribution (all-to-alls over loopback, batch
assembly on both ranks), not a speed-up: sharding is for tables that do not fit one
process, and for more cores or machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from pretrain_speed import BATCH, DIM, ITEMS, TEMPERATURE, USERS, make_world  # noqa: E402

from recft.models import TwoTowerConfig  # noqa: E402
from recft.train import PretrainConfig, pretrain  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "distributed_speed.json"
WORLD_SIZE = 2


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _record_training_rss(found: dict[str, float]) -> None:
    """Note the RSS when training ends, before ``close()`` puts plain tables back."""
    from recft.train.optimizers import Optimizers

    close = Optimizers.close

    def recording_close(self) -> None:
        found.setdefault("training_rss_mib", rss_mib())
        close(self)

    Optimizers.close = recording_close


def train_once(steps: int, seed: int, batch_size: int, sharding: dict[str, str] | None,
               context=None) -> dict[str, float]:
    world = make_world(active_users=steps * BATCH // 21, seed=seed)
    config = TwoTowerConfig(embedding_dim=DIM, tower_layers=(128, DIM), dropout=0.0,
                            temperature=TEMPERATURE, max_history=50)
    settings = PretrainConfig(epochs=1, batch_size=batch_size, seed=seed, history_dropout=0.0)
    before = rss_mib()
    found: dict[str, float] = {}
    if context is None:
        _record_training_rss(found)
    else:  # before the gather: ShardedOptimizers.close gathers first, then calls the base
        from recft.train.sharded_optimizers import ShardedOptimizers

        close = ShardedOptimizers.close

        def recording_close(self) -> None:
            found.setdefault("training_rss_mib", rss_mib())
            close(self)

        ShardedOptimizers.close = recording_close
    _, history = pretrain(world, config, pretrain_config=settings, progress=False,
                          distributed=context, sharding=sharding)
    return {"examples_per_second": history.throughput[0], "rss_before_mib": before,
            "training_rss_mib": found["training_rss_mib"], "peak_rss_mib": peak_rss_mib(),
            "epoch_seconds": history.epoch_seconds[0]}


def worker(args: argparse.Namespace) -> None:
    """One rank of the sharded variant (started by ``sharded_round``)."""
    from recft.train.distributed import Distributed

    torch.set_num_threads(1)
    context = Distributed.from_environment()
    sharding = dict(e.split("=") for e in args.sharding.split(",")) if args.sharding else None
    result = train_once(args.steps, args.seed, BATCH // WORLD_SIZE, sharding, context)
    result["plan"] = context.plan
    Path(args.worker, f"rank{context.rank}.json").write_text(json.dumps(result))
    context.close()


def sharded_round(args: argparse.Namespace, seed: int, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    processes = []
    for rank in range(WORLD_SIZE):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(WORLD_SIZE), "LOCAL_WORLD_SIZE": str(WORLD_SIZE),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1",
               "GLOO_SOCKET_IFNAME": "lo"}
        command = [sys.executable, __file__, "--worker", str(folder), "--steps",
                   str(args.steps), "--seed", str(seed), "--sharding", args.sharding or ""]
        processes.append(subprocess.Popen(command, env=env))
    if any(p.wait() != 0 for p in processes):
        raise SystemExit("a rank of the sharded run failed")
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    return {"examples_per_second": ranks[0]["examples_per_second"],
            "peak_rss_mib_per_rank": [r["peak_rss_mib"] for r in ranks],
            "training_rss_mib_per_rank": [r["training_rss_mib"] for r in ranks],
            "plan": {t: e["sharding"] for t, e in (ranks[0]["plan"] or {}).items()}}


def single_round(args: argparse.Namespace, seed: int) -> dict:
    """One process with 2 threads, in a fresh interpreter (so its peak RSS is its own)."""
    command = [sys.executable, __file__, "--single", "--steps", str(args.steps), "--seed",
               str(seed)]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"}).stdout
    found = json.loads(output.strip().splitlines()[-1])
    return {"examples_per_second": found["examples_per_second"],
            "peak_rss_mib": found["peak_rss_mib"],
            "training_rss_mib": found["training_rss_mib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="global batches per epoch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sharding", default="", help="TABLE=TYPE,... (default: planner)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.single:
        torch.set_num_threads(2)
        print(json.dumps(train_once(args.steps, args.seed, BATCH, None)))
        return None
    started = time.perf_counter()
    runs: dict[str, list[dict]] = {"single_2_threads": [], "sharded_2x1_thread": []}
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"distributed_speed.{os.getpid()}"
    for index in range(args.rounds):
        runs["single_2_threads"].append(single_round(args, args.seed + index))
        runs["sharded_2x1_thread"].append(
            sharded_round(args, args.seed + index, scratch / f"round{index}"))
        print(f"round {index + 1}/{args.rounds}: " + ", ".join(
            f"{name} {values[-1]['examples_per_second']:,.0f} examples/s"
            for name, values in runs.items()), flush=True)
    median = {name: statistics.median(r["examples_per_second"] for r in values)
              for name, values in runs.items()}
    single, sharded = runs["single_2_threads"], runs["sharded_2x1_thread"]
    memory = {"single_peak_rss_mib": max(r["peak_rss_mib"] for r in single),
              "single_training_rss_mib": max(r["training_rss_mib"] for r in single)}
    for key in ("peak_rss_mib", "training_rss_mib"):
        memory[f"sharded_{key}_per_rank"] = [max(r[f"{key}_per_rank"][k] for r in sharded)
                                             for k in range(WORLD_SIZE)]
    print(f"\n{USERS:,} users x {ITEMS:,} items, dim {DIM}, global batch {BATCH}, "
          f"{args.steps} steps, median of {args.rounds} rounds; plan {sharded[0]['plan']}")
    ratio = median["sharded_2x1_thread"] / median["single_2_threads"]
    print(f"1 process x 2 threads    {median['single_2_threads']:10,.0f} examples/s; RSS "
          f"training {memory['single_training_rss_mib']:,.0f} MiB, peak "
          f"{memory['single_peak_rss_mib']:,.0f} MiB")
    print(f"2 processes x 1 thread   {median['sharded_2x1_thread']:10,.0f} examples/s "
          f"({ratio:.2f}x); RSS per rank training " + ", ".join(
              f"{v:,.0f}" for v in memory["sharded_training_rss_mib_per_rank"]) + " MiB, peak "
          + ", ".join(f"{v:,.0f}" for v in memory["sharded_peak_rss_mib_per_rank"]) + " MiB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "distributed_speed", "users": USERS, "items": ITEMS, "embedding_dim": DIM,
        "global_batch": BATCH, "steps": args.steps, "rounds": args.rounds,
        "examples_per_second": median, "sharded_over_single": ratio, "memory": memory,
        "plan": sharded[0]["plan"], "all_rounds": runs,
        "seconds": time.perf_counter() - started, "torch": torch.__version__,
        "machine": platform.machine(), "cores": os.cpu_count(),
        "note": "machine shared with other jobs while measured; see README Scale-out",
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return None


if __name__ == "__main__":
    main()

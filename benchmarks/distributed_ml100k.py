"""Issue 10's done-when check: a 2-process sharded ml-100k pretraining scores like one process.

Runs, with the default settings and seed 0, one torch thread per process:

  recft pretrain --dataset ml-100k --split random:0.8,0.1,0.1 --seed 0 --out A
  recft pretrain --dataset ml-100k --split random:0.8,0.1,0.1 --seed 0 --nproc 2 --out B
  recft evaluate --checkpoint B --dataset ml-100k --split random:0.8,0.1,0.1 --seed 0 --json

and checks that one process evaluating B's checkpoint finds a test NDCG@10 within 0.01 of
A's run. Needs the MovieLens files under $RECFT_DATA_DIR (or --data-dir).

    .venv/bin/python benchmarks/distributed_ml100k.py [--data-dir DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "distributed_ml100k.json"
PROTOCOL = ["--dataset", "ml-100k", "--split", "random:0.8,0.1,0.1", "--seed", "0"]
TOLERANCE = 0.01


def recft(*args: str, data_dir: str | None) -> tuple[dict, float]:
    command = [sys.executable, "-m", "recft", *args, "--quiet"]
    if data_dir:
        command += ["--data-dir", data_dir]
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    return json.loads(output), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="dataset root (default: $RECFT_DATA_DIR)")
    parser.add_argument("--work", help="folder for the two checkpoints (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="distributed_ml100k."))
    single, single_s = recft("pretrain", *PROTOCOL, "--out", str(work / "single"),
                             data_dir=args.data_dir)
    sharded, sharded_s = recft("pretrain", *PROTOCOL, "--nproc", "2", "--out",
                               str(work / "sharded"), data_dir=args.data_dir)
    evaluated, _ = recft("evaluate", "--checkpoint", str(work / "sharded"), *PROTOCOL,
                         "--json", data_dir=args.data_dir)
    one = single["metrics"]["ndcg@10"]
    two = evaluated["metrics"]["ndcg@10"]
    plan = json.loads((work / "sharded" / "training.json").read_text())["distributed"]
    verdict = "PASS" if abs(two - one) <= TOLERANCE else "FAIL"
    print(f"one process:           test NDCG@10 {one:.4f} ({single_s:.0f} s)")
    print(f"2 processes (sharded): test NDCG@10 {two:.4f} by `recft evaluate` in one process "
          f"({sharded_s:.0f} s; in-run {sharded['metrics']['ndcg@10']:.4f})")
    print(f"difference {two - one:+.4f} (tolerance {TOLERANCE}: {verdict})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "distributed_ml100k", "protocol": PROTOCOL, "threads_per_process": 1,
        "single": {"ndcg@10": one, "recall@10": single["metrics"]["recall@10"],
                   "seconds": single_s},
        "sharded": {"ndcg@10_by_recft_evaluate": two, "ndcg@10_in_run":
                    sharded["metrics"]["ndcg@10"], "recall@10": evaluated["metrics"]["recall@10"],
                    "seconds": sharded_s, "world_size": plan["world_size"],
                    "plan": {t: e["sharding"] for t, e in plan["sharding"].items()}},
        "difference": two - one, "tolerance": TOLERANCE, "verdict": verdict,
        "note": "machine shared with other jobs while measured",
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

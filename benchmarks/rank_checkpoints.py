"""Does rank-checkpoints pick the base that fine-tunes best? Quick scores vs full fine-tuning.

Four bases (synthetic movies, ml-latest-small, lastfm-2k, ml-latest-small reading item
text) and three targets (the synthetic target domain, and held-out user cohorts of
ml-latest-small and lastfm-2k: the ``synthetic``, ``movies`` and ``music`` presets). Real
datasets get namespaced ids (``recft.finetune.cross_domain.namespaced``) so that a movie and
an artist never share an id by accident. Per target, with 10% of its training interactions:

- the quick score: ``rank_checkpoints`` on that 10% (a sample of up to ``--users`` users:
  zero-shot NDCG@10, readable share, and a frozen probe when ``--probe-epochs`` > 0);
- the outcome: a full ``Recipe.default()`` fine-tuning (frozen -> full) of every base on
  that 10%, test NDCG@10 on the target's test part.

One untimed warm-up call first (imports, first-call initialisation). Reported: per target
the Spearman correlation between the quick ranking and the outcome,
whether the top pick is the best base, and the compute of the quick scores over that of
the fine-tunings, in CPU seconds of this process (the compute spent: on a shared machine
other jobs stretch the wall time, also reported, but not the CPU time) and wall seconds.
``--outcomes FILE`` reuses a previous run's fine-tunings (outcomes and their compute) to try
another quick-score setting without fine-tuning everything again.

    RECFT_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rank_checkpoints.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recft.data import split, synthetic
from recft.data.interactions import Interactions
from recft.evaluate import evaluate
from recft.finetune import Recipe, finetune
from recft.finetune.checkpoint_choice import rank_checkpoints, sample_users
from recft.finetune.cross_domain import namespaced
from recft.finetune.scenarios import cohort_split
from recft.io import atomic_write_text
from recft.models.checkpoint import load_pretrained
from recft.models.text_path import catalog_text_vectors
from recft.models.two_tower import TwoTowerConfig
from recft.train import PretrainConfig, pretrain

RESULTS = Path(__file__).parent / "results" / "rank_checkpoints.json"
FRACTION = 0.1


def domains(seed: int) -> tuple[dict[str, tuple[Interactions, str]], dict[str, Interactions]]:
    """Bases ``name -> (source, item_text)`` and targets ``name -> interactions``."""
    from recft.data.registry import load

    pair = synthetic("movies", size="small", seed=seed)
    movies = namespaced(load("ml-latest-small"), "movie")
    music = namespaced(load("lastfm-2k"), "music")
    movies_source, movies_target = cohort_split(movies, 0.2, seed)
    music_source, music_target = cohort_split(music, 0.2, seed)
    bases = {"synthetic": (pair.source, "none"), "movies": (movies_source, "none"),
             "music": (music_source, "none"), "movies-text": (movies_source, "id+text")}
    targets = {"synthetic": pair.target, "movies": movies_target, "music": music_target}
    return bases, targets


def fraction_of(train: Interactions, share: float, seed: int) -> Interactions:
    keep = np.random.default_rng(seed).random(len(train)) < share
    return train.subset(np.flatnonzero(keep))


class Clock:
    """Wall and CPU seconds of a block (CPU: this process's, all threads: the compute spent,
    which other jobs on a shared machine do not inflate as they do the wall time)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def figures(self) -> dict[str, float]:
        return {"cpu_seconds": round(self.cpu, 2), "wall_seconds": round(self.wall, 2)}


def finetuned_outcomes(folders: dict[str, Path], train: Interactions, parts: Any,
                       weighting: str, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Test NDCG@10 of a full frozen -> full fine-tuning of every base, and its compute."""
    outcome: dict[str, float] = {}
    with Clock() as clock:
        for name, folder in folders.items():
            result = finetune(load_pretrained(folder), train,
                              Recipe.default(seed=seed, sample_weighting=weighting),
                              valid=parts.valid, progress=False)
            metrics = evaluate(result.scorer(), parts.test, exclude=parts.known("test"),
                               history=train, ks=(10,), metrics=("ndcg",))
            outcome[name] = float(metrics["ndcg@10"])
    return outcome, clock.figures()


def spearman(a: list[float], b: list[float]) -> float:
    ranks = [np.argsort(np.argsort(x)).astype(float) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path("runs/rank_checkpoints"))
    parser.add_argument("--epochs", type=int, default=10, help="pretraining epochs per base")
    parser.add_argument("--users", type=int, default=300, help="users in the quick sample")
    parser.add_argument("--probe-epochs", type=int, default=0)
    parser.add_argument("--outcomes", type=Path, default=None,
                        help="reuse the fine-tuned outcomes (and their compute) of a previous "
                             "results file instead of fine-tuning every base again")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pretrain-only", action="store_true",
                        help="pretrain the bases into --work and stop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bases, targets = domains(args.seed)
    folders: dict[str, Path] = {}
    for name, (source, item_text) in bases.items():
        folders[name] = args.work / name
        if (folders[name] / "checksums.json").is_file():
            continue
        vectors = None if item_text == "none" else catalog_text_vectors(source)
        config = TwoTowerConfig(embedding_dim=64, tower_layers=(128, 64), item_text=item_text)
        model, _ = pretrain(source, config, item_text=vectors, progress=False,
                            pretrain_config=PretrainConfig(epochs=args.epochs, batch_size=512,
                                                           user_id_dropout=0.5, seed=args.seed))
        model.save_pretrained(folders[name], training={"dataset": source.name})
        print(f"pretrained {name}", flush=True)
    if args.pretrain_only:
        return 0
    previous = json.loads(args.outcomes.read_text()) if args.outcomes else None
    # untimed: imports and first-call initialisation are paid once per process (a separate
    # `recft finetune` pays them too), not per score; without this the first quick score
    # carries them (8 s of wall time on the first base in a run on this machine)
    first = next(iter(targets.values()))
    rank_checkpoints(list(folders.values()), sample_users(first, 20, args.seed), max_users=20,
                     seed=args.seed)
    results = []
    for target_name, target in targets.items():
        parts = split(target, "random:0.8,0.1,0.1", seed=args.seed)
        train = fraction_of(parts.train, FRACTION, args.seed)
        weighting = "log1p" if target_name == "music" else "none"
        with Clock() as quick_clock:
            quick = rank_checkpoints(list(folders.values()), train, max_users=args.users,
                                     probe_epochs=args.probe_epochs, seed=args.seed,
                                     sample_weighting=weighting)
        quick_rank = {Path(s.checkpoint).name: s.rank for s in quick}  # 1: fine-tune this
        if previous is not None:
            done = next(r for r in previous["targets"] if r["target"] == target_name)
            outcome, full = done["finetuned_ndcg@10"], done["finetune"]
        else:
            outcome, full = finetuned_outcomes(folders, train, parts, weighting, args.seed)
        for name in folders:
            print(f"[{target_name}] {name}: quick rank {quick_rank[name]}  fine-tuned "
                  f"{outcome[name]:.4f}", flush=True)
        names = list(folders)
        row: dict[str, Any] = {
            "target": target_name, "quick_rank": quick_rank, "finetuned_ndcg@10": outcome,
            "quick_scores": {Path(s.checkpoint).name: s.to_dict() for s in quick},
            "spearman": spearman([-quick_rank[n] for n in names], [outcome[n] for n in names]),
            "top_pick": Path(quick[0].checkpoint).name,
            "best_base": max(outcome, key=outcome.get),
            "quick": quick_clock.figures(), "finetune": full,
        }
        row["compute_share"] = round(row["quick"]["cpu_seconds"] / full["cpu_seconds"], 3)
        results.append(row)
        print(json.dumps(row), flush=True)
    total = {clock: {kind: round(sum(r[clock][kind] for r in results), 1)
                     for kind in ("cpu_seconds", "wall_seconds")}
             for clock in ("quick", "finetune")}
    summary = {"fraction": FRACTION, "seed": args.seed, "sample_users": args.users,
               "probe_epochs": args.probe_epochs,
               "mean_spearman": float(np.mean([r["spearman"] for r in results])),
               "min_spearman": float(np.min([r["spearman"] for r in results])),
               "top_pick_is_best": sum(r["top_pick"] == r["best_base"] for r in results),
               "compute_share_cpu": round(total["quick"]["cpu_seconds"]
                                          / total["finetune"]["cpu_seconds"], 3),
               "compute_share_wall": round(total["quick"]["wall_seconds"]
                                           / total["finetune"]["wall_seconds"], 3),
               "seconds": total, "load_average": os.getloadavg(),
               "outcomes_from": str(args.outcomes) if args.outcomes else "this run",
               "targets": results}
    atomic_write_text(args.out, json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "targets"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

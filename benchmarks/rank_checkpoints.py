"""Does rank-checkpoints pick the base that fine-tunes best? Quick scores vs full fine-tuning.

Four bases (synthetic movies, ml-latest-small, lastfm-2k, ml-latest-small reading item
text) and three targets (the synthetic target domain, and held-out user cohorts of
ml-latest-small and lastfm-2k: the ``synthetic``, ``movies`` and ``music`` presets). Real
datasets get namespaced ids (``recft.finetune.cross_domain.namespaced``) so that a movie and
an artist never share an id by accident. Per target, with 10% of its training interactions:

- the quick score: ``rank_checkpoints`` on that 10% (a sample of up to ``--users`` users,
  zero-shot + a short frozen probe), and its wall time;
- the outcome: a full ``Recipe.default()`` fine-tuning (frozen -> full) of every base on
  that 10%, test NDCG@10 on the target's test part, and its wall time.

Reported: per target the Spearman correlation between the probe score and the outcome,
whether the top pick is the best base, and quick time / fine-tuning time.

    RECFT_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rank_checkpoints.py
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

from recft.data import split, synthetic
from recft.data.interactions import Interactions
from recft.evaluate import evaluate
from recft.finetune import Recipe, finetune
from recft.finetune.checkpoint_choice import rank_checkpoints
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


def spearman(a: list[float], b: list[float]) -> float:
    ranks = [np.argsort(np.argsort(x)).astype(float) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path("runs/rank_checkpoints"))
    parser.add_argument("--epochs", type=int, default=10, help="pretraining epochs per base")
    parser.add_argument("--users", type=int, default=300, help="users in the quick sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
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
    results = []
    for target_name, target in targets.items():
        parts = split(target, "random:0.8,0.1,0.1", seed=args.seed)
        train = fraction_of(parts.train, FRACTION, args.seed)
        weighting = "log1p" if target_name == "music" else "none"
        started = time.perf_counter()
        quick = rank_checkpoints(list(folders.values()), train, max_users=args.users,
                                 seed=args.seed, sample_weighting=weighting)
        quick_seconds = time.perf_counter() - started
        probe = {Path(s.checkpoint).name: s.probe["ndcg@10"] for s in quick}
        outcome: dict[str, float] = {}
        full_seconds = 0.0
        for name, folder in folders.items():
            started = time.perf_counter()
            result = finetune(load_pretrained(folder), train,
                              Recipe.default(seed=args.seed, sample_weighting=weighting),
                              valid=parts.valid, progress=False)
            metrics = evaluate(result.scorer(), parts.test, exclude=parts.known("test"),
                               history=train, ks=(10,), metrics=("ndcg",))
            full_seconds += time.perf_counter() - started
            outcome[name] = float(metrics["ndcg@10"])
            print(f"[{target_name}] {name}: probe {probe[name]:.4f}  fine-tuned "
                  f"{outcome[name]:.4f}", flush=True)
        names = list(folders)
        row: dict[str, Any] = {
            "target": target_name, "probe_ndcg@10": probe, "finetuned_ndcg@10": outcome,
            "spearman": spearman([probe[n] for n in names], [outcome[n] for n in names]),
            "top_pick": quick[0].checkpoint and Path(quick[0].checkpoint).name,
            "best_base": max(outcome, key=outcome.get),
            "quick_seconds": round(quick_seconds, 1), "finetune_seconds": round(full_seconds, 1),
        }
        row["compute_share"] = round(quick_seconds / full_seconds, 3)
        results.append(row)
        print(json.dumps(row), flush=True)
    summary = {"fraction": FRACTION, "seed": args.seed, "sample_users": args.users,
               "mean_spearman": float(np.mean([r["spearman"] for r in results])),
               "top_pick_is_best": sum(r["top_pick"] == r["best_base"] for r in results),
               "compute_share": round(sum(r["quick_seconds"] for r in results)
                                      / sum(r["finetune_seconds"] for r in results), 3),
               "targets": results}
    atomic_write_text(args.out, json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "targets"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

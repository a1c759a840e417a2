"""What makes recft's two-tower beat EASE on ml-100k: candidate settings measured on VALID.

Protocol: ``protocol_ml100k.py``'s (every rating positive, per-user random 80/10/10, full
ranking, seen items excluded, models learn from train). Every candidate is pretrained on
train with early stopping on valid NDCG@10 for each seed (split seed = model seed); its
valid NDCG@10 is recorded, and so is the blend's (the candidate's scores mixed with EASE's,
EASE's l2 and the mix weight both tuned on valid). Choices are made on valid only; test is
computed by ``--final`` for the chosen candidates, next to EASE and ItemKNN on the same
seeds. Results go to ``benchmarks/results/explore_ml100k.json`` after every run, and a
rerun skips the (candidate, seed) pairs already there, so a killed run loses one model.

Usage::

    RECFT_DATA_DIR=/path/to/data OMP_NUM_THREADS=1 python benchmarks/explore_ml100k.py \
        [--candidates defaults dim128 ...] [--seeds 0 1 2]
    python benchmarks/explore_ml100k.py --final defaults best   # test figures
    python benchmarks/explore_ml100k.py --table                 # print the tables
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
# a sibling script: python puts this script's folder on the path, wherever it runs from
from protocol_ml100k import (
    EASE_L2_GRID,
    ProtocolSplit,
    load_split,
    run_ease,
    run_itemknn,
    score_test,
    score_valid,
)

from recft.io import atomic_write_text
from recft.models.baselines import EASE
from recft.models.blend import Blend
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.train import PretrainConfig, pretrain

RESULTS = Path(__file__).parent / "results" / "explore_ml100k.json"
METRIC = "ndcg@10"
# the candidate equal to the shipped defaults, and those built on top of it (compared with
# it, seed by seed, under the main table)
SHIPPED = "temp0.03_longer"
ON_SHIPPED = ("attention", "attention_history200", "transformer")


@dataclass(frozen=True)
class Candidate:
    """One setting: overrides of TwoTowerConfig and PretrainConfig, and which side features
    the model sees ("all": ml-100k's genres, year, age, gender, occupation)."""

    what: str
    model: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    features: str = "all"  # "all", "items" (no user features) or "none"

    def spec(self) -> dict[str, Any]:
        return {"what": self.what, "model": self.model, "pretrain": self.pretrain,
                "features": self.features}


CANDIDATES: dict[str, Candidate] = {  # in the order they are run: most promising first
    # the defaults before this exploration, pinned so that a rerun measures the same thing
    "defaults": Candidate("defaults before this exploration (temperature 0.1, epochs 30, "
                          "patience 3)", {"temperature": 0.1},
                          {"epochs": 30, "patience": 3}),
    "cooc_init": Candidate("item rows from a PMI SVD (item_init='cooccurrence')",
                           pretrain={"item_init": "cooccurrence"}),
    "dim128": Candidate("embedding_dim 128, towers (256, 128)",
                        {"embedding_dim": 128, "tower_layers": (256, 128)}),
    "neg256": Candidate("in-batch + 256 uniform negatives", pretrain={"num_negatives": 256}),
    "temp0.05": Candidate("temperature 0.05", {"temperature": 0.05}),
    "longer": Candidate("epochs 60, patience 6", pretrain={"epochs": 60, "patience": 6}),
    "no_features": Candidate("ids and history only (no genres/year, no user features)",
                             features="none"),
    "max_history200": Candidate("mean of the 200 most recent items (≈ full history)",
                                {"max_history": 200}),
    "history_dropout0": Candidate("history_dropout 0", pretrain={"history_dropout": 0.0}),
    "embedding_lr0.1": Candidate("embedding_lr 0.1", pretrain={"embedding_lr": 0.1}),
    "temp0.03": Candidate("temperature 0.03", {"temperature": 0.03}),
    "temp0.2": Candidate("temperature 0.2", {"temperature": 0.2}),
    "neg64": Candidate("in-batch + 64 uniform negatives", pretrain={"num_negatives": 64}),
    "dim32": Candidate("embedding_dim 32, towers (64, 32)",
                       {"embedding_dim": 32, "tower_layers": (64, 32)}),
    "item_features_only": Candidate("genres/year, no user features", features="items"),
    "history_dropout0.75": Candidate("history_dropout 0.75",
                                     pretrain={"history_dropout": 0.75}),
    "user_id_dropout0.5": Candidate("user_id_dropout 0.5", pretrain={"user_id_dropout": 0.5}),
    "batch512": Candidate("batch_size 512", pretrain={"batch_size": 512}),
    "temp0.02": Candidate("temperature 0.02", {"temperature": 0.02}),
    "temp0.03_longer": Candidate("temperature 0.03, epochs 60, patience 6",
                                 {"temperature": 0.03}, {"epochs": 60, "patience": 6}),
    "temp0.03_longer_dim128": Candidate(
        "temperature 0.03, epochs 60, patience 6, embedding_dim 128, towers (256, 128)",
        {"temperature": 0.03, "embedding_dim": 128, "tower_layers": (256, 128)},
        {"epochs": 60, "patience": 6}),
    "dropout0.3": Candidate("tower dropout 0.3", {"dropout": 0.3}),
    "history_only_user": Candidate("user tower from history (+ features) only: "
                                   "user_id_dropout 1", pretrain={"user_id_dropout": 1.0}),
    # learned history pooling (recft.models.history_pooling) on top of the shipped defaults,
    # pinned like temp0.03_longer (= the shipped defaults), the row to compare them with
    "attention": Candidate("attention pooling of the history (queried by the user), "
                           "temperature 0.03, epochs 60, patience 6",
                           {"temperature": 0.03, "history_pooling": "attention"},
                           {"epochs": 60, "patience": 6}),
    "attention_history200": Candidate(
        "attention pooling of the 200 most recent items, temperature 0.03, epochs 60, "
        "patience 6", {"temperature": 0.03, "history_pooling": "attention", "max_history": 200},
        {"epochs": 60, "patience": 6}),
    "transformer": Candidate("one transformer layer over the history in order, then "
                             "attention pooling, temperature 0.03, epochs 60, patience 6",
                             {"temperature": 0.03, "history_pooling": "transformer"},
                             {"epochs": 60, "patience": 6}),
}


# ---------------------------------------------------------------------- runs
def train_candidate(candidate: Candidate, split: ProtocolSplit, seed: int) -> tuple[TwoTower, Any]:
    train = split.train
    if candidate.features in ("none", "items"):
        train = train.replace(user_features=None)
    if candidate.features == "none":
        train = train.replace(item_features=None)
    settings = PretrainConfig(**{**candidate.pretrain, "seed": seed})
    return pretrain(train, TwoTowerConfig(**candidate.model), valid=split.valid,
                    pretrain_config=settings, progress=False)


def tuned_ease(split: ProtocolSplit) -> tuple[EASE, dict[str, float]]:
    """EASE with l2 picked on valid (protocol_ml100k's grid)."""
    fitted = {l2: EASE(l2=l2).fit(split.train) for l2 in EASE_L2_GRID}
    scores = {l2: score_valid(model, split)[METRIC] for l2, model in fitted.items()}
    best = max(scores, key=scores.get)
    return fitted[best], {"l2": best, "valid": scores[best]}


def explore_run(candidate: Candidate, split: ProtocolSplit, seed: int, ease: EASE,
                saved: Path) -> dict[str, Any]:
    started = time.perf_counter()
    model, history = train_candidate(candidate, split, seed)
    seconds = time.perf_counter() - started
    model.save_pretrained(saved)  # --final reads it back instead of retraining
    blend = Blend.tuned(model, ease, split.valid, exclude=split.train)
    return {"valid": history.best_metric, "best_epoch": history.best_epoch,
            "epochs_run": len(history.loss), "seconds": round(seconds, 1),
            "blend_valid": blend.tuning[blend.weight], "blend_weight": blend.weight,
            "blend_tuning": {f"{w:g}": v for w, v in blend.tuning.items()}}


def final_run(candidate: Candidate, split: ProtocolSplit, seed: int, ease: EASE,
              saved: Path) -> dict[str, Any]:
    """Test NDCG@10 of the candidate and its blend: the model saved by the exploration
    run, or one retrained (same seed, same weights) when it is gone."""
    if (saved / "checksums.json").is_file():  # written last: a complete checkpoint
        model = TwoTower.from_pretrained(saved)
    else:
        model, _ = train_candidate(candidate, split, seed)
    blend = Blend.tuned(model, ease, split.valid, exclude=split.train)
    return {"valid": score_valid(model, split)[METRIC], "test": score_test(model, split)[METRIC],
            "blend_weight": blend.weight, "blend_test": score_test(blend, split)[METRIC]}


# ---------------------------------------------------------------------- results file
def load_results(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    return {"protocol": None, "candidates": {}, "runs": {}, "ease": {}, "final": {}}


def save_results(path: Path, results: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def format_tables(results: dict[str, Any]) -> str:
    runs = results["runs"]
    base = [r["valid"] for r in runs.get("defaults", {}).values()]
    base_mean = statistics.mean(base) if base else None
    lines = ["| setting | valid NDCG@10 (mean ± std) | vs defaults | paired Δ per seed | "
             "+ EASE blend, valid | blend weight | seeds | s/run |",
             "|---|---|---|---|---|---|---|---|"]
    order = sorted(runs, key=lambda n: -statistics.mean(r["valid"] for r in runs[n].values()))
    for name in order:
        rows = list(runs[name].values())
        valid = [r["valid"] for r in rows]
        change = (f"{100 * (statistics.mean(valid) / base_mean - 1):+.1f}%"
                  if base_mean and name != "defaults" else "–")
        weights = "/".join(f"{r['blend_weight']:g}" for r in rows)
        # seeds share their split with the defaults' run: the per-seed difference is paired
        paired = "/".join(f"{runs[name][s]['valid'] - runs['defaults'][s]['valid']:+.4f}"
                          for s in sorted(runs[name]) if s in runs.get("defaults", {}))
        seconds = statistics.mean(r["seconds"] for r in rows)
        lines.append(f"| {name}: {results['candidates'][name]['what']} | {mean_std(valid)} | "
                     f"{change} | {paired if name != 'defaults' else '–'} | "
                     f"{mean_std([r['blend_valid'] for r in rows])} | {weights} | "
                     f"{len(rows)} | {seconds:.0f} |")
    ease = [e["valid"] for e in results["ease"].values()]
    lines.append(f"| EASE alone (l2 tuned on valid) | {mean_std(ease)} | "
                 f"{100 * (statistics.mean(ease) / base_mean - 1):+.1f}% | | | | {len(ease)} | |"
                 if ease and base_mean else "")
    if ease and "defaults" in runs:
        seeds = sorted(set(runs["defaults"]) & set(results["ease"]))
        lines += ["", "valid NDCG@10 per seed (" + ", ".join(seeds) + "): defaults + EASE blend "
                  "minus EASE alone " + "/".join(
                      f"{runs['defaults'][s]['blend_valid'] - results['ease'][s]['valid']:+.4f}"
                      for s in seeds) + "; defaults alone minus EASE " + "/".join(
                      f"{runs['defaults'][s]['valid'] - results['ease'][s]['valid']:+.4f}"
                      for s in seeds)]
    shipped = runs.get(SHIPPED, {})
    for name in (n for n in ON_SHIPPED if n in runs and shipped):
        seeds = sorted(set(runs[name]) & set(shipped))
        lines += ["", f"{name} minus {SHIPPED} (the shipped defaults), valid NDCG@10 per seed "
                  f"({', '.join(seeds)}): " + "/".join(
                      f"{runs[name][s]['valid'] - shipped[s]['valid']:+.4f}" for s in seeds)
                  + "; blends: " + "/".join(
                      f"{runs[name][s]['blend_valid'] - shipped[s]['blend_valid']:+.4f}"
                      for s in seeds)]
    for name, seeds in results.get("final", {}).items():
        lines += ["", f"test NDCG@10, {name} (seeds {', '.join(seeds)}):",
                  "| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                  "|---|" + "---|" * (len(seeds) + 1)]
        for key, label in (("test", f"two-tower ({name})"), ("blend_test", "blend with EASE"),
                           ("ease_test", "EASE"), ("itemknn_test", "ItemKNN")):
            values = [seeds[s][key] for s in seeds]
            lines.append(f"| {label} | " + " | ".join(f"{v:.4f}" for v in values)
                         + f" | {statistics.mean(values):.4f} |")
        for key, label in (("test", "two-tower"), ("blend_test", "blend")):
            lines.append(f"{label} minus EASE, per seed: " + "/".join(
                f"{seeds[s][key] - seeds[s]['ease_test']:+.4f}" for s in seeds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("RECFT_DATA_DIR"))
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--final", nargs="*", choices=list(CANDIDATES),
                        help="compute test NDCG@10 for these candidates (and EASE, ItemKNN)")
    parser.add_argument("--table", action="store_true", help="print the tables and exit")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path,
                        default=Path(tempfile.gettempdir()) / "recft-explore-ml100k",
                        help="where each run's model is kept for --final (never committed)")
    args = parser.parse_args(argv)
    results = load_results(args.output)
    if args.table:
        print(format_tables(results))
        return 0
    torch.set_num_threads(args.threads)
    if args.data_dir is None or not (Path(args.data_dir) / "ml-100k" / "u.data").is_file():
        print("ml-100k not found: set RECFT_DATA_DIR (or --data-dir)", file=sys.stderr)
        return 2
    splits: dict[int, tuple[ProtocolSplit, EASE]] = {}

    def saved(name: str, seed: int) -> Path:
        return args.models / f"{name}-seed{seed}"

    def split_of(seed: int) -> tuple[ProtocolSplit, EASE]:
        if seed not in splits:
            split = load_split(Path(args.data_dir), seed)
            ease, results["ease"][str(seed)] = tuned_ease(split)
            results["protocol"] = {**split.protocol, "seed": "per run", "threads": args.threads}
            splits[seed] = split, ease
        return splits[seed]

    if args.final:
        for seed in args.seeds:
            split, ease = split_of(seed)
            ease_row, knn_row = run_ease(split), run_itemknn(split)
            for name in args.final:
                record = final_run(CANDIDATES[name], split, seed, ease, saved(name, seed))
                record.update(ease_test=ease_row[METRIC], itemknn_test=knn_row[METRIC])
                results["final"].setdefault(name, {})[str(seed)] = record
                save_results(args.output, results)
                print(f"final {name} seed {seed}: {record}", flush=True)
    for name in [] if args.final else args.candidates:
        spec = json.loads(json.dumps(CANDIDATES[name].spec()))  # as stored (tuples as lists)
        if results["candidates"].get(name) != spec:
            results["runs"][name] = {}  # new or changed candidate: older runs do not count
            results["candidates"][name] = spec
        for seed in args.seeds:
            if str(seed) in results["runs"][name]:
                continue
            split, ease = split_of(seed)
            record = explore_run(CANDIDATES[name], split, seed, ease, saved(name, seed))
            results["runs"][name][str(seed)] = record
            save_results(args.output, results)
            print(f"{name} seed {seed}: valid {record['valid']:.4f}, blend "
                  f"{record['blend_valid']:.4f} (w={record['blend_weight']:g}), "
                  f"{record['seconds']:.0f} s", flush=True)
    print(format_tables(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

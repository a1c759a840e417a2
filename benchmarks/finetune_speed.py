"""Fine-tuning throughput next to pretraining, on the one training engine.

The world of ``pretrain_speed.py`` (1M users x 100k items, dim 64, towers 128 -> 128 -> 64,
history ~20 items, batch 1024): one epoch of pretraining, then each stage of
``Recipe.default()`` ("frozen": new towers only; "full": everything, tables with the fused
row-wise Adagrad at pretrained_lr_scale 0.1 with warm-up) and of ``Recipe.adapters()`` on a
target of new users over the same items, one epoch each, side by side in one run. Prints
examples/s, the ratio to pretraining (default, and with the recipe's 256 uniform negatives
per batch, the like-for-like reference), and the optimizer state each run held.

Target (issue "One training engine"): the full stage >= 0.8x pretraining.

    .venv/bin/python benchmarks/finetune_speed.py [--examples 150000] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import platform
import time
from pathlib import Path

import torch

from recft.finetune import Recipe, finetune
from recft.models import TwoTowerConfig
from recft.train import PretrainConfig, pretrain

RESULTS = Path(__file__).parent / "results" / "finetune_speed.json"


def _world_module():
    path = Path(__file__).with_name("pretrain_speed.py")
    spec = importlib.util.spec_from_file_location("pretrain_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_epoch(recipe: Recipe, batch: int) -> Recipe:
    stages = [dataclasses.replace(s, epochs=1, early_stopping_metric=None,
                                  gradual_unfreeze_every=0)
              for s in recipe.stages]
    return recipe.replace(stages=stages, batch_size=batch, min_steps_per_epoch=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=150_000, help="per run (about)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = _world_module()
    active = max(args.examples // 21, 100)
    source, target = world.make_world(active, seed=0), world.make_world(active, seed=1)
    arch = TwoTowerConfig(embedding_dim=world.DIM, tower_layers=(128, 128, 64), max_history=20)
    print(f"world: {source.user_vocab_size:,} users x {source.catalog_size:,} items; "
          f"{len(source):,} source / {len(target):,} target examples; {args.threads} thread(s)")

    runs = {}
    # like for like: the recipe adds 256 uniform negatives per batch (Recipe.num_negatives)
    for key, negatives in (("pretrain", 0), ("pretrain+256neg", Recipe().num_negatives)):
        started = time.perf_counter()
        base, history = pretrain(source, arch, pretrain_config=PretrainConfig(
            epochs=1, batch_size=world.BATCH, history_dropout=0.0,
            num_negatives=negatives), progress=False)
        runs[key] = {"examples_per_s": history.throughput[0],
                     "optimizer_state_bytes": history.optimizer_state_bytes}
        print(f"{key}: {history.throughput[0]:,.0f} examples/s "
              f"({time.perf_counter() - started:.0f} s)")
    state = {k: v.clone() for k, v in base.state_dict().items()}
    for label, recipe in (("default", Recipe.default()), ("adapters", Recipe.adapters())):
        base.load_state_dict(state)
        model = _fresh_copy(base, state)
        result = finetune(model, target, _one_epoch(recipe, world.BATCH), progress=False)
        for stage in result.stages:
            key = f"{label}/{stage.name}"
            runs[key] = {"examples_per_s": stage.throughput[0],
                         "optimizer_state_bytes": stage.optimizer_state_bytes,
                         "trainable_parameters": stage.trainable_parameters}
    plain, alike = runs["pretrain"]["examples_per_s"], runs["pretrain+256neg"]["examples_per_s"]
    print(f"\n{'run':<20} {'examples/s':>12} {'x pretrain':>11} {'x same negs':>12} "
          f"{'optimizer state':>16}")
    for key, run in runs.items():
        run["ratio_to_pretrain"] = run["examples_per_s"] / plain
        run["ratio_to_pretrain_same_negatives"] = run["examples_per_s"] / alike
        print(f"{key:<20} {run['examples_per_s']:>12,.0f} {run['ratio_to_pretrain']:>10.2f}x "
              f"{run['ratio_to_pretrain_same_negatives']:>11.2f}x "
              f"{run['optimizer_state_bytes'] / 2**20:>12.1f} MiB")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "finetune_speed", "threads": args.threads, "examples": len(source),
        "machine": platform.machine(), "torch": torch.__version__, "runs": runs,
    }, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")


def _fresh_copy(base, state):
    """A new TwoTower with the pretrained weights (fine-tuning modifies its model)."""
    import copy

    model = copy.deepcopy(base)
    model.load_state_dict(state)
    return model


if __name__ == "__main__":
    main()

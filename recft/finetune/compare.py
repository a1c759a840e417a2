"""compare(): popularity, scratch, zero-shot, frozen, frozen+full, adapters at data fractions."""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.data.splits import Split, split
from recft.errors import DataError
from recft.finetune.finetune import finetune
from recft.finetune.recipe import Recipe
from recft.finetune.scoring import zero_shot
from recft.io import atomic_write_text

STRATEGIES = ("popularity", "scratch", "zero-shot", "frozen", "frozen+full", "adapters")
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
COMPARISON_NAME = "comparison.json"  # the list of rows, as the issue and README specify
PROTOCOL_NAME = "comparison_protocol.json"  # split, fractions, recipes, base


def default_recipes(seed: int = 0) -> dict[str, Recipe]:
    """The recipe of every trained strategy; scratch gets frozen+full's epoch budget."""
    full = Recipe.default(seed=seed)
    budget = sum(stage.epochs for stage in full.stages)
    return {
        "frozen": Recipe.frozen_only(seed=seed),
        "frozen+full": full,
        "adapters": Recipe.adapters(rank=8, seed=seed),
        "scratch": Recipe.scratch(epochs=budget, seed=seed),
    }


def subsample(train: Interactions, fraction: float, seed: int) -> Interactions:
    """A seeded random ``fraction`` of the training *interactions* (users with none left
    are then known only by whatever history evaluation reveals)."""
    if not 0 < fraction <= 1:
        raise DataError(f"fractions must be in (0, 1], got {fraction}")
    if fraction == 1:
        return train
    rng = np.random.default_rng([seed, int(round(fraction * 1_000_000))])
    keep = np.sort(rng.choice(len(train), max(1, int(round(fraction * len(train)))),
                              replace=False))
    return train.subset(keep)


def compare(checkpoint_or_model: str | Path | nn.Module, target: Interactions,
            split_spec: str | Split = "random:0.8,0.1,0.1", seed: int = 0,
            fractions: Sequence[float] = FRACTIONS, strategies: Sequence[str] = STRATEGIES,
            out: str | Path | None = None, *, recipes: dict[str, Recipe] | None = None,
            ks: Sequence[int] = (10, 20), progress: bool = False,
            log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Every strategy at every fraction of the target's training data, on one split.

    Protocol: the target is split once (``split_spec``, ``seed``); valid and test are the
    same for every row. A fraction keeps a seeded random share of the training
    *interactions*; that share is also the history models see for warm users. Test
    ranks the target's whole catalog with the user's full training items excluded
    (cold-user splits: the revealed ``test_history``). Compute counts training only.

    Args:
        checkpoint_or_model: base checkpoint directory (each run loads a fresh copy) or a
            pretrained model (deep-copied per run).
        target: the target domain in its own vocabularies.
        split_spec: e.g. ``"random:0.8,0.1,0.1"`` or ``"cold-user:0.2,0.1"``, or a Split.
        strategies: subset of ``STRATEGIES``.
        out: directory for ``comparison.json`` (the rows) and ``comparison_protocol.json``
            (split, fractions, recipes, base), or None.
        recipes: override ``default_recipes()`` per strategy.

    Returns:
        Rows ``{"strategy", "fraction", "metrics": {"ndcg@10", "recall@10", ...},
        "compute": {"wall_seconds", "examples_seen", "trainable_parameters"}, ...}``.
    """
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise DataError(f"unknown strategies {unknown}; valid: {STRATEGIES}")
    parts = split_spec if isinstance(split_spec, Split) else split(target, split_spec, seed)
    recipes = {**default_recipes(seed), **(recipes or {})}
    base_dir = None if isinstance(checkpoint_or_model, nn.Module) else Path(checkpoint_or_model)
    cold = parts.kind == "cold-user"
    rows: list[dict[str, Any]] = []
    for fraction in fractions:
        train = subsample(parts.train, fraction, seed)
        history = parts.test_history if cold else train
        valid_history = parts.valid_history if cold else train
        for strategy in strategies:
            started = time.perf_counter()
            scorer, compute = _run(strategy, checkpoint_or_model, base_dir, train, parts,
                                   valid_history, recipes, progress)
            metrics = _test_metrics(scorer, parts, history, ks)
            compute.setdefault("wall_seconds", time.perf_counter() - started)
            row = {"strategy": strategy, "fraction": fraction, "metrics": metrics,
                   "compute": compute, "train_interactions": len(train)}
            rows.append(row)
            if log is not None:
                log(f"{strategy:>12} @ {fraction:<5g} ndcg@{ks[0]}="
                    f"{metrics[f'ndcg@{ks[0]}']:.4f}  trainable="
                    f"{compute['trainable_parameters']:,}  {compute['wall_seconds']:.1f}s")
    if out is not None:
        protocol = {**parts.protocol(), "fractions": list(fractions),
                    "fraction_unit": "training interactions",
                    "ranking": "full target catalog, training items excluded",
                    "recipes": {k: v.to_dict() for k, v in recipes.items()},
                    "base": None if base_dir is None else str(base_dir)}
        Path(out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(out) / PROTOCOL_NAME,
                          json.dumps(protocol, indent=2, default=_json_default) + "\n")
        atomic_write_text(Path(out) / COMPARISON_NAME,
                          json.dumps(rows, indent=2, default=_json_default) + "\n")
    return rows


def _run(strategy: str, source: str | Path | nn.Module, base_dir: Path | None,
         train: Interactions, parts: Split, valid_history: Interactions,
         recipes: dict[str, Recipe], progress: bool) -> tuple[Any, dict[str, Any]]:
    """Train (or fit) one strategy; returns a target-space scorer and its compute."""
    if strategy == "popularity":
        from recft.models.baselines import MostPopular

        started = time.perf_counter()
        model = MostPopular().fit(train)
        return model, {"wall_seconds": time.perf_counter() - started, "examples_seen": len(train),
                       "trainable_parameters": 0}
    if strategy == "zero-shot":
        scorer = zero_shot(_fresh(source), train, init=recipes["frozen+full"].new_id_init,
                           user_init=recipes["frozen+full"].new_user_init)
        return scorer, {"wall_seconds": 0.0, "examples_seen": 0, "trainable_parameters": 0}
    seed = recipes[strategy].seed
    model = _scratch(source, train, seed) if strategy == "scratch" else _fresh(source)
    result = finetune(model, train, recipes[strategy], valid=parts.valid,
                      valid_history=valid_history, base=base_dir, progress=progress)
    compute: dict[str, Any] = {"wall_seconds": result.wall_seconds,
                               "examples_seen": result.examples_seen,
                               "trainable_parameters": result.trainable_parameters,
                               "total_parameters": max(s.total_parameters for s in result.stages),
                               "stages": {s.name: {"epochs": len(s.loss),
                                                   "best_epoch": s.best_epoch}
                                          for s in result.stages}}
    if strategy == "adapters" and base_dir is not None:
        from recft.finetune.adapter_io import delta_size

        with tempfile.TemporaryDirectory() as folder:
            result.save_adapter(Path(folder) / "adapter")
            compute["delta"] = delta_size(base_dir, Path(folder) / "adapter")
    return result.scorer(), compute


def _test_metrics(scorer: Any, parts: Split, history: Interactions,
                  ks: Sequence[int]) -> dict[str, float]:
    from recft.evaluate import evaluate

    # exclusion: everything the user is known to have seen (full train, or revealed history)
    exclude = parts.test_history if parts.kind == "cold-user" else parts.train
    result = evaluate(scorer, parts.test, exclude=exclude, history=history, ks=ks,
                      metrics=["ndcg", "recall", "precision", "hit", "coverage"])
    return {k: float(v) for k, v in result.items() if "@" in k}


def _fresh(source: str | Path | nn.Module) -> nn.Module:
    if isinstance(source, nn.Module):
        return copy.deepcopy(source)
    from recft.models.checkpoint import load_pretrained

    return load_pretrained(source)


def _scratch(source: str | Path | nn.Module, train: Interactions, seed: int) -> nn.Module:
    """The base architecture, randomly initialised, sized for the target's vocabularies."""
    from recft.models.two_tower import TwoTower, TwoTowerConfig

    base = _fresh(source)
    values = {f.name: getattr(base.config, f.name) for f in dataclasses.fields(TwoTowerConfig)}
    values.update(num_users=None, num_items=None, item_feature_sizes={}, user_feature_sizes={})
    features = {side: (getattr(train, f"{side}_features").categorical
                       if getattr(train, f"{side}_features") is not None else None)
                for side in ("item", "user")}
    # the same feature tables as the base (a target-only feature would change the model)
    item = {n: f for n, f in (features["item"] or {}).items() if n in base.item_features}
    user = {n: f for n, f in (features["user"] or {}).items() if n in base.user_features}
    torch.manual_seed(seed)
    return TwoTower(TwoTowerConfig(**values), train.user_vocab, train.item_vocab,
                    item_features=item or None, user_features=user or None)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def load_comparison(directory: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(rows, protocol)`` of a comparison written by ``compare(..., out=directory)``."""
    directory = Path(directory)
    try:
        rows = json.loads((directory / COMPARISON_NAME).read_text())
        protocol = json.loads((directory / PROTOCOL_NAME).read_text())
    except FileNotFoundError as error:
        raise DataError(f"no comparison in {directory}: {Path(error.filename).name} missing") from None
    return rows, protocol

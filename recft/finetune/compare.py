"""compare(): baselines and fine-tuning strategies at data fractions, with intervals.

Strategies: ``popularity``, ``ease`` and ``itemknn`` (fitted on the target fraction),
``ease-source`` and ``itemknn-source`` (fitted on source + target fraction, when source
interactions are known), and recft's ``scratch``, ``zero-shot``, ``frozen``,
``frozen+full`` and ``adapters``, and ``blend`` (frozen+full mixed with the item-item
baseline that scored best on valid, ``compare_blend``). One seed is one run (``compare_seed``); ``compare`` runs
every seed, summarises them with bootstrap intervals (``comparison_stats``) and writes the
files (``comparison_table.write_comparison``).
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.data.splits import Split, split
from recft.errors import DataError
from recft.evaluate.intervals import PerUserMetrics, per_user_metrics
from recft.finetune.compare_blend import TWO_TOWER, check_blend_inputs, run_blend
from recft.finetune.compare_baselines import (
    BASELINES,
    SOURCE_BASELINES,
    FractionData,
    baseline_protocol,
    check_ease_fits,
    run_baselines,
)
from recft.finetune.comparison_stats import summarize
from recft.finetune.comparison_table import (
    COMPARISON_NAME,
    PROTOCOL_NAME,
    load_comparison,
    write_comparison,
)
from recft.finetune.finetune import finetune
from recft.finetune.recipe import Recipe
from recft.finetune.scoring import zero_shot
from recft.models.baselines import EASE_MAX_ITEMS

TRAINED = ("scratch", "zero-shot", "frozen", "frozen+full", "adapters")
BLENDED = ("blend",)
STRATEGIES = BASELINES + TRAINED + BLENDED
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
TEST_METRICS = ("ndcg", "recall", "precision", "hit")  # per user, so they get intervals

__all__ = ["COMPARISON_NAME", "FRACTIONS", "PROTOCOL_NAME", "STRATEGIES", "SeedRun", "compare",
           "compare_seed", "default_recipes", "default_strategies", "load_comparison",
           "subsample"]


def default_strategies(has_source: bool) -> tuple[str, ...]:
    """Every strategy; the source-fitted baselines only when source interactions are known."""
    return tuple(s for s in STRATEGIES if has_source or s not in SOURCE_BASELINES)


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


@dataclass
class SeedRun:
    """One seed's comparison: JSON rows, per-user test metrics per (strategy, fraction),
    and the protocol of the run."""

    seed: int
    rows: list[dict[str, Any]]
    per_user: dict[tuple[str, float], PerUserMetrics]
    protocol: dict[str, Any]


def compare(checkpoint_or_model: str | Path | nn.Module, target: Interactions,
            split_spec: str | Split = "random:0.8,0.1,0.1", seed: int = 0,
            fractions: Sequence[float] = FRACTIONS, strategies: Sequence[str] | None = None,
            out: str | Path | None = None, *, source: Interactions | None = None,
            seeds: Sequence[int] | None = None, recipes: dict[str, Recipe] | None = None,
            ks: Sequence[int] = (10, 20), ease_max_items: int = EASE_MAX_ITEMS,
            title: str | None = None, progress: bool = False,
            log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Every strategy at every fraction of the target's training data, per seed.

    Protocol: per seed the target is split once (``split_spec``); valid and test are the
    same for every row of that seed. A fraction keeps a seeded random share of the
    training *interactions*; that share is also the history models see for warm users.
    Test ranks the target's whole catalog with the user's full training items excluded
    (cold-user splits: the revealed ``test_history``). Compute counts training only.

    Args:
        checkpoint_or_model: base checkpoint directory (each run loads a fresh copy) or a
            pretrained model (deep-copied per run).
        target: the target domain in its own vocabularies.
        split_spec: e.g. ``"random:0.8,0.1,0.1"``, or a Split (then one seed only).
        strategies: subset of ``STRATEGIES``; default ``default_strategies(source given)``.
        out: directory for ``comparison.json`` (the rows), ``comparison_protocol.json``
            and ``comparison.md``, or None.
        source: source-domain interactions for ``ease-source`` / ``itemknn-source``.
        seeds: several seeds (split, fractions, training); default ``(seed,)``.
        recipes: override ``default_recipes()`` per strategy (their seed follows the run).
        ease_max_items: refuse EASE rows fitted on more items (dense n x n matrices).
        title: heading of ``comparison.md``.

    Returns:
        Rows ``{"strategy", "fraction", "metrics": {"ndcg@10", ...}, "ci95": {"ndcg@10":
        [low, high], ...}, "compute": {"wall_seconds", "examples_seen",
        "trainable_parameters"}, ...}`` (see ``comparison_stats.summarize``).
    """
    seeds = tuple(seeds) if seeds is not None else (seed,)
    if isinstance(split_spec, Split) and len(seeds) > 1:
        raise DataError("a fixed Split cannot vary with seeds; pass a split spec string")
    runs = []
    for run_seed in seeds:
        parts = split_spec if isinstance(split_spec, Split) else split(target, split_spec,
                                                                          run_seed)
        run_recipes = {name: recipe.replace(seed=run_seed)
                       for name, recipe in (recipes or {}).items()}
        runs.append(compare_seed(checkpoint_or_model, parts, run_seed, fractions, strategies,
                                 source=source, recipes=run_recipes, ks=ks,
                                 ease_max_items=ease_max_items, progress=progress, log=log))
    rows = summarize(runs)
    if out is not None:
        write_comparison(out, rows, merged_protocol(runs),
                         title or f"{target.name or 'target'}")
    return rows


def compare_seed(checkpoint_or_model: str | Path | nn.Module, parts: Split, seed: int,
                 fractions: Sequence[float] = FRACTIONS, strategies: Sequence[str] | None = None,
                 *, source: Interactions | None = None, recipes: dict[str, Recipe] | None = None,
                 ks: Sequence[int] = (10, 20), ease_max_items: int = EASE_MAX_ITEMS,
                 progress: bool = False, log: Callable[[str], None] | None = print) -> SeedRun:
    """One seed of ``compare`` on an existing split: rows and per-user test metrics."""
    strategies = tuple(strategies) if strategies is not None else default_strategies(
        source is not None)
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise DataError(f"unknown strategies {unknown}; valid: {', '.join(STRATEGIES)}")
    recipes = {**default_recipes(seed), **(recipes or {})}
    base_dir = None if isinstance(checkpoint_or_model, nn.Module) else Path(checkpoint_or_model)
    cold = parts.kind == "cold-user"
    data = []
    for fraction in fractions:
        train = subsample(parts.train, fraction, seed)
        data.append(FractionData(fraction, train, parts.valid_history if cold else train))
    check_ease_fits(strategies, data, source, ease_max_items)
    check_blend_inputs(strategies)
    # blend reuses frozen+full's model, which is trained for it even when not a row
    to_train = [s for s in TRAINED if s in strategies or (s == TWO_TOWER and "blend" in strategies)]

    def score_test(scorer: Any, index: int) -> tuple[dict[str, float], PerUserMetrics]:
        return _test_metrics(scorer, parts, parts.test_history if cold else data[index].train,
                             ks)

    results: dict[tuple[str, int], tuple[Any, dict[str, Any], dict[str, Any]]] = {}
    baselines = run_baselines(strategies, data, parts.valid, source, score_test, ease_max_items)
    for (strategy, index), run in baselines.items():
        results[strategy, index] = (run.test, run.compute, {"params": run.params,
                                                            "valid": run.valid})
        _log(log, strategy, data[index], run.test[0], run.compute, ks)
    for index, part in enumerate(data):
        for strategy in to_train:
            started = time.perf_counter()
            scorer, compute = _run(strategy, checkpoint_or_model, base_dir, part, parts,
                                   recipes, progress)
            compute.setdefault("wall_seconds", time.perf_counter() - started)
            if "blend" in strategies and strategy == TWO_TOWER:
                blend, blend_compute, extra = run_blend(scorer, compute, baselines, index, part,
                                                        parts.valid, source, ease_max_items)
                results["blend", index] = (score_test(blend, index), blend_compute, extra)
                _log(log, "blend", part, results["blend", index][0][0], blend_compute, ks)
            if strategy in strategies:
                test = score_test(scorer, index)
                results[strategy, index] = (test, compute, {})
                _log(log, strategy, part, test[0], compute, ks)
    rows, per_user = [], {}
    for index, part in enumerate(data):
        for strategy in strategies:
            (metrics, measured), compute, extra = results[strategy, index]
            rows.append({"strategy": strategy, "fraction": part.fraction, "metrics": metrics,
                         "compute": compute, "train_interactions": len(part.train), **extra})
            per_user[strategy, part.fraction] = measured
    protocol = {**parts.protocol(), "fractions": list(fractions),
                "fraction_unit": "training interactions",
                "ranking": "full target catalog, training items excluded",
                "recipes": {k: v.to_dict() for k, v in recipes.items() if k in strategies},
                "base": None if base_dir is None else str(base_dir)}
    if any(s in BASELINES for s in strategies):
        protocol["baselines"] = baseline_protocol(source, parts.train, ease_max_items)
    return SeedRun(seed, rows, per_user, protocol)


def merged_protocol(runs: Sequence[SeedRun]) -> dict[str, Any]:
    """The first run's protocol with every seed and its split sizes, plus the intervals'."""
    protocol = dict(runs[0].protocol)
    protocol["seeds"] = [run.seed for run in runs]
    if len(runs) > 1:
        protocol["per_seed"] = [{"seed": run.seed, "sizes": run.protocol["sizes"],
                                 "users": run.protocol["users"]} for run in runs]
    protocol["intervals"] = ("95% percentile bootstrap over test users (resampled within each "
                             "seed; mean of the seed means); vs_best_baseline: the same on "
                             "per-user differences to the best baseline of the fraction")
    return protocol


def _log(log: Callable[[str], None] | None, strategy: str, part: FractionData,
         metrics: dict[str, float], compute: dict[str, Any], ks: Sequence[int]) -> None:
    if log is not None:
        log(f"{strategy:>14} @ {part.fraction:<5g} ndcg@{ks[0]}={metrics[f'ndcg@{ks[0]}']:.4f}  "
            f"trainable={compute['trainable_parameters']:,}  {compute['wall_seconds']:.1f}s")


def _run(strategy: str, source: str | Path | nn.Module, base_dir: Path | None,
         part: FractionData, parts: Split, recipes: dict[str, Recipe],
         progress: bool) -> tuple[Any, dict[str, Any]]:
    """Train one recft strategy; returns a target-space scorer and its compute."""
    train = part.train
    if strategy == "zero-shot":
        scorer = zero_shot(_fresh(source), train, init=recipes["frozen+full"].new_id_init,
                           user_init=recipes["frozen+full"].new_user_init)
        return scorer, {"wall_seconds": 0.0, "examples_seen": 0, "trainable_parameters": 0}
    seed = recipes[strategy].seed
    model = _scratch(source, train, seed) if strategy == "scratch" else _fresh(source)
    result = finetune(model, train, recipes[strategy], valid=parts.valid,
                      valid_history=part.valid_history, base=base_dir, progress=progress)
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
                  ks: Sequence[int]) -> tuple[dict[str, float], PerUserMetrics]:
    from recft.evaluate import evaluate

    # exclusion: everything the user is known to have seen (full train, or revealed history)
    exclude = parts.test_history if parts.kind == "cold-user" else parts.train
    result = evaluate(scorer, parts.test, exclude=exclude, history=history, ks=ks,
                      metrics=[*TEST_METRICS, "coverage"])
    measured = per_user_metrics(scorer, parts.test, exclude=exclude, history=history, ks=ks,
                                metrics=TEST_METRICS)
    return {k: float(v) for k, v in result.items() if "@" in k}, measured


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
    # a base that reads item text: the scratch model reads the target's, by the same encoder
    vectors = None
    if getattr(base, "item_text", None) is not None:
        from recft.models.text_path import text_vectors_like

        vectors = text_vectors_like(base, train)
    torch.manual_seed(seed)
    return TwoTower(TwoTowerConfig(**values), train.user_vocab, train.item_vocab,
                    item_features=item or None, user_features=user or None, item_text=vectors)

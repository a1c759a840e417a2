"""run_scenario: pretrain on a scenario's source, then compare strategies on its target."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recft.data.splits import split
from recft.finetune.compare import (
    FRACTIONS,
    SeedRun,
    compare_seed,
    default_recipes,
    merged_protocol,
)
from recft.finetune.comparison_stats import summarize
from recft.finetune.comparison_table import write_comparison
from recft.finetune.scenarios import Scenario
from recft.models.baselines import EASE_MAX_ITEMS

# Target users are new to the base model: dropping the user id for half of the pretraining
# examples teaches the user tower to work from the history alone.
SCENARIO_USER_ID_DROPOUT = 0.5


def pretrain_base(scenario: Scenario, out: str | Path, *, seed: int = 0, epochs: int = 10,
                  embedding_dim: int = 64, progress: bool = False) -> Path:
    """Pretrain the scenario's base model on its source domain and save it to ``out``."""
    from recft.models.architecture import TwoTowerConfig
    from recft.models.checkpoint import save_pretrained
    from recft.train.pretrain import PretrainConfig, pretrain

    config = TwoTowerConfig(embedding_dim=embedding_dim, tower_layers=(2 * embedding_dim, embedding_dim),
                            item_text=scenario.item_text)
    vectors = None
    if scenario.item_text != "none":  # the base reads item text (movies-to-music)
        from recft.models.text_path import ItemTextVectors
        from recft.text import text_encoder

        vectors = ItemTextVectors.encode(scenario.source, text_encoder(scenario.text_encoder))
    settings = PretrainConfig(epochs=epochs, batch_size=512,
                              user_id_dropout=SCENARIO_USER_ID_DROPOUT, seed=seed)
    started = time.perf_counter()
    model, history = pretrain(scenario.source, config, pretrain_config=settings, progress=progress,
                              item_text=vectors)
    return save_pretrained(model, out, training={
        "stage": "pretrain", "scenario": scenario.name, "dataset": scenario.source.name,
        "description": scenario.description, "seed": seed, "pretrain": settings.to_dict(),
        "history": history.to_dict(), "wall_time_s": round(time.perf_counter() - started, 2)})


def run_scenario(scenario: Scenario | Callable[[int], Scenario], out: str | Path, *,
                 seeds: Sequence[int] = (0,), fractions: Sequence[float] = FRACTIONS,
                 strategies: Sequence[str] | None = None, pretrain_epochs: int = 10,
                 embedding_dim: int = 64, base: str | Path | None = None,
                 ease_max_items: int = EASE_MAX_ITEMS, progress: bool = False,
                 log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Per seed: pretrain (unless ``base`` is given) and compare every strategy at every
    fraction; then summarise the seeds and write the comparison files.

    Args:
        scenario: a Scenario (one cohort; seeds vary the split and training), or
            ``seed -> Scenario`` (each seed also draws its own cohort or synthetic world).
        seeds: one run per seed; several give means, spreads and tighter intervals.
        strategies: default every strategy, source-fitted baselines included.

    Writes ``<out>/base/`` (one seed) or ``<out>/seed-<s>/base/`` (the checkpoints),
    ``comparison.json``, ``comparison_protocol.json`` and ``comparison.md``.
    """
    out = Path(out)
    say = log or (lambda _: None)
    runs: list[SeedRun] = []
    first: Scenario | None = None
    for seed in seeds:
        current = scenario(seed) if callable(scenario) else scenario
        first = first or current
        say(f"[{current.name} seed {seed}] {current.description}")
        checkpoint = base
        if checkpoint is None:
            started = time.perf_counter()
            folder = out / "base" if len(seeds) == 1 else out / f"seed-{seed}" / "base"
            checkpoint = pretrain_base(current, folder, seed=seed, epochs=pretrain_epochs,
                                       embedding_dim=embedding_dim, progress=progress)
            say(f"  pretrained on {current.source.name} in "
                f"{time.perf_counter() - started:.0f} s")
        recipes = {name: recipe.replace(**current.recipe_overrides)
                   for name, recipe in default_recipes(seed).items()}
        parts = split(current.target, current.split_spec, seed)
        runs.append(compare_seed(checkpoint, parts, seed, fractions, strategies,
                                 source=current.source, recipes=recipes,
                                 ease_max_items=ease_max_items, progress=progress, log=log))
    rows = summarize(runs)
    protocol = {"scenario": first.name, "description": first.description,
                "cohort_per_seed": callable(scenario), **merged_protocol(runs)}
    cohort = ("each seed draws its own cohort; " if callable(scenario) and len(seeds) > 1
              else "")
    write_comparison(out, rows, protocol, first.name,
                     f"{first.description}\n\n{cohort}Source (seed {seeds[0]}): {first.source}"
                     f"\n\nTarget (seed {seeds[0]}): {first.target}")
    return rows

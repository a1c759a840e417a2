"""run_scenario: pretrain on a scenario's source, then compare strategies on its target."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recft.finetune.compare import FRACTIONS, STRATEGIES, compare, default_recipes
from recft.finetune.comparison_table import comparison_markdown
from recft.finetune.scenarios import Scenario
from recft.io import atomic_write_text

# Target users are new to the base model: dropping the user id for half of the pretraining
# examples teaches the user tower to work from the history alone.
SCENARIO_USER_ID_DROPOUT = 0.5


def pretrain_base(scenario: Scenario, out: str | Path, *, seed: int = 0, epochs: int = 10,
                  embedding_dim: int = 64, progress: bool = False) -> Path:
    """Pretrain the scenario's base model on its source domain and save it to ``out``."""
    from recft.models.checkpoint import save_pretrained
    from recft.models.architecture import TwoTowerConfig
    from recft.train.pretrain import PretrainConfig, pretrain

    config = TwoTowerConfig(embedding_dim=embedding_dim, tower_layers=(2 * embedding_dim, embedding_dim))
    settings = PretrainConfig(epochs=epochs, batch_size=512,
                              user_id_dropout=SCENARIO_USER_ID_DROPOUT, seed=seed)
    started = time.perf_counter()
    model, history = pretrain(scenario.source, config, pretrain_config=settings, progress=progress)
    return save_pretrained(model, out, training={
        "stage": "pretrain", "scenario": scenario.name, "dataset": scenario.source.name,
        "description": scenario.description, "seed": seed, "pretrain": settings.to_dict(),
        "history": history.to_dict(), "wall_time_s": round(time.perf_counter() - started, 2)})


def run_scenario(scenario: Scenario, out: str | Path, *, seed: int = 0,
                 fractions: Sequence[float] = FRACTIONS, strategies: Sequence[str] = STRATEGIES,
                 pretrain_epochs: int = 10, embedding_dim: int = 64, base: str | Path | None = None,
                 progress: bool = False, log: Callable[[str], None] | None = print,
                 ) -> list[dict[str, Any]]:
    """Pretrain (unless ``base`` is given) and compare every strategy at every fraction.

    Writes ``<out>/base/`` (the checkpoint), ``<out>/comparison.json`` (rows), ``comparison_protocol.json``
    and ``<out>/comparison.md`` (strategies x fractions with compute).
    """
    out = Path(out)
    say = log or (lambda _: None)
    say(f"[{scenario.name}] {scenario.description}")
    if base is None:
        started = time.perf_counter()
        base = pretrain_base(scenario, out / "base", seed=seed, epochs=pretrain_epochs,
                             embedding_dim=embedding_dim, progress=progress)
        say(f"  pretrained on {scenario.source.name} in {time.perf_counter() - started:.0f} s")
    recipes = default_recipes(seed)
    for recipe in recipes.values():
        for key, value in scenario.recipe_overrides.items():
            setattr(recipe, key, value)
    rows = compare(base, scenario.target, scenario.split_spec, seed=seed, fractions=fractions,
                   strategies=strategies, out=out, recipes=recipes, progress=progress, log=log)
    atomic_write_text(out / "comparison.md",
                      f"# {scenario.name}\n\n{scenario.description}\n\nSource: {scenario.source}\n\n"
                      f"Target: {scenario.target}\n\n{comparison_markdown(rows)}")
    return rows

"""The ``blend`` row of compare(): the fine-tuned two-tower (``frozen+full``) mixed with
the item-item baseline that scored best on valid at the same fraction.

The item-item model is refitted with the l2 or k its row chose, and the mixing weight is
tuned on the target's valid split (``recft.models.blend``); nothing is chosen on test. The
row's compute is the sum of its parts: the fine-tuning run, the item-item model's fit and
tuning (its whole grid, as in its own row) and the weight search.
"""

from __future__ import annotations

import time
from typing import Any

import scipy.sparse as sp

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.finetune.compare_baselines import (
    SOURCE_BASELINES,
    BaselineRun,
    FractionData,
)
from recft.models.baselines import EASE, ItemKNN, history_matrix, rows_in_catalog
from recft.models.blend import Blend

ITEM_ITEM = ("ease", "itemknn", "ease-source", "itemknn-source")
TWO_TOWER = "frozen+full"


def check_blend_inputs(strategies: tuple[str, ...]) -> None:
    """``blend`` needs an item-item baseline row to blend with (frozen+full is trained for
    it even when not asked for as a row)."""
    if "blend" in strategies and not any(s in strategies for s in ITEM_ITEM):
        raise DataError("blend mixes frozen+full with an item-item baseline: "
                        f"add one of {', '.join(ITEM_ITEM)} to the strategies")


def best_item_item(baselines: dict[tuple[str, int], BaselineRun], index: int) -> str:
    """The item-item baseline with the best tuned valid score at fraction ``index``."""
    scored = {strategy: max(run.valid.values()) for (strategy, i), run in baselines.items()
              if i == index and strategy in ITEM_ITEM and run.valid}
    if not scored:
        raise DataError("blend needs a valid split to choose its item-item model and weight")
    return max(scored, key=scored.get)


def run_blend(two_tower: Any, two_tower_compute: dict[str, Any],
              baselines: dict[tuple[str, int], BaselineRun], index: int, part: FractionData,
              valid: Interactions, source: Interactions | None,
              ease_max_items: int) -> tuple[Blend, dict[str, Any], dict[str, Any]]:
    """The tuned blend at one fraction, its compute and ``{"params", "valid"}`` extras."""
    partner = best_item_item(baselines, index)
    chosen = baselines[partner, index]
    started = time.perf_counter()
    item_item = _refit(partner, chosen.params, part.train, source, ease_max_items)
    blend = Blend.tuned(two_tower, item_item, valid, exclude=part.valid_history,
                        history=part.valid_history)
    seconds = time.perf_counter() - started
    compute = {
        "wall_seconds": two_tower_compute["wall_seconds"] + chosen.compute["wall_seconds"]
        + seconds,
        "examples_seen": two_tower_compute["examples_seen"] + chosen.compute["examples_seen"],
        "trainable_parameters": (two_tower_compute["trainable_parameters"]
                                 + chosen.compute["trainable_parameters"]),
    }
    params = {"item_item": partner, **chosen.params, "weight": blend.weight}
    return blend, compute, {"params": params,
                            "valid": {f"weight={w:g}": s for w, s in blend.tuning.items()}}


def _refit(strategy: str, params: dict[str, float], train: Interactions,
           source: Interactions | None, ease_max_items: int) -> Any:
    rows = [history_matrix(train)]
    if strategy in SOURCE_BASELINES:
        if source is None:
            raise DataError(f"{strategy} needs source interactions")
        rows.insert(0, rows_in_catalog(source, train.item_vocab))
    matrix = sp.vstack(rows, format="csr")
    if strategy.startswith("ease"):
        return EASE(l2=params["l2"], max_items=ease_max_items).fit_matrix(matrix)
    return ItemKNN(k=int(params["k"])).fit_matrix(matrix)

"""The baseline rows of compare(): popularity, and EASE / item-kNN fitted on the target
fraction or on a source domain plus the target fraction, tuned on the target's valid split.

Source-fitted baselines stack the source's users (items matched to the target catalog by
raw id; source-only items cannot be scored and are dropped) on the target fraction's users,
and score target users from their own history. EASE's l2 and item-kNN's k are chosen per
fraction by valid NDCG@10 from fixed grids; the grids and the choices are recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import scipy.sparse as sp

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.models.baselines import (
    EASE_MAX_ITEMS,
    ItemKNN,
    MostPopular,
    ease_sweep,
    history_matrix,
    rows_in_catalog,
)

BASELINES = ("popularity", "ease", "itemknn", "ease-source", "itemknn-source")
SOURCE_BASELINES = ("ease-source", "itemknn-source")
# Wide enough that the chosen value rarely sits on an edge (a first run with 20..2,500 and
# 20..200 chose an edge in over half the cells); each l2 costs one inversion per sweep.
EASE_L2_GRID = (4.0, 20.0, 100.0, 500.0, 2500.0, 12500.0)
ITEMKNN_K_GRID = (10, 20, 50, 100, 200, 500, 1000)
TUNING_METRIC = "ndcg@10"


@dataclass(frozen=True)
class FractionData:
    """What a baseline may use at one fraction: the training share and the history of
    valid users (the same share, or revealed histories in a cold-user split)."""

    fraction: float
    train: Interactions
    valid_history: Interactions


@dataclass
class BaselineRun:
    """One baseline at one fraction: its test result, tuned parameters and compute."""

    test: Any
    params: dict[str, float] = field(default_factory=dict)
    valid: dict[str, float] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict)


def baseline_protocol(source: Interactions | None, target: Interactions,
                      ease_max_items: int) -> dict[str, Any]:
    """How the baseline rows were fitted and tuned, for ``comparison_protocol.json``."""
    protocol: dict[str, Any] = {
        "tuning": f"per fraction, the grid value with the best valid {TUNING_METRIC}",
        "ease_l2_grid": list(EASE_L2_GRID), "itemknn_k_grid": list(ITEMKNN_K_GRID),
        "ease_max_items": ease_max_items,
        "compute": "wall seconds include every grid value; examples seen = interactions fitted",
    }
    if source is not None:
        matched = rows_in_catalog(source, target.item_vocab)
        protocol["source"] = {"name": source.name, "interactions": len(source),
                              "users": source.num_users,
                              "interactions_in_target_catalog": int(matched.nnz)}
    return protocol


def check_ease_fits(strategies: Sequence[str], fractions: Sequence[FractionData],
                    source: Interactions | None, max_items: int) -> None:
    """Refuse before any training when an EASE row would exceed ``max_items``."""
    for strategy in ("ease", "ease-source"):
        if strategy not in strategies:
            continue
        matrices = [history_matrix(f.train) for f in fractions]
        if strategy == "ease-source" and source is not None:
            matrices.append(rows_in_catalog(source, fractions[0].train.item_vocab))
        items = int((sum(abs(m).sum(axis=0) for m in matrices) > 0).sum())
        if items > max_items:
            raise DataError(
                f"{strategy} would fit EASE on {items:,} items (dense {items:,} x {items:,} "
                f"matrices, {_megabytes(4 * items**2)} each), above ease_max_items={max_items:,}; "
                f"raise it (recft compare --ease-max-items) or leave {strategy} out of the "
                "strategies")


def run_baselines(strategies: Sequence[str], fractions: Sequence[FractionData],
                  valid: Interactions | None, source: Interactions | None,
                  score_test: Callable[[Any, int], Any],
                  ease_max_items: int = EASE_MAX_ITEMS) -> dict[tuple[str, int], BaselineRun]:
    """Fit, tune and test every baseline in ``strategies`` at every fraction.

    Args:
        score_test: ``(scorer, fraction index) -> test result``, called for the chosen
            model of each fraction (during an EASE sweep, for each new best on valid: its
            models are too large to keep).

    Returns:
        ``{(strategy, fraction index): BaselineRun}``.
    """
    missing = [s for s in strategies if s in SOURCE_BASELINES and source is None]
    if missing:
        verb = "needs" if len(missing) == 1 else "need"
        raise DataError(f"{', '.join(missing)} {verb} source interactions (recft compare "
                        "--scenario NAME or --source DATASET)")
    catalog = fractions[0].train.item_vocab
    source_rows = rows_in_catalog(source, catalog) if source is not None else None
    empty = sp.csr_matrix((0, len(catalog)), dtype="float32")
    runs: dict[tuple[str, int], BaselineRun] = {}
    for strategy in strategies:
        if strategy not in BASELINES:
            continue
        shared = source_rows if strategy in SOURCE_BASELINES else empty
        if strategy == "popularity":
            for index, part in enumerate(fractions):
                started = time.perf_counter()
                model = MostPopular().fit(part.train)
                compute = _compute(time.perf_counter() - started, len(part.train), 0)
                runs[strategy, index] = BaselineRun(score_test(model, index), compute=compute)
        elif strategy.startswith("ease"):
            runs.update(_ease_rows(strategy, shared, fractions, valid, score_test, ease_max_items))
        else:
            for index, part in enumerate(fractions):
                runs[strategy, index] = _itemknn_row(shared, part, valid, score_test, index)
    return runs


def tuned_baselines(train: Interactions, valid: Interactions | None,
                    history: Interactions | None = None, source: Interactions | None = None,
                    strategies: Sequence[str] = ("popularity", "ease", "itemknn"),
                    ease_max_items: int = EASE_MAX_ITEMS) -> dict[str, Any]:
    """``{strategy: fitted model}``: each baseline fitted on ``train`` (and ``source`` for
    the source-fitted ones), its l2 or k chosen by NDCG@10 on ``valid`` (scored from
    ``history``, default ``train``), as in ``compare``.

    Example::

        models = tuned_baselines(parts.train, parts.valid)
        models["ease"]                                   # EASE(l2=500)
    """
    part = FractionData(1.0, train, history if history is not None else train)
    runs = run_baselines(strategies, [part], valid, source, lambda model, _: model,
                         ease_max_items)
    return {strategy: runs[strategy, 0].test for strategy in strategies}


def _ease_rows(strategy: str, shared: sp.csr_matrix, fractions: Sequence[FractionData],
               valid: Interactions | None, score_test: Callable[[Any, int], Any],
               max_items: int) -> dict[tuple[str, int], BaselineRun]:
    """Every l2 at every fraction from one sweep; per fraction the best on valid wins, and
    only a new best is tested (and kept)."""
    grid = EASE_L2_GRID if valid is not None else (500.0,)
    extras = [history_matrix(part.train) for part in fractions]
    tuning: dict[int, dict[float, float]] = {i: {} for i in range(len(fractions))}
    tested: dict[int, tuple[float, Any]] = {}
    started, testing, parameters = time.perf_counter(), 0.0, 0
    for l2, index, model in ease_sweep(shared, extras, grid, max_items):
        parameters = len(model.item_rows) ** 2  # dense weights over the fitted items
        if valid is not None:
            tuning[index][l2] = _valid_score(model, valid, fractions[index].valid_history)
        if index not in tested or tuning[index][l2] > tuning[index][tested[index][0]]:
            testing -= time.perf_counter()
            tested[index] = (l2, score_test(model, index))
            testing += time.perf_counter()
        del model  # the next step allocates its own (n x n) weights
    # fitting and tuning time (testing excluded), the shared inversions split evenly
    seconds = time.perf_counter() - started - testing
    rows = {}
    for index, part in enumerate(fractions):
        best, test = tested[index]
        fitted = shared.nnz + history_matrix(part.train).nnz
        rows[strategy, index] = BaselineRun(
            test, {"l2": best},
            {f"l2={v:g}": s for v, s in tuning[index].items()},
            _compute(seconds / len(fractions), fitted, parameters))
    return rows


def _itemknn_row(shared: sp.csr_matrix, part: FractionData, valid: Interactions | None,
                 score_test: Callable[[Any, int], Any], index: int) -> BaselineRun:
    started = time.perf_counter()
    matrix = sp.vstack([shared, history_matrix(part.train)], format="csr")
    fitted = ItemKNN(k=max(ITEMKNN_K_GRID)).fit_matrix(matrix)
    candidates = {k: fitted.with_neighbours(k) for k in ITEMKNN_K_GRID}
    tuning = ({k: _valid_score(m, valid, part.valid_history) for k, m in candidates.items()}
              if valid is not None else {})
    best = max(tuning, key=tuning.get) if tuning else 100
    model = candidates[best]
    seconds = time.perf_counter() - started
    return BaselineRun(score_test(model, index), {"k": best},
                       {f"k={k}": s for k, s in tuning.items()},
                       _compute(seconds, matrix.nnz, int(model.weights.nnz)))


def _valid_score(model: Any, valid: Interactions, history: Interactions) -> float:
    from recft.evaluate import evaluate

    k = int(TUNING_METRIC.partition("@")[2])
    result = evaluate(model, valid, exclude=history, history=history, ks=(k,),
                      metrics=[TUNING_METRIC.partition("@")[0]])
    return float(result[TUNING_METRIC])


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size < 2**30 else f"{size / 2**30:,.1f} GB"


def _compute(seconds: float, examples: int, parameters: int) -> dict[str, Any]:
    return {"wall_seconds": seconds, "examples_seen": int(examples),
            "trainable_parameters": parameters}

"""compare(): every strategy at every fraction, with the documented row keys and compute."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recft.data.splits import split
from recft.errors import DataError
from recft.evaluate.intervals import verdict
from recft.finetune.compare import (
    COMPARISON_NAME,
    PROTOCOL_NAME,
    STRATEGIES,
    compare,
    default_recipes,
    load_comparison,
    subsample,
)
from recft.finetune.compare_baselines import BASELINES, EASE_L2_GRID, ITEMKNN_K_GRID
from recft.finetune.compare_blend import ITEM_ITEM
from recft.finetune.scenario_run import run_scenario
from recft.finetune.scenarios import SCENARIOS, TARGET_SHARE, cohort_split, scenario_draws
from recft.models.checkpoint import save_pretrained
from recft.models.two_tower import TwoTower, TwoTowerConfig


def test_subsample_is_seeded_and_sized(synthetic_pair) -> None:
    train = synthetic_pair.target
    part = subsample(train, 0.25, seed=1)
    assert len(part) == round(0.25 * len(train))
    again = subsample(train, 0.25, seed=1)
    assert np.array_equal(part.user_ids, again.user_ids)
    assert not np.array_equal(part.item_ids, subsample(train, 0.25, seed=2).item_ids)
    assert subsample(train, 1.0, seed=0) is train
    with pytest.raises(DataError, match="fractions"):
        subsample(train, 0.0, seed=0)


def test_default_recipes_give_scratch_the_full_budget() -> None:
    recipes = default_recipes()
    budget = sum(s.epochs for s in recipes["frozen+full"].stages)
    assert recipes["scratch"].stages[0].epochs == budget
    assert recipes["adapters"].use_adapters


@pytest.fixture(scope="module")
def toy_base(synthetic_pair, tmp_path_factory) -> Path:
    """An untrained 8-wide two-tower over the source's vocabularies, saved."""
    source = synthetic_pair.source
    torch.manual_seed(0)
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.0)
    base = tmp_path_factory.mktemp("compare") / "base"
    save_pretrained(TwoTower(config, source.user_vocab, source.item_vocab,
                             item_features=source.item_features.categorical), base)
    return base


def test_compare_rows_for_every_strategy_and_fraction(synthetic_pair, toy_base, tmp_path) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    recipes = default_recipes()
    recipes["adapters"].adapter_rank = 2  # the toy model is 8 wide: rank 8 would be full rank
    for recipe in recipes.values():
        recipe.batch_size = 256
        for stage in recipe.stages:
            stage.epochs = 1
    rows = compare(toy_base, target, "random:0.8,0.1,0.1", seed=0, fractions=(0.5, 1.0),
                   out=tmp_path / "cmp", source=source, recipes=recipes, ks=(10,), log=None)
    assert [(r["strategy"], r["fraction"]) for r in rows] == [
        (s, f) for f in (0.5, 1.0) for s in STRATEGIES]
    for row in rows:
        assert {"strategy", "fraction", "metrics", "ci95", "compute"} <= set(row)
        assert {"ndcg@10", "recall@10", "coverage@10"} <= set(row["metrics"])
        assert 0.0 <= row["metrics"]["ndcg@10"] <= 1.0
        low, high = row["ci95"]["ndcg@10"]
        assert low <= row["metrics"]["ndcg@10"] <= high
        assert "coverage@10" not in row["ci95"]  # not a per-user metric
        assert {"wall_seconds", "examples_seen", "trainable_parameters"} <= set(row["compute"])
    by = {(r["strategy"], r["fraction"]): r for r in rows}
    assert by["popularity", 1.0]["compute"]["trainable_parameters"] == 0
    assert by["zero-shot", 1.0]["compute"]["examples_seen"] == 0
    half = by["frozen", 0.5]
    assert half["train_interactions"] == round(0.5 * len(split(target, "random:0.8,0.1,0.1").train))
    assert half["compute"]["examples_seen"] == half["train_interactions"]
    adapters = by["adapters", 1.0]["compute"]
    full = by["frozen+full", 1.0]["compute"]
    assert adapters["trainable_parameters"] < full["trainable_parameters"]
    assert adapters["delta"]["adapter_bytes"] > 0
    # baselines: tuned on valid, the choice recorded; source-fitted ones saw the source too
    ease = by["ease", 0.5]
    assert ease["params"]["l2"] in EASE_L2_GRID
    assert ease["valid"][f"l2={ease['params']['l2']:g}"] == max(ease["valid"].values())
    assert by["itemknn-source", 0.5]["params"]["k"] in ITEMKNN_K_GRID
    assert by["ease-source", 0.5]["compute"]["examples_seen"] > 10 * ease["compute"]["examples_seen"]
    # recft rows carry the paired verdict against the best baseline of their fraction
    for fraction in (0.5, 1.0):
        baselines = [by[s, fraction] for s in BASELINES]
        best = max(baselines, key=lambda r: r["metrics"]["ndcg@10"])["strategy"]
        versus = by["frozen", fraction]["vs_best_baseline"]["ndcg@10"]
        assert versus["baseline"] == best
        assert versus["difference"] == pytest.approx(
            by["frozen", fraction]["metrics"]["ndcg@10"] - by[best, fraction]["metrics"]["ndcg@10"])
        assert versus["verdict"] == {"better": "win", "worse": "loss", "tie": "tie"}[
            verdict(*versus["ci95"])]
    assert all("vs_best_baseline" not in by[s, 1.0] for s in BASELINES)
    # blend: frozen+full mixed with the item-item row that scored best on valid, whose
    # refit alone (weight 1) must rank valid exactly as that row did
    for fraction in (0.5, 1.0):
        blend = by["blend", fraction]
        partner = blend["params"]["item_item"]
        assert partner == max(ITEM_ITEM, key=lambda s: max(by[s, fraction]["valid"].values()))
        partner_valid = max(by[partner, fraction]["valid"].values())
        assert blend["valid"]["weight=1"] == pytest.approx(partner_valid, abs=1e-6)
        assert blend["valid"][f"weight={blend['params']['weight']:g}"] == max(
            blend["valid"].values())
        assert blend["compute"]["trainable_parameters"] == (
            by["frozen+full", fraction]["compute"]["trainable_parameters"]
            + by[partner, fraction]["compute"]["trainable_parameters"])
        assert "vs_best_baseline" in blend
    saved = json.loads((tmp_path / "cmp" / COMPARISON_NAME).read_text())
    assert saved == json.loads(json.dumps(rows))
    protocol = json.loads((tmp_path / "cmp" / PROTOCOL_NAME).read_text())
    assert protocol["fraction_unit"] == "training interactions"
    assert protocol["baselines"]["ease_l2_grid"] == list(EASE_L2_GRID)
    assert protocol["baselines"]["source"]["name"] == source.name
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| ease-source |" in markdown and "recft against the best baseline" in markdown
    with pytest.raises(DataError, match="strategies"):
        compare(toy_base, target, strategies=["finetune"], log=None)


def test_seeds_give_means_spreads_and_stratified_intervals(synthetic_pair, toy_base) -> None:
    target = synthetic_pair.target
    strategies = ("popularity", "ease", "zero-shot")
    one = {s: compare(toy_base, target, seed=s, fractions=(1.0,), strategies=strategies,
                      ks=(10,), log=None) for s in (0, 1)}
    rows = compare(toy_base, target, seeds=(0, 1), fractions=(1.0,), strategies=strategies,
                   ks=(10,), log=None)
    for row in rows:
        per_seed = [one[s][strategies.index(row["strategy"])]["metrics"]["ndcg@10"]
                    for s in (0, 1)]
        assert row["seeds"] == [0, 1]
        assert row["per_seed"]["ndcg@10"] == pytest.approx(per_seed)
        assert row["metrics"]["ndcg@10"] == pytest.approx(np.mean(per_seed))
        assert row["spread"]["ndcg@10"] == pytest.approx(np.std(per_seed, ddof=1))
        # two seeds hold about twice the users: the interval is narrower than one seed's
        width = np.diff(row["ci95"]["ndcg@10"])[0]
        single = one[0][strategies.index(row["strategy"])]["ci95"]["ndcg@10"]
        assert width < np.diff(single)[0]
    ease = rows[strategies.index("ease")]
    assert [p["l2"] for p in ease["params"]] == [one[s][1]["params"]["l2"] for s in (0, 1)]


def test_oversized_ease_and_missing_source_are_refused_before_training(synthetic_pair,
                                                                        toy_base) -> None:
    lines: list[str] = []
    with pytest.raises(DataError, match=r"ease would fit EASE on .* items .*above ease_max_items=50; "
                       r"raise it \(recft compare --ease-max-items\)"):
        compare(toy_base, synthetic_pair.target, fractions=(1.0,), ease_max_items=50,
                log=lines.append)
    assert lines == []  # nothing was fitted or trained
    with pytest.raises(DataError, match="ease-source needs source interactions"):
        compare(toy_base, synthetic_pair.target, fractions=(1.0,),
                strategies=("ease-source",), log=None)


def test_blend_trains_its_two_tower_without_a_row_and_needs_an_item_item_row(
        synthetic_pair, toy_base) -> None:
    recipes = default_recipes()
    for stage in recipes["frozen+full"].stages:
        stage.epochs = 1
    rows = compare(toy_base, synthetic_pair.target, fractions=(1.0,),
                   strategies=("itemknn", "blend"), recipes=recipes, ks=(10,), log=None)
    assert [r["strategy"] for r in rows] == ["itemknn", "blend"]
    assert rows[1]["params"]["item_item"] == "itemknn"
    assert rows[1]["params"]["k"] == rows[0]["params"]["k"]
    with pytest.raises(DataError, match="blend mixes frozen\\+full with an item-item baseline"):
        compare(toy_base, synthetic_pair.target, fractions=(1.0,),
                strategies=("popularity", "blend"), log=None)


def test_source_fitted_baselines_transfer_to_a_small_target_fraction(synthetic_pair,
                                                                     toy_base) -> None:
    """The synthetic domains share their planted structure: with a tenth of the target's
    data, item-item models that also saw the source rank better than target-only ones (EASE by 1.3x)."""
    rows = compare(toy_base, synthetic_pair.target, fractions=(0.1,), source=synthetic_pair.source,
                   strategies=BASELINES, ks=(10,), log=None)
    ndcg = {r["strategy"]: r["metrics"]["ndcg@10"] for r in rows}
    assert ndcg["ease-source"] > 1.3 * ndcg["ease"]
    assert ndcg["ease-source"] > ndcg["popularity"]
    # target-only item-kNN falls back to popularity where a short history reaches few items
    assert ndcg["itemknn-source"] > ndcg["itemknn"]


def test_scenario_run_writes_the_same_files_as_compare(tmp_path) -> None:
    draws = scenario_draws("synthetic", size="tiny")
    rows = run_scenario(draws, tmp_path / "run", seeds=(0,), fractions=(0.5,),
                        strategies=("ease", "ease-source", "zero-shot"), pretrain_epochs=1,
                        log=None)
    saved, protocol = load_comparison(tmp_path / "run")
    assert saved == json.loads(json.dumps(rows))
    assert protocol["scenario"] == "synthetic" and protocol["seeds"] == [0]
    assert (tmp_path / "run" / "base" / "model.safetensors").is_file()
    markdown = (tmp_path / "run" / "comparison.md").read_text()
    assert markdown.startswith("# synthetic\n") and "| ease-source |" in markdown
    assert "zero-shot" in {r["strategy"] for r in saved}
    assert "vs_best_baseline" in saved[-1]


def test_cohort_split_makes_target_users_new_with_a_shared_catalog(synthetic_pair) -> None:
    data = synthetic_pair.source
    source, target = cohort_split(data, 0.25, seed=0)
    assert len(source) + len(target) == len(data)
    assert set(source.user_vocab.ids).isdisjoint(target.user_vocab.ids)
    assert len(target.user_vocab) == round(0.25 * data.num_users)
    assert source.item_vocab is data.item_vocab is target.item_vocab
    raw = set(zip(data.user_vocab.decode(data.user_ids), data.item_ids))
    assert set(zip(target.user_vocab.decode(target.user_ids), target.item_ids)) <= raw


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["movies", "movies-temporal", "music"])
def test_real_data_scenarios(name: str) -> None:
    data_dir = os.environ.get("RECFT_DATA_DIR")
    if not data_dir:
        pytest.skip("RECFT_DATA_DIR is not set (folder holding ml-latest-small, lastfm-2k)")
    scenario = SCENARIOS[name](data_dir=data_dir, seed=0)
    assert set(scenario.source.user_vocab.ids).isdisjoint(scenario.target.user_vocab.ids)
    assert scenario.source.item_vocab is scenario.target.item_vocab
    share = len(scenario.target.user_vocab) / (len(scenario.target.user_vocab)
                                               + len(scenario.source.user_vocab))
    assert share == pytest.approx(TARGET_SHARE, abs=0.02)
    if name == "movies-temporal":
        parts = split(scenario.target, scenario.split_spec)
        assert scenario.source.timestamps.max() < parts.test.timestamps.min()

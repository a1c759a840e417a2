"""compare(): every strategy at every fraction, with the documented row keys and compute."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from recft.data.splits import split
from recft.errors import DataError
from recft.finetune.compare import COMPARISON_NAME, PROTOCOL_NAME, STRATEGIES, compare, default_recipes, subsample
from recft.finetune.scenarios import SCENARIOS, TARGET_SHARE, cohort_split
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


def test_compare_rows_for_every_strategy_and_fraction(synthetic_pair, tmp_path) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    torch.manual_seed(0)
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.0)
    base = tmp_path / "base"
    save_pretrained(TwoTower(config, source.user_vocab, source.item_vocab,
                             item_features=source.item_features.categorical), base)
    recipes = default_recipes()
    recipes["adapters"].adapter_rank = 2  # the toy model is 8 wide: rank 8 would be full rank
    for recipe in recipes.values():
        recipe.batch_size = 256
        for stage in recipe.stages:
            stage.epochs = 1
    rows = compare(base, target, "random:0.8,0.1,0.1", seed=0, fractions=(0.5, 1.0),
                   out=tmp_path / "cmp", recipes=recipes, ks=(10,), log=None)
    assert [(r["strategy"], r["fraction"]) for r in rows] == [
        (s, f) for f in (0.5, 1.0) for s in STRATEGIES]
    for row in rows:
        assert {"strategy", "fraction", "metrics", "compute"} <= set(row)
        assert {"ndcg@10", "recall@10"} <= set(row["metrics"])
        assert 0.0 <= row["metrics"]["ndcg@10"] <= 1.0
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
    saved = json.loads((tmp_path / "cmp" / COMPARISON_NAME).read_text())
    assert saved == json.loads(json.dumps(rows))
    protocol = json.loads((tmp_path / "cmp" / PROTOCOL_NAME).read_text())
    assert protocol["fraction_unit"] == "training interactions"
    with pytest.raises(DataError, match="strategies"):
        compare(base, target, strategies=["finetune"], log=None)


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

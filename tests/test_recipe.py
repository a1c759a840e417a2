"""Recipe and Stage: presets, validation listing valid values, YAML/JSON round trips."""

from __future__ import annotations

import pytest

from recft.config import ConfigError
from recft.finetune.recipe import NEW_ID_INITS, TRAINABLE_KEYWORDS, Recipe, Stage


def test_default_is_frozen_then_full_with_discriminative_lrs() -> None:
    recipe = Recipe.default()
    frozen, full = recipe.stages
    assert (frozen.name, frozen.trainable) == ("frozen", "new")
    assert frozen.freeze_tower_layers
    assert (full.name, full.trainable) == ("full", "all")
    assert full.pretrained_lr_scale < 1.0
    assert full.warmup_steps > 0
    assert full.early_stopping_metric == "ndcg@10" and full.restore_best
    assert "retrieval" in recipe.heads


def test_presets() -> None:
    frozen = Recipe.frozen_only(epochs=4)
    assert [s.trainable for s in frozen.stages] == ["new"] and frozen.stages[0].epochs == 4
    adapters = Recipe.adapters(rank=4)
    assert adapters.use_adapters and adapters.adapter_rank == 4
    assert [s.trainable for s in adapters.stages] == ["adapters"]
    assert Recipe.scratch(epochs=7).stages[0].epochs == 7


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix: str) -> None:
    recipe = Recipe.default(seed=3, sample_weighting="log1p", head_item_downweight=0.5)
    recipe.stages.append(Stage("top", epochs=2, trainable=["user_tower.*", "heads.*"],
                               gradual_unfreeze_every=1, train_only_new_rows=True))
    path = tmp_path / f"recipe{suffix}"
    recipe.save(path)
    loaded = Recipe.load(path)
    assert loaded == recipe
    assert isinstance(loaded.stages[2], Stage)
    assert loaded.stages[2].trainable == ["user_tower.*", "heads.*"]
    assert loaded.to_dict() == recipe.to_dict()


def test_from_dict_accepts_plain_stage_mappings() -> None:
    recipe = Recipe.from_dict({"stages": [{"name": "only", "trainable": "all", "epochs": 2}]})
    assert recipe.stages == [Stage("only", epochs=2, trainable="all")]


def test_invalid_trainable_lists_valid_keywords() -> None:
    with pytest.raises(ConfigError) as error:
        Stage("x", trainable="everything")
    for keyword in TRAINABLE_KEYWORDS:
        assert keyword in str(error.value)
    with pytest.raises(ConfigError, match="non-empty list"):
        Stage("x", trainable=[])


def test_invalid_recipe_values_list_valid_options() -> None:
    with pytest.raises(ConfigError) as error:
        Recipe.default(new_id_init="median")
    assert all(option in str(error.value) for option in NEW_ID_INITS)
    with pytest.raises(ConfigError, match="sampled_softmax"):
        Recipe.default(loss="hinge")
    with pytest.raises(ConfigError, match="num_negatives"):
        Recipe.default(loss="bpr", num_negatives=0)
    with pytest.raises(ConfigError, match="rating"):
        Recipe.default(loss="mse")
    with pytest.raises(ConfigError, match="use_adapters"):
        Recipe(stages=[Stage("a", trainable="adapters")])
    with pytest.raises(ConfigError, match="unique"):
        Recipe(stages=[Stage("a"), Stage("a")])
    with pytest.raises(ConfigError, match="epochs"):
        Stage("a", epochs=0)
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        Stage("a", early_stopping_metric="ndcg")


def test_stage_lookup() -> None:
    recipe = Recipe.default()
    assert recipe.stage("full") is recipe.stages[1]
    with pytest.raises(ConfigError, match="frozen"):
        recipe.stage("missing")


def test_a_typo_in_a_recipe_file_is_an_error_not_a_warning(tmp_path) -> None:
    from recft.config import ConfigError
    from recft.finetune.recipe import Recipe

    path = tmp_path / "recipe.yaml"
    path.write_text("stages:\n  - name: frozen\n    trainable: new\n    epoch: 1\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml stage 1: unknown Stage fields \['epoch'\]"):
        Recipe.load(path)
    path.write_text("lerning_rate: 0.1\nstages:\n  - name: frozen\n    trainable: new\n")
    with pytest.raises(ConfigError, match="unknown Recipe fields"):
        Recipe.load(path)

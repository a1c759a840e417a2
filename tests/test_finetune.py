"""finetune(): stages freeze what they say, new ids survive a save/load, best weights return."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recft.data import Interactions
from recft.data.splits import split
from recft.errors import TrainingError
from recft.evaluate import evaluate
from recft.finetune.finetune import effective_batch_size, example_weights, finetune
from recft.finetune.recipe import Recipe, Stage
from recft.models.checkpoint import load_pretrained, save_pretrained
from recft.models.two_tower import TwoTower
from tiny_models import tiny_two_tower


def _model(source) -> TwoTower:
    return tiny_two_tower(source)


def _pretrained(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _quick(recipe: Recipe, epochs: int = 1) -> Recipe:
    for stage in recipe.stages:
        stage.epochs = epochs
    recipe.batch_size = 256
    return recipe


def test_frozen_stage_keeps_every_pretrained_weight(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    before = _pretrained(model)
    result = finetune(model, target, _quick(Recipe.frozen_only()), progress=False)
    after = dict(result.model.named_parameters())
    for name, old in before.items():
        assert torch.equal(after[name].detach()[: len(old)], old), name
    moved = [n for n, p in after.items() if n.startswith("heads.")
             and not torch.equal(p, torch.zeros_like(p)) and n.endswith("2.weight")]
    assert moved  # the zero-initialised outputs of the new towers trained
    stage = result.stages[0]
    assert stage.trainable_parameters == sum(
        p.numel() for n, p in after.items() if n.startswith("heads."))
    assert stage.examples_seen == len(target) and stage.wall_seconds > 0


def test_full_stage_changes_pretrained_tables(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    before = _pretrained(model)
    result = finetune(model, target, _quick(Recipe.default()), progress=False)
    after = dict(result.model.named_parameters())
    old = before["item_ebc.embedding_bags.item_id.weight"]
    assert not torch.equal(after["item_ebc.embedding_bags.item_id.weight"][: len(old)], old)
    assert not torch.equal(after["user_tower.0.weight"], before["user_tower.0.weight"])
    assert [s.name for s in result.stages] == ["frozen", "full"]
    assert result.stages[1].trainable_parameters == result.stages[1].total_parameters


def test_checkpoint_with_new_ids_reloads_and_recommends(synthetic_pair, tmp_path) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    result = finetune(_model(source), target, _quick(Recipe.default()), base="runs/base",
                      progress=False)
    directory = result.save(tmp_path / "tuned")
    training = json.loads((directory / "training.json").read_text())
    assert training["base"] == "runs/base"
    assert Recipe.from_dict(training["recipe"]) == result.recipe
    assert training["alignment"]["counts"]["users"]["new"] == len(target.user_vocab)
    loaded = load_pretrained(directory)
    new_user = target.user_vocab.ids[0]
    new_item = target.item_vocab.ids[-1]
    assert new_user not in source.user_vocab and new_item not in source.item_vocab
    assert new_user in loaded.user_vocab and new_item in loaded.item_vocab
    users = target.user_vocab.encode(target.user_vocab.ids[:5])
    expected = result.model.score_users(users, target)
    scores = loaded.score_users(users, target)
    assert torch.equal(scores, expected)
    assert torch.isfinite(scores[:, loaded.item_vocab.encode([new_item])[0]]).all()
    # a user nobody has seen, known only by a short history, is served by the history tower
    items = target.item_vocab.ids[target.item_ids[:5]]
    stranger = Interactions.from_raw(["stranger"] * 5, items, item_vocab=target.item_vocab)
    with_history = loaded.score_users(np.array([0]), stranger)
    without = loaded.score_users(np.array([0]), stranger.subset(np.zeros(0, dtype=np.int64)))
    assert not torch.allclose(with_history, without)


def test_stage_that_trains_nothing_raises(synthetic_pair) -> None:
    recipe = Recipe(stages=[Stage("frozen", trainable="new")], heads=[])
    source = synthetic_pair.source
    with pytest.raises(TrainingError, match="trains nothing"):
        finetune(_model(source), source, recipe, progress=False)


def test_best_epoch_weights_are_restored(synthetic_pair) -> None:
    parts = split(synthetic_pair.target, "random:0.8,0.1,0.1", seed=0)
    stage = Stage("full", epochs=3, trainable="all", learning_rate=3e-2,
                  early_stopping_metric="ndcg@10", patience=3)
    recipe = Recipe(stages=[stage], heads=[], valid_users=None, batch_size=128)
    result = finetune(_model(synthetic_pair.source), parts.train, recipe, valid=parts.valid,
                      progress=False)
    history = result.stages[0]
    curve = [m["ndcg@10"] for m in history.valid]
    assert history.best_metric == max(curve)
    assert history.best_epoch == int(np.argmax(curve)) + 1
    again = evaluate(result.scorer(), parts.valid, exclude=parts.train, history=parts.train,
                     ks=(10,), metrics=["ndcg", "recall"])
    assert again["ndcg@10"] == pytest.approx(history.best_metric, abs=1e-9)


def test_gradual_unfreezing_widens_the_trainable_set(synthetic_pair) -> None:
    stage = Stage("gradual", epochs=3, trainable="all", gradual_unfreeze_every=1)
    recipe = Recipe(stages=[stage], batch_size=512)
    result = finetune(_model(synthetic_pair.source), synthetic_pair.target, recipe,
                      progress=False)
    counts = result.stages[0].trainable_per_epoch
    assert counts[0] < counts[1] < counts[2]
    assert result.stages[0].trainable_parameters == counts[-1]


def test_example_weights(synthetic_music_pair) -> None:
    train = synthetic_music_pair.target
    weights = example_weights(train, Recipe.default(sample_weighting="log1p"))
    assert weights.mean() == pytest.approx(1.0, rel=1e-5)
    expected = np.log1p(train.ratings) / np.log1p(train.ratings).mean()
    assert np.allclose(weights, expected, rtol=1e-5)
    assert example_weights(train, Recipe.default()) is None
    damped = example_weights(train, Recipe.default(head_item_downweight=1.0))
    popularity = train.item_popularity()[train.item_ids]
    assert damped[np.argmax(popularity)] < damped[np.argmin(popularity)]
    assert effective_batch_size(100, Recipe.default()) == 16
    assert effective_batch_size(100_000, Recipe.default()) == 512

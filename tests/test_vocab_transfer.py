"""align_vocabulary: grown tables keep pretrained rows bit-for-bit; new rows per strategy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recft.errors import DataError
from recft.finetune.finetune import finetune
from recft.finetune.recipe import Recipe, Stage
from recft.finetune.vocab_transfer import align_vocabulary, grow_collection
from recft.models.inputs import item_features_kjt
from recft.models.two_tower import TwoTower
from tiny_models import tiny_two_tower


def _model(source) -> TwoTower:
    return tiny_two_tower(source)


def _tables(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "ebc" in n}


@pytest.mark.parametrize("init", ["zeros", "mean", "random"])
def test_grown_tables_keep_old_rows_bit_for_bit(synthetic_pair, init: str) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    before = _tables(model)
    alignment = align_vocabulary(model, target, init=init, user_init=init)
    new_items = np.setdiff1d(target.item_vocab.ids, source.item_vocab.ids)
    assert alignment.counts["users"] == {"matched": 0, "new": len(target.user_vocab)}
    assert alignment.counts["items"] == {"matched": len(target.item_vocab) - len(new_items),
                                         "new": len(new_items)}
    assert len(model.item_vocab) == len(source.item_vocab) + len(new_items)
    assert model.config.num_items == len(model.item_vocab)
    for name, old in before.items():
        grown = dict(model.named_parameters())[name].detach()
        assert torch.equal(grown[: len(old)], old), name
        fresh = grown[len(old):]
        if init == "zeros":
            assert torch.equal(fresh, torch.zeros_like(fresh))
        elif init == "mean" and len(fresh):
            assert torch.allclose(fresh, old.mean(0).expand_as(fresh))
        elif init == "random" and len(fresh) > 1:
            assert not torch.equal(fresh[0], fresh[1])


def test_feature_mean_averages_rows_sharing_feature_values(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    old = model.item_ebc.embedding_bags["item_id"].weight.detach().clone().double()
    align_vocabulary(model, target, init="feature_mean")
    old_count = len(source.item_vocab)
    row = old_count  # the first new item
    expected, used = torch.zeros(old.shape[1], dtype=torch.float64), 0
    for feature in model.item_features.values():
        values = feature.values[feature.offsets[row]:feature.offsets[row + 1]]
        for value in values:
            sharing = [r for r in range(old_count)
                       if value in feature.values[feature.offsets[r]:feature.offsets[r + 1]]]
            if sharing:
                expected += old[sharing].mean(0)
                used += 1
    assert used > 0  # the planted new items carry genres the source knows
    grown = model.item_ebc.embedding_bags["item_id"].weight.detach()
    assert torch.allclose(grown[row].double(), expected / used, atol=1e-6)


def test_remap_keeps_raw_ids_and_features(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    alignment = align_vocabulary(model, target)
    remapped = alignment.remap(target)
    assert remapped.user_vocab is model.user_vocab
    assert np.array_equal(remapped.user_vocab.decode(remapped.user_ids),
                          target.user_vocab.decode(target.user_ids))
    assert np.array_equal(remapped.item_vocab.decode(remapped.item_ids),
                          target.item_vocab.decode(target.item_ids))
    genres = model.item_features["genres"]
    new_item = target.item_vocab.ids[-1]  # the latest-released item is new to the source
    assert new_item not in source.item_vocab
    ours = genres.as_lists([model.item_vocab.encode([new_item])[0]])[0]
    theirs = target.item_features.categorical["genres"].as_lists(
        [target.item_vocab.encode([new_item])[0]])[0]
    assert ours == theirs and ours
    with pytest.raises(DataError, match="vocabularies"):
        alignment.remap(source)


def test_grow_collection_gives_same_pooled_output_for_old_rows(synthetic_pair) -> None:
    model = _model(synthetic_pair.source)
    ebc = model.item_ebc
    rows = ebc.embedding_bags["item_id"].weight.shape[0]
    grown = grow_collection(ebc, {"item_id": rows + 5}, {"item_id": torch.ones(5, 8)})
    kjt = item_features_kjt(np.arange(10), model.item_features)
    assert torch.equal(ebc(kjt).values(), grown(kjt).values())
    assert torch.equal(grown.embedding_bags["item_id"].weight[rows:], torch.ones(5, 8))
    with pytest.raises(DataError, match="shrink"):
        grow_collection(ebc, {"item_id": rows - 1}, {})


def test_train_only_new_rows_changes_only_new_rows(synthetic_pair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    model = _model(source)
    before = _tables(model)
    towers = {n: p.detach().clone() for n, p in model.named_parameters() if "tower" in n}
    recipe = Recipe(stages=[Stage("new-rows", epochs=1, trainable="new",
                                  train_only_new_rows=True)],
                    heads=[], new_id_init="mean", new_user_init="mean", batch_size=256)
    result = finetune(model, target, recipe, progress=False)
    assert result.stages[0].trainable_parameters == 8 * (
        len(model.user_vocab) - len(source.user_vocab)
        + len(model.item_vocab) - len(source.item_vocab))
    after = dict(result.model.named_parameters())
    changed_new_rows = 0
    for name, old in before.items():
        weight = after[name].detach()
        assert torch.equal(weight[: len(old)], old), name
        if len(weight) > len(old):
            initial = old.mean(0)
            changed_new_rows += int((weight[len(old):] != initial).any(dim=1).sum())
    assert changed_new_rows > 0
    # the towers were not trainable either
    assert all(torch.equal(after[n], value) for n, value in towers.items())

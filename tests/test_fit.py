"""recft.train.fit: when it checkpoints, and that it guards the loss."""

from __future__ import annotations

import pytest
import torch

from recft.errors import TrainingError
from recft.train.batches import BatchBuilder
from recft.train.fit import FitSettings, LoopState, fit
from recft.train.objectives import RetrievalObjective
from recft.train.optimizers import OptimizerSettings, Optimizers
from tiny_models import tiny_two_tower


def _fit(data, settings: FitSettings, objective=None) -> list[LoopState]:
    model = tiny_two_tower(data, features=False)
    builder = BatchBuilder.for_model(model, data, batch_size=32)
    saved: list[LoopState] = []
    fit(model, builder, objective or RetrievalObjective("softmax", 0.1),
        Optimizers(model, OptimizerSettings()), settings, save=saved.append, progress=False)
    return saved


def test_time_based_checkpoints_land_inside_an_epoch(checkerboard) -> None:
    # 180 examples in batches of 32: 6 steps an epoch
    by_time = _fit(checkerboard, FitSettings(epochs=1, checkpoint_seconds=1e-9))
    assert [s.meta["step"] for s in by_time] == [1, 2, 3, 4, 5, 0]
    assert by_time[-1].meta["epoch"] == 1
    epoch_ends = _fit(checkerboard, FitSettings(epochs=2, checkpoint_seconds=0))
    assert [(s.meta["epoch"], s.meta["step"]) for s in epoch_ends] == [(1, 0), (2, 0)]
    by_steps = _fit(checkerboard, FitSettings(epochs=1, checkpoint_every=4,
                                              checkpoint_seconds=0))
    assert [s.meta["step"] for s in by_steps] == [4, 0]


def test_a_degenerate_loss_names_the_run_epoch_and_step(checkerboard) -> None:
    calls = {"n": 0}

    def exploding(model, batch):
        calls["n"] += 1
        loss = RetrievalObjective("softmax", 0.1)(model, batch)
        return loss * float("nan") if calls["n"] == 3 else loss

    with pytest.raises(TrainingError, match=r"'probe', epoch 1, step 3"):
        _fit(checkerboard, FitSettings(name="probe", epochs=1), objective=exploding)


def test_fit_leaves_plain_collections_and_trained_tables(checkerboard) -> None:
    model = tiny_two_tower(checkerboard, features=False)
    before = model.item_ebc.embedding_bags["item_id"].weight.detach().clone()
    builder = BatchBuilder.for_model(model, checkerboard, batch_size=32)
    optimizers = Optimizers(model, OptimizerSettings())
    assert sorted(optimizers.fused) == ["item_ebc", "user_ebc"]
    history = fit(model, builder, RetrievalObjective("softmax", 0.1), optimizers,
                  FitSettings(epochs=1), progress=False)
    after = model.item_ebc.embedding_bags["item_id"].weight  # a plain table again
    assert not torch.equal(after, before)
    assert history.examples_seen == len(checkerboard)
    assert history.optimizer_state_bytes > 0

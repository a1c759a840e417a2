"""finetune(resume_dir=...): a killed run, rerun, ends exactly where an uninterrupted one does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recft.cli import main
from recft.data.splits import split
from recft.errors import CheckpointError
from recft.finetune.finetune import finetune
from recft.finetune.recipe import Recipe, Stage
from recft.models.checkpoint import load_pretrained
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.train.batches import BatchBuilder
from tiny_models import tiny_two_tower

TIMING = ("epoch_seconds", "throughput", "wall_seconds")  # the only fields a resumed run may change


class _Killed(Exception):
    """Stands in for SIGKILL: escapes finetune() mid-run."""


def _recipe(**overrides) -> Recipe:
    """Two stages with everything a resume must carry: warm-up (optimizer step count),
    gradual unfreezing (optimizer layout), early-stopping counters and best weights (the
    high LRs of "full" make its epoch 2 beat epoch 3, so the best weights are restored)."""
    stages = [
        Stage("frozen", epochs=2, trainable="new", learning_rate=3e-3,
              early_stopping_metric="ndcg@10", patience=5),
        Stage("full", epochs=3, trainable="all", learning_rate=0.1, embedding_learning_rate=0.5,
              pretrained_lr_scale=0.1,
              warmup_steps=5, gradual_unfreeze_every=1, early_stopping_metric="ndcg@10",
              patience=5),
    ]
    return Recipe(stages=stages, batch_size=256, valid_users=50, **overrides)


def _model(source) -> TwoTower:
    """``tiny_two_tower`` with dropout, so that a resume must restore torch's RNG too."""
    torch.manual_seed(0)
    # temperature pinned: the recipe's "epoch 2 beats epoch 3" was tuned at 0.1
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.2,
                            temperature=0.1)
    return TwoTower(config, source.user_vocab, source.item_vocab,
                    item_features=source.item_features.categorical)


def _run(pair, parts, recipe, resume_dir=None):
    return finetune(_model(pair.source), parts.train, recipe, valid=parts.valid,
                    base="runs/base", progress=False, resume_dir=resume_dir)


def _kill_on_epoch(monkeypatch, call: int) -> None:
    """Make the ``call``-th epoch (counted over all stages) raise before it trains."""
    real = BatchBuilder.batches
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(BatchBuilder, "batches", dying)


def _histories(result) -> list[dict]:
    return [{k: v for k, v in s.to_dict().items() if k not in TIMING} for s in result.stages]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def _assert_no_pickle(directory: Path) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        head = path.read_bytes()[:2]
        assert not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5), path


@pytest.fixture(scope="module")
def parts(synthetic_pair):
    return split(synthetic_pair.target, "random:0.8,0.1,0.1", seed=0)


@pytest.fixture(scope="module")
def reference(synthetic_pair, parts):
    return _run(synthetic_pair, parts, _recipe())


# epoch 3 is the first of stage 2 (the last save marked stage 1 finished); epoch 5 is the
# last of stage 2, after two of its epochs were saved mid-stage
@pytest.mark.parametrize("dies_at", [3, 5])
def test_killed_run_resumes_to_identical_weights(synthetic_pair, parts, reference, tmp_path,
                                                 monkeypatch, dies_at) -> None:
    resume_dir = tmp_path / "run.resume"
    _kill_on_epoch(monkeypatch, dies_at)
    with pytest.raises(_Killed):
        _run(synthetic_pair, parts, _recipe(), resume_dir)
    _assert_no_pickle(resume_dir)
    monkeypatch.undo()

    trained = {"n": 0}
    real = BatchBuilder.batches

    def counting(*args, **kwargs):
        trained["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(BatchBuilder, "batches", counting)
    resumed = _run(synthetic_pair, parts, _recipe(), resume_dir)
    assert reference.stages[1].best_epoch == 2  # the restore of best weights is exercised
    assert trained["n"] == 5 - (dies_at - 1)  # finished epochs are not trained again
    _assert_same_weights(reference.model.state_dict(), resumed.model.state_dict())
    assert _histories(resumed) == _histories(reference)
    _assert_no_pickle(resume_dir)

    # a finished run's state resumes to the end without training anything
    trained["n"] = 0
    again = _run(synthetic_pair, parts, _recipe(), resume_dir)
    assert trained["n"] == 0
    _assert_same_weights(reference.model.state_dict(), again.model.state_dict())
    assert _histories(again) == _histories(reference)


def test_adapter_run_resumes_to_identical_weights(synthetic_pair, parts, tmp_path,
                                                  monkeypatch) -> None:
    recipe = Recipe.adapters(rank=2, epochs=3, batch_size=256, valid_users=50)
    straight = _run(synthetic_pair, parts, recipe)
    _kill_on_epoch(monkeypatch, 3)
    with pytest.raises(_Killed):
        _run(synthetic_pair, parts, recipe, tmp_path / "run.resume")
    monkeypatch.undo()
    resumed = _run(synthetic_pair, parts, recipe, tmp_path / "run.resume")
    assert resumed.adapters == straight.adapters and resumed.adapters
    _assert_same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert _histories(resumed) == _histories(straight)


def test_other_inputs_are_refused(synthetic_pair, parts, tmp_path, monkeypatch) -> None:
    resume_dir = tmp_path / "run.resume"
    _kill_on_epoch(monkeypatch, 2)
    with pytest.raises(_Killed):
        _run(synthetic_pair, parts, _recipe(), resume_dir)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="different recipe"):
        _run(synthetic_pair, parts, _recipe(seed=1), resume_dir)
    smaller = parts.train.subset(parts.train.user_ids % 2 == 0)
    with pytest.raises(CheckpointError, match="different train"):
        finetune(_model(synthetic_pair.source), smaller, _recipe(), valid=parts.valid,
                 base="runs/base", progress=False, resume_dir=resume_dir)
    with pytest.raises(CheckpointError, match="different base"):
        finetune(_model(synthetic_pair.source), parts.train, _recipe(),
                 valid=parts.valid, base="runs/other", progress=False, resume_dir=resume_dir)
    with pytest.raises(CheckpointError, match="different model"):
        finetune(tiny_two_tower(synthetic_pair.source), parts.train, _recipe(),
                 valid=parts.valid, base="runs/base", progress=False, resume_dir=resume_dir)


def test_cli_resumes_and_removes_the_resume_state(synthetic_pair, tmp_path, monkeypatch) -> None:
    base = tmp_path / "base"
    tiny_two_tower(synthetic_pair.source).save_pretrained(base)
    args = ["finetune", "--checkpoint", str(base), "--dataset", "synthetic-target:tiny",
            "--preset", "frozen-only", "-q", "--out"]
    assert main([*args, str(tmp_path / "straight")]) == 0
    _kill_on_epoch(monkeypatch, 3)
    with pytest.raises(_Killed):
        main([*args, str(tmp_path / "tuned")])
    assert (tmp_path / "tuned.resume").is_dir()
    monkeypatch.undo()
    assert main([*args, str(tmp_path / "tuned")]) == 0
    assert not (tmp_path / "tuned.resume").exists()
    _assert_same_weights(load_pretrained(tmp_path / "straight").state_dict(),
                         load_pretrained(tmp_path / "tuned").state_dict())

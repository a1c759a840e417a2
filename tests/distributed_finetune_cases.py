"""Sharded fine-tuning stopped and resumed, as each rank of the ``training`` job runs it
(``distributed_cases.py``): an uninterrupted run, and the same run stopped right after its
first between-stages save, resumed and stopped again right after its first save inside a
stage, then resumed to the end. Every rank stops at the same point (each save is a
collective), as a killed job's ranks would all be gone."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from recft.data import split, synthetic
from recft.finetune import Recipe, finetune
from recft.finetune.recipe import Stage
from recft.models.checkpoint import load_pretrained
from recft.train.distributed import Distributed

# frozen, then full: a stage of new parts only, and one over every (sharded) table
RECIPE = Recipe(stages=[
    Stage("frozen", epochs=1, trainable="new", learning_rate=3e-3,
          early_stopping_metric="ndcg@10", patience=3),
    Stage("full", epochs=2, trainable="all", learning_rate=1e-3, pretrained_lr_scale=0.1,
          early_stopping_metric="ndcg@10", patience=3)])
SHARDING = {"item_id": "row_wise", "user_id": "column_wise"}


class Stopped(Exception):
    """Stands for the kill of every rank right after a save."""


@contextlib.contextmanager
def saves_through(module: str, stop: bool) -> Iterator[list[int]]:
    """Count the ``save_sharded_state`` calls made through ``module``
    (``recft.finetune.sharded_resume``: between stages; ``recft.train.sharded_state``:
    inside a stage); with ``stop``, raise ``Stopped`` right after the first."""
    import importlib

    owner = importlib.import_module(module)
    original, calls = owner.save_sharded_state, []

    def counted(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if stop:
            raise Stopped

    owner.save_sharded_state = counted
    try:
        yield calls
    finally:
        owner.save_sharded_state = original


def case_finetune_resume(context: Distributed, out: Path, checkpoint: Path) -> dict:
    target = split(synthetic("movies", size="tiny", seed=0).target, "random:0.8,0.1,0.1",
                   seed=0)

    def run(resume_dir: Path | None):
        return finetune(load_pretrained(checkpoint), target.train, RECIPE, valid=target.valid,
                        progress=False, resume_dir=resume_dir, distributed=context,
                        sharding=SHARDING)

    whole = run(None)
    resume = out / "finetune.resume"
    stops = []  # where each stopped run left the state: (stage, inside it?)
    for module in ("recft.finetune.sharded_resume", "recft.train.sharded_state"):
        with saves_through(module, stop=True), contextlib.suppress(Stopped):
            run(resume)
        context.barrier()  # rank 0 has swapped the state in
        identity = json.loads((resume / "state" / "state.json").read_text())["identity"]
        stops.append([identity["stage"], identity["inside_stage"]])
    with saves_through("recft.train.sharded_state", stop=False) as epochs_trained:
        resumed = run(resume)
    expected, found = whole.model.state_dict(), resumed.model.state_dict()
    return {"finetune_stops": stops, "finetune_epochs_after_resume": len(epochs_trained),
            "finetune_diff": max(float((expected[k].double() - found[k].double()).abs().max())
                                 for k in expected),
            "finetune_keys_equal": sorted(expected) == sorted(found),
            "finetune_moved": max(float((expected[k].double() - v.double()).abs().max())
                                  for k, v in load_pretrained(checkpoint).state_dict().items()
                                  if k in expected and expected[k].shape == v.shape),
            "finetune_losses": [[h.loss for h in r.stages] for r in (whole, resumed)],
            "finetune_finite": all(bool(torch.isfinite(v).all()) for v in found.values()
                                   if v.is_floating_point())}


__all__ = ["case_finetune_resume"]

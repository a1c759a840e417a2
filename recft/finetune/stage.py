"""One fine-tuning stage as a setup over ``recft.train.fit``: what trains, how fast, on what loss."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from recft.finetune.freezing import resolve_trainable, set_trainable, unfreeze_groups
from recft.finetune.recipe import Recipe, Stage
from recft.models.heads import HeadBatch
from recft.models.roles import ParameterRoles
from recft.train.batches import Batch, BatchBuilder
from recft.train.fit import FitSettings, LoopState, fit
from recft.train.history import History
from recft.train.objectives import retrieval_loss
from recft.train.optimizers import OptimizerSettings, Optimizers

if TYPE_CHECKING:
    from recft.train.distributed import Distributed

Validator = Callable[[], dict[str, float]]


@dataclass
class Objective:
    """Everything the loss needs besides the batch: recipe, temperature, per-example data."""

    recipe: Recipe
    temperature: float
    ratings: np.ndarray | None  # (N,) ratings / counts of the training interactions
    implicit: bool  # no graded feedback: binary heads train against shuffled negatives

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Scalar loss of one batch: retrieval loss plus every task head's loss."""
        recipe = self.recipe
        user_emb, item_emb = model(batch.user_features, batch.item_features)
        total = user_emb.new_zeros(())
        if recipe.loss in ("sampled_softmax", "bpr"):
            total = total + retrieval_loss(model, batch, recipe.loss, self.temperature,
                                           embeddings=(user_emb, item_emb))
        heads = model.task_heads() if hasattr(model, "task_heads") else {}
        if heads:
            weights = batch.weights if batch.weights is not None else torch.ones(len(batch))
            ratings = None
            if self.ratings is not None and batch.examples is not None:
                ratings = torch.from_numpy(
                    self.ratings[batch.examples.cpu().numpy()].astype(np.float32))
            for head in heads.values():
                total = total + self._head_loss(head, user_emb, item_emb, ratings, weights)
        return total

    def _head_loss(self, head: nn.Module, user_emb: torch.Tensor, item_emb: torch.Tensor,
                   ratings: torch.Tensor | None, weights: torch.Tensor) -> torch.Tensor:
        if self.implicit or ratings is None:
            # observed pairs are positives; each user paired with another row's item is not
            negatives = item_emb.roll(1, dims=0)
            outputs = torch.cat([head(user_emb, item_emb), head(user_emb, negatives)])
            labels = torch.cat([torch.ones(len(user_emb)), torch.zeros(len(user_emb))])
            batch = HeadBatch(None, labels, torch.cat([weights, weights]))
            return head.loss(outputs, batch)
        labels = (ratings >= self.recipe.rating_threshold).float()
        return head.loss(head(user_emb, item_emb), HeadBatch(ratings, labels, weights))


def run_stage(model: nn.Module, stage: Stage, builder: BatchBuilder, objective: Objective,
              roles: ParameterRoles, *, seed: int, epoch_offset: int = 0,
              validate: Validator | None = None, progress: bool = True, verbose: bool = False,
              start: LoopState | None = None, save: Callable[[LoopState], None] | None = None,
              device: str = "cpu", distributed: Distributed | None = None,
              sharding: Mapping[str, str] | None = None,
              sharded_resume: Callable[[Any], tuple[LoopState | None, Any]] | None = None
              ) -> History:
    """Train ``model`` for one stage (in place) on ``fit`` and return its history.

    Frozen parameters get no gradient and no optimizer state (``set_trainable``); trainable
    tables train with the fused row-wise Adagrad, pretrained parameters at
    ``pretrained_lr_scale`` times the stage's rates (grown tables' new rows at the full
    rate). With ``gradual_unfreeze_every`` the stage starts with the new parts and releases
    one more pretrained group (top of the towers first, tables last) every that many
    epochs. With ``early_stopping_metric`` and ``validate``, the starting weights are a
    candidate too, training stops after ``patience`` epochs without improvement, and the
    best weights seen are restored.

    Args:
        roles: which parameters (and table rows) are pretrained.
        epoch_offset: added to the epoch index for batch order, so stages differ.
        start / save: resumable state, as in ``fit``.
        distributed / sharding: run as one rank of a torchrun job, tables sharded by DMP
            (``recft.train.sharded_optimizers``); ``builder`` makes the global batches.
        sharded_resume: sharded, ``start`` and ``save`` come from this hook, given the
            stage's sharded optimizers (``ShardedFinetuneResume.stage``).
    """
    options = {"freeze_tower_layers": stage.freeze_tower_layers,
               "train_only_new_rows": stage.train_only_new_rows}
    names = resolve_trainable(model, stage.trainable, roles, **options)
    groups = (unfreeze_groups(model, names, roles) if stage.gradual_unfreeze_every else None) \
        or [sorted(names)]
    active = set(groups[0])
    report = set_trainable(model, active, roles, verbose=verbose, **options)
    widest = {"report": report, "released": 1}
    optimizer_settings = OptimizerSettings(
        embedding_optimizer="rowwise_adagrad", embedding_lr=stage.embedding_learning_rate,
        dense_optimizer="adamw", dense_lr=stage.learning_rate, weight_decay=stage.weight_decay,
        pretrained_lr_scale=stage.pretrained_lr_scale, warmup_steps=stage.warmup_steps,
    )
    if distributed is None:
        optimizers = Optimizers(model, optimizer_settings, trainable=report.trainable_names,
                                roles=roles, masked_rows=report.masked_rows)
    else:
        from recft.train.sharded_optimizers import ShardedOptimizers

        optimizers = ShardedOptimizers(model, optimizer_settings, context=distributed,
                                       sharding=sharding, trainable=report.trainable_names,
                                       roles=roles, masked_rows=report.masked_rows)
        distributed.seed_rank(seed + epoch_offset)
        progress = progress and distributed.is_main
        if sharded_resume is not None:
            start, save = sharded_resume(optimizers)

    def widen(epoch: int) -> int:
        every, released = stage.gradual_unfreeze_every, widest["released"]
        if every and epoch and epoch % every == 0 and released < len(groups):
            active.update(groups[released])
            widest["released"] = released + 1
            with optimizers.plain_tables():
                widened = set_trainable(model, active, roles, verbose=verbose, **options)
            optimizers.masked_rows.update(widened.masked_rows)
            optimizers.add(widened.trainable_names)
            widest["report"] = widened
        return widest["report"].trainable_parameters

    metric = stage.early_stopping_metric if validate is not None else None
    settings = FitSettings(
        name=stage.name, epochs=stage.epochs, seed=seed, epoch_offset=epoch_offset,
        early_stopping_metric=metric, patience=stage.patience,
        restore_best=stage.restore_best, start_is_candidate=metric is not None, device=device,
    )
    history = fit(model, builder, objective, optimizers, settings, validate=validate,
                  on_epoch_start=widen, start=start, save=save, progress=progress,
                  distributed=distributed)
    final = widest["report"]
    history.trainable_parameters = final.trainable_parameters
    history.total_parameters = final.total_parameters
    history.groups = final.to_dict()["groups"]
    return history


__all__ = ["Objective", "run_stage"]

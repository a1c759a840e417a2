"""The training loop of one fine-tuning stage: freeze, optimise, validate, stop early, restore."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from recft.errors import TrainingError
from recft.finetune.freezing import (
    remove_row_masks,
    resolve_trainable,
    set_trainable,
    unfreeze_groups,
)
from recft.finetune.heads import HeadBatch
from recft.finetune.optimizers import StageOptimizers
from recft.finetune.recipe import Recipe, Stage
from recft.train.batches import Batch, BatchBuilder
from recft.train.losses import bpr_loss, sampled_softmax_loss

Validator = Callable[[], dict[str, float]]


@dataclass
class StageHistory:
    """What one stage did (JSON-ready through ``to_dict``).

    Attributes:
        loss: mean training loss per epoch.
        valid: validation metrics after each epoch (empty without validation data).
        trainable_parameters: scalars the stage could change (at its widest, with gradual
            unfreezing); ``total_parameters``: all scalars of the model.
        groups: per parameter group ``{"trainable", "total"}`` at the stage's widest.
        examples_seen: training examples processed; ``wall_seconds`` includes validation.
        best_epoch: 1-based epoch whose weights were kept (with ``restore_best``); 0 when
            no epoch beat the weights the stage started from.
    """

    name: str
    loss: list[float] = field(default_factory=list)
    valid: list[dict[str, float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    trainable_per_epoch: list[int] = field(default_factory=list)
    trainable_parameters: int = 0
    total_parameters: int = 0
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    examples_seen: int = 0
    wall_seconds: float = 0.0
    initial_valid: dict[str, float] | None = None  # before the first epoch
    best_epoch: int | None = None  # 0: the starting weights were never beaten
    best_metric: float | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StageProgress:
    """A stage after a finished epoch: what a resumed run needs to continue it exactly.

    Attributes:
        history: the stage's history so far.
        epochs_done: finished epochs (the index of the next one).
        bad_epochs: epochs since the early-stopping metric last improved.
        best_state: the best weights so far (with ``restore_best`` and validation), else None.
        elapsed: wall seconds the stage has taken so far (its ``wall_seconds`` keeps counting).
        optimizer_state: ``StageOptimizers.state_tensors()`` to load when resuming; None when
            the progress is being saved (the live optimizers are passed alongside).
    """

    history: StageHistory
    epochs_done: int
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    elapsed: float = 0.0
    optimizer_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None


EpochCallback = Callable[[StageProgress, StageOptimizers], None]


@dataclass
class Objective:
    """Everything the loss needs besides the batch: recipe, temperature, per-example data."""

    recipe: Recipe
    temperature: float
    ratings: np.ndarray | None  # (N,) ratings / counts of the training interactions
    implicit: bool  # no graded feedback: binary heads train against shuffled negatives

    def loss(self, model: nn.Module, batch: Batch, examples: np.ndarray) -> torch.Tensor:
        """Scalar loss of one batch: retrieval loss plus every task head's loss."""
        recipe = self.recipe
        user_emb, item_emb = model(batch.user_features, batch.item_features)
        total = user_emb.new_zeros(())
        if recipe.loss in ("sampled_softmax", "bpr"):
            negatives = None
            if batch.negative_features is not None:
                negatives = model.encode_item_features(batch.negative_features)
            if recipe.loss == "sampled_softmax":
                total = total + sampled_softmax_loss(
                    user_emb, item_emb, self.temperature, log_q=batch.log_q,
                    extra_negatives=negatives, extra_log_q=batch.negative_log_q,
                    item_ids=batch.item_ids, extra_item_ids=batch.negative_ids,
                    weights=batch.weights,
                )
            else:
                positive = (user_emb * item_emb).sum(-1) / self.temperature
                negative = user_emb @ negatives.T / self.temperature
                mask = batch.item_ids.unsqueeze(1) != batch.negative_ids.unsqueeze(0)
                total = total + bpr_loss(positive, negative, batch.weights, mask=mask)
        heads = model.task_heads() if hasattr(model, "task_heads") else {}
        if heads:
            weights = batch.weights if batch.weights is not None else torch.ones(len(batch))
            ratings = None if self.ratings is None else torch.from_numpy(
                self.ratings[examples].astype(np.float32))
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


def run_stage(model: nn.Module, stage: Stage, builder: BatchBuilder, objective: Objective, *,
              seed: int, epoch_offset: int = 0, validate: Validator | None = None,
              progress: bool = True, verbose: bool = False, resume: StageProgress | None = None,
              on_epoch: EpochCallback | None = None) -> StageHistory:
    """Train ``model`` for one stage (in place) and return its history.

    Frozen parameters get no gradient and no optimizer state (``set_trainable``). With
    ``gradual_unfreeze_every`` the stage starts with the new parts and unfreezes one more
    pretrained group (top of the towers first, tables last) every that many epochs. With
    ``early_stopping_metric`` and ``validate``, the starting weights are validated first,
    training stops after ``patience`` epochs without improvement, and the best weights
    seen (possibly the starting ones) are restored.

    Args:
        epoch_offset: added to the epoch index for batch order, so stages differ.
        validate: returns metrics on held-out data (e.g. ``{"ndcg@10": ...}``).
        resume: continue a stage saved by ``on_epoch`` (the model must already hold the
            weights saved with it); finished epochs are skipped.
        on_epoch: called after every epoch (after the early-stopping decision) with the
            stage's progress and live optimizers, e.g. to checkpoint them.
    """
    started = time.perf_counter() - (resume.elapsed if resume else 0.0)
    history = resume.history if resume else StageHistory(stage.name)
    first = resume.epochs_done if resume else 0
    options = {"freeze_tower_layers": stage.freeze_tower_layers,
               "train_only_new_rows": stage.train_only_new_rows}
    names = resolve_trainable(model, stage.trainable, **options)
    groups = (unfreeze_groups(model, names) if stage.gradual_unfreeze_every else None) \
        or [sorted(names)]
    released = 1
    active = set(groups[0])
    report = set_trainable(model, active, verbose=verbose, **options)
    widest = report
    optimizers = StageOptimizers(model, report.trainable_names, stage)

    def widen(epoch: int, loud: bool) -> None:
        nonlocal released, report, widest
        every = stage.gradual_unfreeze_every
        if every and epoch and epoch % every == 0 and released < len(groups):
            active.update(groups[released])
            released += 1
            report = set_trainable(model, active, verbose=loud, **options)
            widest = report
            optimizers.add(report.trainable_names)

    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    metric = stage.early_stopping_metric if validate is not None else None
    if resume is not None:
        # replay the finished epochs' unfreezing so the optimizers have the saved layout
        for epoch in range(1, first):
            widen(epoch, False)
        if resume.optimizer_state is not None:
            optimizers.load_state_tensors(*resume.optimizer_state)
        best_state, bad_epochs = resume.best_state, resume.bad_epochs
    elif metric is not None:
        # the weights the stage starts from are a candidate too: on a small target an
        # epoch can make things worse, and then the stage should change nothing
        history.initial_valid = validate()
        _check_metric(metric, history.initial_valid)
        history.best_metric, history.best_epoch = history.initial_valid[metric], 0
        if stage.restore_best:
            best_state = _snapshot(model)
    try:
        for epoch in range(first, stage.epochs):
            if history.stopped_early:
                break  # a resumed stage that had already stopped
            widen(epoch, verbose)
            history.trainable_per_epoch.append(report.trainable_parameters)
            loss, examples, seconds = _train_epoch(model, builder, objective, optimizers,
                                                   seed, epoch_offset + epoch, stage, progress)
            history.loss.append(loss)
            history.examples_seen += examples
            history.epoch_seconds.append(seconds)
            if validate is not None:
                metrics = validate()
                history.valid.append(metrics)
                if metric is not None:
                    _check_metric(metric, metrics)
                    if metrics[metric] > history.best_metric:
                        history.best_metric, history.best_epoch = metrics[metric], epoch + 1
                        bad_epochs = 0
                        if stage.restore_best:
                            best_state = _snapshot(model)
                    else:
                        bad_epochs += 1
                        history.stopped_early = bad_epochs >= stage.patience
            if on_epoch is not None:
                on_epoch(StageProgress(history, epoch + 1, bad_epochs, best_state,
                                       time.perf_counter() - started), optimizers)
    finally:
        remove_row_masks(model)
    if best_state is not None:
        model.load_state_dict(best_state)
    history.trainable_parameters = widest.trainable_parameters
    history.total_parameters = widest.total_parameters
    history.groups = widest.to_dict()["groups"]
    history.wall_seconds = time.perf_counter() - started
    return history


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_metric(metric: str, metrics: dict[str, float]) -> None:
    if metric not in metrics:
        raise TrainingError(f"early_stopping_metric {metric!r} is not among the validation "
                            f"metrics {sorted(metrics)}")


def _train_epoch(model: nn.Module, builder: BatchBuilder, objective: Objective,
                 optimizers: StageOptimizers, seed: int, epoch: int, stage: Stage,
                 progress: bool) -> tuple[float, int, float]:
    """One pass over the training data; returns (mean loss, examples, seconds)."""
    tick = time.perf_counter()
    model.train()
    order = builder.epoch_order(epoch, seed)
    loss_sum, examples = 0.0, 0
    bar = tqdm(range(builder.num_batches), disable=not progress, unit="batch",
               desc=f"{stage.name} epoch {epoch + 1}", leave=False)
    for step in bar:
        rows = order[step * builder.batch_size:(step + 1) * builder.batch_size]
        if len(rows) < 2:
            continue  # in-batch softmax needs another row to contrast with
        batch = builder.build(rows, np.random.default_rng([seed, epoch, step, 1]))
        loss = objective.loss(model, batch, rows)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(f"degenerate loss {value} in stage {stage.name!r}, epoch "
                                f"{epoch + 1}, step {step + 1}; lower the learning rates")
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
        loss_sum += value * len(rows)
        examples += len(rows)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum / max(examples, 1):.4f}")
    bar.close()
    return loss_sum / max(examples, 1), examples, time.perf_counter() - tick

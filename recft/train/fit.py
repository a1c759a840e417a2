"""fit(): the one epoch loop of recft; pretraining and every fine-tuning stage run on it.

It owns what every training run needs and nothing else: epochs over a ``BatchBuilder``,
a progress bar with loss and examples/s, the degenerate-loss guard, validation after each
epoch, early stopping with best-weights restore (the starting weights may be a candidate),
one ``History``, device placement, and resumable state (model, optimizers, every RNG,
early-stopping state and progress) handed to a ``save`` callback every N steps, every N
seconds and after every epoch. What trains, with which optimizer and loss, is the
caller's setup: an ``Optimizers`` and an objective.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

from recft.errors import CheckpointError, TrainingError
from recft.train.batches import Batch, BatchBuilder
from recft.train.history import History
from recft.train.optimizers import Optimizers
from recft.train.rng import rng_state, set_rng_state
from recft.train.state import split_prefix

if TYPE_CHECKING:
    from recft.train.distributed import Distributed

Objective = Callable[[nn.Module, Batch], torch.Tensor]
Validator = Callable[[], dict[str, float]]
# called at the start of every epoch (0-based) before its first step; returns the number
# of trainable scalars for the history (gradual unfreezing), or None
EpochStart = Callable[[int], "int | None"]


@dataclass
class FitSettings:
    """The schedule of one training run.

    Attributes:
        name: shown in progress bars, errors and the history.
        epoch_offset: added to the epoch index for batch order, so successive runs over
            the same data (fine-tuning stages) see different orders.
        early_stopping_metric: validation metric to maximise (needs a validator).
        start_is_candidate: validate the starting weights too and keep them if no epoch
            beats them (fine-tuning: on a small target an epoch can make things worse).
        checkpoint_every: steps between resume checkpoints (0: none mid-epoch).
        checkpoint_seconds: seconds between resume checkpoints (0: none mid-epoch), so a
            kill inside a long epoch loses at most that much.
    """

    name: str = "train"
    epochs: int = 1
    seed: int = 0
    epoch_offset: int = 0
    early_stopping_metric: str | None = None
    patience: int = 3
    restore_best: bool = True
    start_is_candidate: bool = False
    checkpoint_every: int = 0
    checkpoint_seconds: float = 600.0
    device: str = "cpu"


@dataclass
class LoopState:
    """Everything a killed run needs to continue exactly: named tensors (``model/``,
    ``optim/``, ``best/``, ``rng/``) and JSON-ready metadata."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def fit(model: nn.Module, builder: BatchBuilder, objective: Objective,
        optimizers: Optimizers, settings: FitSettings, *, validate: Validator | None = None,
        on_epoch_start: EpochStart | None = None, start: LoopState | None = None,
        save: Callable[[LoopState], None] | None = None, progress: bool = True,
        distributed: Distributed | None = None) -> History:
    """Train ``model`` in place; return its history.

    ``optimizers`` is closed at the end (the model leaves with plain torchrec collections
    holding the trained weights) and, with validation, the best weights are loaded.

    Args:
        objective: ``(model, batch) -> scalar loss``.
        validate: metrics on held-out data after each epoch (under ``no_grad``).
        on_epoch_start: a per-epoch hook (gradual unfreezing); replayed for the finished
            epochs when resuming, so the optimizers get the saved layout.
        start: a state a previous ``save`` received: continue from it.
        save: receives the resumable state at checkpoints.
        distributed: run as one rank of a job (``recft.train.distributed``): this rank
            trains on its slice of every global batch (``builder``'s batches), ``validate``
            runs on every rank (it may split the users: ``recft.train.rank_evaluation``)
            and rank 0's metrics decide for all. ``optimizers`` must be the job's
            (``ShardedOptimizers``).
    """
    run = _Run(model, builder, objective, optimizers, settings, validate, on_epoch_start, save,
               distributed)
    try:
        if start is not None:
            run.restore(start)
        elif settings.start_is_candidate and validate is not None:
            run.validate_start()
        run.epochs(progress)
        run.history.optimizer_state_bytes = optimizers.state_bytes()
    finally:
        optimizers.close()
    if run.best is not None and settings.restore_best:
        model.load_state_dict(run.best)
    run.history.wall_seconds = run.wall_seconds()
    return run.history


class _Run:
    """The mutable state of one ``fit``; one place saves and restores it."""

    def __init__(self, model: nn.Module, builder: BatchBuilder, objective: Objective,
                 optimizers: Optimizers, settings: FitSettings, validate: Validator | None,
                 on_epoch_start: EpochStart | None,
                 save: Callable[[LoopState], None] | None,
                 distributed: Distributed | None = None) -> None:
        self.model, self.builder, self.objective = model, builder, objective
        self.distributed = distributed
        if distributed is not None:
            from recft.train.rank_batches import RankBatches

            self.builder = RankBatches(builder, distributed.rank, distributed.world_size)
        self.optimizers, self.settings, self.validator = optimizers, settings, validate
        self.on_epoch_start, self.save_callback = on_epoch_start, save
        self.metric = settings.early_stopping_metric if validate is not None else None
        self.history = History(settings.name)
        self.best: dict[str, torch.Tensor] | None = None
        self.epoch, self.step, self.bad_epochs = 0, 0, 0
        self.loss_sum, self.examples, self.seconds = 0.0, 0, 0.0  # of the current epoch
        self.previous_wall = 0.0  # wall time of the runs this one resumes
        self.started = time.perf_counter()
        self.last_save = time.perf_counter()

    def wall_seconds(self) -> float:
        return self.previous_wall + time.perf_counter() - self.started

    # ------------------------------------------------------------------ training
    def epochs(self, progress: bool) -> None:
        settings, builder = self.settings, self.builder
        while self.epoch < settings.epochs and not self.history.stopped_early:
            if self.step == 0 and self.on_epoch_start is not None:
                count = self.on_epoch_start(self.epoch)
                if count is not None:
                    self.history.trainable_per_epoch.append(count)
            bar = tqdm(total=builder.num_batches, initial=self.step, disable=not progress,
                       desc=f"{settings.name} epoch {self.epoch + 1}/{settings.epochs}",
                       unit="batch", leave=False)
            self.model.train()
            tick = time.perf_counter()
            order_epoch = settings.epoch_offset + self.epoch
            for batch in builder.batches(order_epoch, settings.seed, self.step):
                if self._trains(batch):
                    loss = self._train_step(batch.to(settings.device))
                    self.loss_sum += loss * len(batch)
                    self.examples += len(batch)
                self.step += 1
                bar.update()
                if self.step % 20 == 0 or self.step == builder.num_batches:
                    now = self.seconds + time.perf_counter() - tick
                    bar.set_postfix(loss=f"{self.loss_sum / max(self.examples, 1):.4f}",
                                    ex_per_s=f"{self.examples / max(now, 1e-9):,.0f}")
                if self.step < builder.num_batches and self._checkpoint_due():
                    self.seconds += time.perf_counter() - tick
                    tick = time.perf_counter()
                    self.save()
            bar.close()
            self.seconds += time.perf_counter() - tick
            self._end_epoch()
            if progress:
                tqdm.write(self._summary())
            self.save()

    def _trains(self, batch: Batch) -> bool:
        """In-batch softmax needs another row to contrast with; every rank decides alike."""
        if self.distributed is None:
            return len(batch) >= 2
        return self.builder.smallest_slice >= 2  # type: ignore[attr-defined]

    def _checkpoint_due(self) -> bool:
        if self.save_callback is None:
            return False
        every, seconds = self.settings.checkpoint_every, self.settings.checkpoint_seconds
        if every and self.step % every == 0:
            return True
        late = bool(seconds) and time.perf_counter() - self.last_save >= seconds
        if self.distributed is None:
            return late
        # clocks differ between ranks: look every 20 steps, and save if any rank is late
        return self.step % 20 == 0 and self.distributed.any(late)

    def _train_step(self, batch: Batch) -> float:
        loss = self.objective(self.model, batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(f"degenerate loss {value} in {self.settings.name!r}, epoch "
                                f"{self.epoch + 1}, step {self.step + 1}; lower the "
                                "learning rates")
        if self.distributed is not None:
            # gradients are averaged over ranks: this makes them the global batch's
            loss = loss * self.builder.loss_scale  # type: ignore[attr-defined]
        self.optimizers.zero_grad()
        loss.backward()  # fused embedding tables are updated here
        self.optimizers.step()
        return value

    def _end_epoch(self) -> None:
        if self.distributed is not None:  # the epoch's loss and examples over all ranks
            self.loss_sum, examples = self.distributed.sum([self.loss_sum, self.examples])
            self.examples = int(examples)
        history = self.history
        history.loss.append(self.loss_sum / max(self.examples, 1))
        history.epoch_seconds.append(self.seconds)
        history.throughput.append(self.examples / max(self.seconds, 1e-9))
        history.examples_seen += self.examples
        self.epoch, self.step = self.epoch + 1, 0
        self.loss_sum, self.examples, self.seconds = 0.0, 0, 0.0
        if self.validator is None:
            return
        metrics = self._validate()
        history.valid.append(metrics)
        if self.metric is None:
            return
        value = metrics[self.metric]
        if history.best_metric is None or value > history.best_metric:
            history.best_metric, history.best_epoch, self.bad_epochs = value, self.epoch, 0
            self.best = self._snapshot() if self.settings.restore_best else None
        else:
            self.bad_epochs += 1
            history.stopped_early = self.bad_epochs >= self.settings.patience

    def validate_start(self) -> None:
        metrics = self._validate()
        self.history.initial_valid = metrics
        if self.metric is not None:
            self.history.best_metric, self.history.best_epoch = metrics[self.metric], 0
            self.best = self._snapshot() if self.settings.restore_best else None

    def _validate(self) -> dict[str, float]:
        assert self.validator is not None
        with self.optimizers.plain_tables(), torch.no_grad():
            metrics = self.validator()
            if self.distributed is not None:  # every rank takes rank 0's decision
                metrics = self.distributed.broadcast_object(metrics)
        if self.metric is not None and self.metric not in metrics:
            raise TrainingError(f"early_stopping_metric {self.metric!r} is not among the "
                                f"validation metrics {sorted(metrics)}")
        return metrics

    def _snapshot(self) -> dict[str, torch.Tensor]:
        with self.optimizers.plain_tables():
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _summary(self) -> str:
        history = self.history
        line = (f"{self.settings.name} epoch {self.epoch}: loss {history.loss[-1]:.4f}, "
                f"{history.throughput[-1]:,.0f} examples/s")
        if history.valid and self.metric is not None:
            line += f", valid {self.metric} {history.valid[-1][self.metric]:.4f}"
            line += " (best)" if history.best_epoch == self.epoch else ""
        return line

    # ------------------------------------------------------------------ resume state
    def save(self) -> None:
        if self.save_callback is None:
            return
        tensors = {f"model/{k}": v for k, v in self.optimizers.model_state().items()}
        optim_tensors, optim_meta = self.optimizers.state_tensors()
        tensors.update({f"optim/{k}": v for k, v in optim_tensors.items()})
        tensors.update({f"best/{k}": v for k, v in (self.best or {}).items()})
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        self.history.wall_seconds = self.wall_seconds()
        meta = {
            "epoch": self.epoch, "step": self.step, "bad_epochs": self.bad_epochs,
            "loss_sum": self.loss_sum, "examples": self.examples, "seconds": self.seconds,
            "history": self.history.to_dict(), "optimizers": optim_meta, "rng": rng_meta,
            "has_best": self.best is not None,
        }
        self.save_callback(LoopState(tensors, meta))
        self.last_save = time.perf_counter()

    def restore(self, state: LoopState) -> None:
        meta, tensors = state.meta, state.tensors
        if self.on_epoch_start is not None:
            # the optimizers must have the saved layout before their state is loaded
            for epoch in range(meta["epoch"] + (1 if meta["step"] else 0)):
                self.on_epoch_start(epoch)
        try:
            self.optimizers.load_model_state(split_prefix(tensors, "model/"))
        except RuntimeError as error:
            raise CheckpointError(f"saved training state does not fit the model: "
                                  f"{error}") from None
        self.optimizers.load_state_tensors(split_prefix(tensors, "optim/"), meta["optimizers"])
        self.best = split_prefix(tensors, "best/") if meta["has_best"] else None
        set_rng_state(tensors, meta["rng"])
        self.epoch, self.step, self.bad_epochs = meta["epoch"], meta["step"], meta["bad_epochs"]
        self.loss_sum, self.examples = meta["loss_sum"], meta["examples"]
        self.seconds = meta["seconds"]
        self.history = History.from_dict(meta["history"])
        self.previous_wall = self.history.wall_seconds


__all__ = ["FitSettings", "LoopState", "Objective", "fit"]

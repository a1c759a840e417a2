"""Pretraining loop: TwoTower on interactions, with validation, early stopping and resume."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from recft.config import ConfigError
from recft.data.interactions import Interactions
from recft.errors import CheckpointError, TrainingError
from recft.models.architecture import TwoTowerConfig
from recft.models.two_tower import TwoTower
from recft.train.batches import Batch, BatchBuilder
from recft.train.losses import bpr_loss, sampled_softmax_loss
from recft.train.optim import TrainingOptimizers
from recft.train.settings import History, PretrainConfig
from recft.train.state import (
    as_json,
    data_fingerprint,
    load_training_state,
    save_training_state,
    split_prefix,
)

# fields that may change between a run and its resumption without changing its result
_RESUMABLE_CHANGES = {"epochs", "patience", "checkpoint_every"}


def pretrain(
    interactions: Interactions,
    config: TwoTowerConfig | None = None,
    valid: Interactions | None = None,
    pretrain_config: PretrainConfig | None = None,
    *,
    resume_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[TwoTower, History]:
    """Train a ``TwoTower`` from scratch on ``interactions``.

    The same seed gives the same weights. With ``resume_dir``, state is checkpointed there
    (every ``checkpoint_every`` steps and after each epoch) and a run restarted with the
    same directory continues from the last checkpoint to the same final weights.

    Args:
        interactions: training interactions (and item/user features).
        config: architecture; sizes are filled from the data. Default ``TwoTowerConfig()``.
        valid: held-out interactions, evaluated by full ranking excluding training items
            after each epoch for early stopping; the best epoch's weights are restored.
        pretrain_config: the process; default ``PretrainConfig()``.
        resume_dir: folder for resumable state (created if needed).
        progress: show a progress bar with the loss and examples/s.

    Returns:
        The trained model (eval mode, plain torchrec collections) and its ``History``.
    """
    settings = pretrain_config or PretrainConfig()
    torch.manual_seed(settings.seed)
    item_features, user_features = interactions.item_features, interactions.user_features
    model = TwoTower(
        config or TwoTowerConfig(), interactions.user_vocab, interactions.item_vocab,
        item_features=item_features.categorical if item_features is not None else None,
        user_features=user_features.categorical if user_features is not None else None,
    ).to(settings.device)
    builder = BatchBuilder.for_model(
        model, interactions, batch_size=settings.batch_size,
        num_negatives=settings.num_negatives, logq_correction=settings.logq_correction,
        user_id_dropout=settings.user_id_dropout, history_dropout=settings.history_dropout,
    )
    optimizers = TrainingOptimizers(model, settings.embedding_optimizer, settings.embedding_lr,
                                    settings.dense_optimizer, settings.lr, settings.weight_decay)
    loop = _Loop(model, builder, optimizers, settings, interactions, valid, resume_dir)
    try:
        loop.restore()
        loop.run(progress)
    finally:
        optimizers.close()
    if loop.best is not None:
        model.load_state_dict(loop.best)
    loop.history.wall_time = loop.wall_time()
    return model.eval(), loop.history


class _Loop:
    """The mutable state of one pretraining run; one place saves and restores it."""

    def __init__(self, model: TwoTower, builder: BatchBuilder, optimizers: TrainingOptimizers,
                 settings: PretrainConfig, train: Interactions, valid: Interactions | None,
                 resume_dir: str | Path | None) -> None:
        self.model, self.builder, self.optimizers = model, builder, optimizers
        self.settings, self.train, self.valid = settings, train, valid
        self.resume_dir = resume_dir
        self.temperature = settings.temperature or model.config.temperature
        self.history = History()
        self.best: dict[str, torch.Tensor] | None = None
        self.epoch, self.step, self.bad_epochs = 0, 0, 0
        self.loss_sum, self.examples, self.seconds = 0.0, 0, 0.0  # of the current epoch
        self.previous_wall = 0.0  # wall time of the runs this one resumes
        self.started = time.perf_counter()

    def wall_time(self) -> float:
        return self.previous_wall + time.perf_counter() - self.started

    # ------------------------------------------------------------------ training
    def run(self, progress: bool) -> None:
        settings = self.settings
        while self.epoch < settings.epochs and not self.history.stopped_early:
            bar = tqdm(total=self.builder.num_batches, initial=self.step, disable=not progress,
                       desc=f"epoch {self.epoch + 1}/{settings.epochs}", unit="batch", leave=False)
            self.model.train()
            tick = time.perf_counter()
            for batch in self.builder.batches(self.epoch, settings.seed, self.step):
                loss = self._train_step(batch.to(settings.device))
                self.loss_sum += loss * len(batch)
                self.examples += len(batch)
                self.step += 1
                bar.update()
                if self.step % 20 == 0 or self.step == self.builder.num_batches:
                    now = self.seconds + time.perf_counter() - tick
                    bar.set_postfix(loss=f"{self.loss_sum / self.examples:.4f}",
                                    ex_per_s=f"{self.examples / max(now, 1e-9):,.0f}")
                if settings.checkpoint_every and self.step % settings.checkpoint_every == 0:
                    self.seconds += time.perf_counter() - tick
                    tick = time.perf_counter()
                    self.save()
            bar.close()
            self.seconds += time.perf_counter() - tick
            self._end_epoch()
            if progress:
                tqdm.write(self._summary())
            self.save()

    def _train_step(self, batch: Batch) -> float:
        user_emb, item_emb = self.model(batch.user_features, batch.item_features)
        negatives = None
        if batch.negative_features is not None:
            negatives = self.model.encode_item_features(batch.negative_features)
        if self.settings.loss == "softmax":
            loss = sampled_softmax_loss(
                user_emb, item_emb, self.temperature, log_q=batch.log_q,
                extra_negatives=negatives, extra_log_q=batch.negative_log_q,
                item_ids=batch.item_ids, extra_item_ids=batch.negative_ids, weights=batch.weights,
            )
        else:
            positive = (user_emb * item_emb).sum(-1) / self.temperature
            negative = user_emb @ negatives.T / self.temperature
            mask = batch.item_ids.unsqueeze(1) != batch.negative_ids.unsqueeze(0)
            loss = bpr_loss(positive, negative, batch.weights, mask=mask)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(f"degenerate loss {value} at epoch {self.epoch + 1}, step "
                                f"{self.step + 1}; lower the learning rates")
        self.optimizers.zero_grad()
        loss.backward()  # fused embedding tables are updated here
        self.optimizers.step()
        return value

    def _end_epoch(self) -> None:
        history = self.history
        history.loss.append(self.loss_sum / max(self.examples, 1))
        history.epoch_seconds.append(self.seconds)
        history.throughput.append(self.examples / max(self.seconds, 1e-9))
        self.epoch, self.step = self.epoch + 1, 0
        self.loss_sum, self.examples, self.seconds = 0.0, 0, 0.0
        if self.valid is None:
            return
        with self.optimizers.plain_tables():
            metrics = _validate(self.model, self.valid, self.train,
                                self.settings.early_stopping_metric)
        history.valid.append(metrics)
        value = metrics[self.settings.early_stopping_metric]
        if history.best_metric is None or value > history.best_metric:
            history.best_metric, history.best_epoch, self.bad_epochs = value, self.epoch, 0
            self.best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
            history.stopped_early = self.bad_epochs >= self.settings.patience

    def _summary(self) -> str:
        history = self.history
        line = (f"epoch {self.epoch}: loss {history.loss[-1]:.4f}, "
                f"{history.throughput[-1]:,.0f} examples/s")
        if history.valid:
            metric = self.settings.early_stopping_metric
            line += f", valid {metric} {history.valid[-1][metric]:.4f}"
            line += " (best)" if history.best_epoch == self.epoch else ""
        return line

    # ------------------------------------------------------------------ resume state
    def save(self) -> None:
        if self.resume_dir is None:
            return
        optim_tensors, optim_meta = self.optimizers.state_tensors()
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"optim/{k}": v for k, v in optim_tensors.items()})
        tensors.update({f"best/{k}": v for k, v in (self.best or {}).items()})
        tensors["rng/torch"] = torch.get_rng_state()
        self.history.wall_time = self.wall_time()
        meta = {
            "epoch": self.epoch, "step": self.step, "bad_epochs": self.bad_epochs,
            "loss_sum": self.loss_sum, "examples": self.examples, "seconds": self.seconds,
            "history": self.history.to_dict(), "optimizers": optim_meta,
            "model_config": self.model.config.to_dict(), "pretrain_config": self.settings.to_dict(),
            "data": data_fingerprint(self.train),
        }
        save_training_state(self.resume_dir, tensors, meta)

    def restore(self) -> None:
        if self.resume_dir is None:
            return
        state = load_training_state(self.resume_dir)
        if state is None:
            return
        tensors, meta = state
        self._check_compatible(meta)
        self.model.load_state_dict(split_prefix(tensors, "model/"))
        self.optimizers.load_state_tensors(split_prefix(tensors, "optim/"), meta["optimizers"])
        self.best = split_prefix(tensors, "best/") or None
        torch.set_rng_state(tensors["rng/torch"])
        self.epoch, self.step, self.bad_epochs = meta["epoch"], meta["step"], meta["bad_epochs"]
        self.loss_sum, self.examples = meta["loss_sum"], meta["examples"]
        self.seconds = meta["seconds"]
        self.history = History(**meta["history"])
        self.previous_wall = self.history.wall_time

    def _check_compatible(self, meta: dict[str, Any]) -> None:
        where = f"{self.resume_dir}: saved training state"
        if meta["model_config"] != as_json(self.model.config.to_dict()):
            raise CheckpointError(f"{where} is for another architecture: {meta['model_config']}")
        ours = as_json(self.settings.to_dict())
        changed = sorted(k for k, v in meta["pretrain_config"].items()
                         if k not in _RESUMABLE_CHANGES and ours.get(k) != v)
        if changed:
            raise CheckpointError(f"{where} used different settings for {changed}; "
                                  "use another resume_dir or the same PretrainConfig")
        if meta["data"] != data_fingerprint(self.train):
            raise CheckpointError(f"{where} is for other training data ({meta['data']})")


def _validate(model: TwoTower, valid: Interactions, train: Interactions,
              metric: str) -> dict[str, float]:
    """Full-ranking metrics at the early-stopping cut-off, training items excluded."""
    from recft.evaluate import evaluate  # heavy, and only needed with a validation set

    k = int(metric.split("@", 1)[1])
    names = sorted({"ndcg", "recall", metric.split("@", 1)[0]})
    result = evaluate(model, valid, exclude=train, ks=(k,), metrics=names)
    if metric not in result:
        raise ConfigError(f"early_stopping_metric {metric!r} is not among {sorted(result)}")
    return {key: float(value) for key, value in result.items() if "@" in key}

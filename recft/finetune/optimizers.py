"""Optimizers over exactly the trainable parameters, with discriminative LRs and warm-up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torchrec.optim import RowWiseAdagrad

from recft.errors import CheckpointError
from recft.finetune.freezing import ADAPTER_MARK, pretrained_names, table_parameter_names
from recft.finetune.recipe import Stage
from recft.train.state import load_optimizer_state_tensors, optimizer_state_tensors


class StageOptimizers:
    """AdamW for dense parameters and RowWiseAdagrad for embedding tables of one stage.

    Tables use row-wise Adagrad, as in pretraining (fused Adam does not exist on CPU, and a
    dense Adam over large tables is ~30x slower). Neither optimizer ever sees a frozen
    parameter, weight decay applies to trainable dense matrices only (never to tables:
    decay would move rows that received no gradient), and pretrained parameters train at
    ``pretrained_lr_scale`` times the stage's rates. ``add`` extends the optimizers when
    gradual unfreezing releases another layer group.

    Example::

        optimizers = StageOptimizers(model, report.trainable_names, stage)
        loss.backward(); optimizers.step(); optimizers.zero_grad()
    """

    def __init__(self, model: nn.Module, names: Iterable[str], stage: Stage) -> None:
        self.model = model
        self.stage = stage
        self.optimizers: list[torch.optim.Optimizer] = []
        self.steps = 0
        self._parameters = dict(model.named_parameters())
        self._pretrained = pretrained_names(model)
        self._tables = table_parameter_names(model)
        self.add(names)

    def add(self, names: Iterable[str]) -> None:
        """Start optimising ``names`` (each parameter at most once)."""
        seen = {id(p) for opt in self.optimizers for g in opt.param_groups for p in g["params"]}
        fresh = [n for n in sorted(set(names)) if id(self._parameters[n]) not in seen]
        dense: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        rows: dict[bool, list[nn.Parameter]] = {}
        for name in fresh:
            param = self._parameters[name]
            pretrained = name in self._pretrained
            # adapter row factors (lora_rows) are indexed by id like a table
            if name in self._tables or name.endswith(f"{ADAPTER_MARK}rows"):
                rows.setdefault(pretrained, []).append(param)
            else:
                decay = param.ndim >= 2 and ADAPTER_MARK not in name
                dense.setdefault((pretrained, decay), []).append(param)
        stage = self.stage
        scale = {True: stage.pretrained_lr_scale, False: 1.0}
        dense_groups = [
            {"params": params, "lr": stage.learning_rate * scale[pretrained],
             "weight_decay": stage.weight_decay if decay else 0.0}
            for (pretrained, decay), params in sorted(dense.items())
        ]
        if dense_groups:
            self.optimizers.append(torch.optim.AdamW(dense_groups, lr=stage.learning_rate))
        for pretrained, params in sorted(rows.items()):
            lr = stage.embedding_learning_rate * scale[pretrained]
            self.optimizers.append(RowWiseAdagrad(params, lr=lr))
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("target_lr", group["lr"])
        self._apply_warmup()

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for opt in self.optimizers for g in opt.param_groups
                   for p in g["params"])

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()
        self.steps += 1
        self._apply_warmup()

    def zero_grad(self) -> None:
        # set_to_none: a parameter frozen later must not carry a stale gradient
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def current_lr(self) -> float:
        """LR of the first group (for logging)."""
        return self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The optimizers' state as named tensors plus JSON-ready metadata (no pickle)."""
        tensors, meta = optimizer_state_tensors(self._labelled())
        return tensors, {"optimizers": meta, "count": len(self.optimizers), "steps": self.steps}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore ``state_tensors()`` into optimizers built for the same parameters."""
        if meta["count"] != len(self.optimizers):
            raise CheckpointError(f"saved stage {self.stage.name!r} had {meta['count']} "
                                  f"optimizers, this run builds {len(self.optimizers)}")
        load_optimizer_state_tensors(self._labelled(), tensors, meta["optimizers"])
        self.steps = meta["steps"]  # the warm-up factor depends on it
        self._apply_warmup()

    def _labelled(self) -> list[tuple[str, torch.optim.Optimizer]]:
        return [(str(index), optimizer) for index, optimizer in enumerate(self.optimizers)]

    def _apply_warmup(self) -> None:
        warmup = self.stage.warmup_steps
        factor = min(1.0, (self.steps + 1) / warmup) if warmup else 1.0
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["target_lr"] * factor

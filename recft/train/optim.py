"""Optimizers for a TwoTower: fused (in-backward) or sparse updates for tables, Adam for towers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
from torchrec.optim import RowWiseAdagrad

from recft.config import ConfigError
from recft.train.state import load_optimizer_state_tensors, optimizer_state_tensors

EMBEDDING_OPTIMIZERS = ("rowwise_adagrad", "adagrad", "sgd", "sparse_adam")
DENSE_OPTIMIZERS = ("adam", "adagrad", "sgd")
TABLE_MODULES = ("user_ebc", "item_ebc")  # the model attributes holding embedding tables

# torchrec maps these optimizer classes onto FBGEMM's fused kernels
_FUSED = {"rowwise_adagrad": RowWiseAdagrad, "adagrad": torch.optim.Adagrad,
          "sgd": torch.optim.SGD}
_DENSE = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}


class TrainingOptimizers:
    """The optimizers of one training run over a model's tables and dense layers.

    With a fused embedding optimizer the model's ``EmbeddingBagCollection``s are swapped
    for torchrec ``FusedEmbeddingBagCollection``s (FBGEMM kernels that apply the update
    during backward, touching only the rows in the batch): with a million-row table a
    dense optimizer step is ~30x slower. State-dict keys are unchanged, so checkpoints
    and evaluation see the same model. ``close()`` puts plain collections back, with the
    trained weights.

    Example::

        optimizers = TrainingOptimizers(model, "rowwise_adagrad", 0.05, "adam", 1e-3)
        loss.backward()          # tables are updated here when fused
        optimizers.step()        # dense (and sparse) optimizers
        optimizers.close()
    """

    def __init__(
        self,
        model: nn.Module,
        embedding_optimizer: str = "rowwise_adagrad",
        embedding_lr: float = 0.05,
        dense_optimizer: str = "adam",
        dense_lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        if embedding_optimizer not in EMBEDDING_OPTIMIZERS:
            raise ConfigError(f"embedding_optimizer must be one of {EMBEDDING_OPTIMIZERS}, "
                              f"got {embedding_optimizer!r}")
        if dense_optimizer not in DENSE_OPTIMIZERS:
            raise ConfigError(f"dense_optimizer must be one of {DENSE_OPTIMIZERS}, "
                              f"got {dense_optimizer!r}")
        self.model = model
        self.embedding_optimizer = embedding_optimizer
        self.fused: dict[str, FusedEmbeddingBagCollection] = {}
        # plain collections sharing the fused weights' storage, for inference (see plain_tables)
        self.twins: dict[str, EmbeddingBagCollection] = {}
        self.sparse: torch.optim.Optimizer | None = None
        if embedding_optimizer in _FUSED:
            for name in TABLE_MODULES:
                plain = getattr(model, name)
                fused = FusedEmbeddingBagCollection(
                    plain.embedding_bag_configs(), optimizer_type=_FUSED[embedding_optimizer],
                    optimizer_kwargs={"lr": embedding_lr}, device=_device_of(plain),
                )
                with torch.no_grad():
                    for table, bag in plain.embedding_bags.items():
                        fused.embedding_bags[table].weight.copy_(bag.weight)
                setattr(model, name, fused)
                self.fused[name] = fused
                self.twins[name] = _twin(fused)
        else:
            tables = []
            for name in TABLE_MODULES:
                for bag in getattr(model, name).embedding_bags.values():
                    bag.sparse = True  # gradients touch only the looked-up rows
                    tables.append(bag.weight)
            self.sparse = torch.optim.SparseAdam(tables, lr=embedding_lr)
        table_ids = {id(p) for name in TABLE_MODULES for p in getattr(model, name).parameters()}
        dense = [p for p in model.parameters() if id(p) not in table_ids and p.requires_grad]
        options: dict[str, Any] = {"lr": dense_lr, "weight_decay": weight_decay}
        self.dense = _DENSE[dense_optimizer](dense, **options)

    def zero_grad(self) -> None:
        self.dense.zero_grad(set_to_none=True)
        if self.sparse is not None:
            self.sparse.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Apply the dense (and sparse) updates; fused tables were updated in backward."""
        self.dense.step()
        if self.sparse is not None:
            self.sparse.step()

    # ------------------------------------------------------------------ state for resuming
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Optimizer state as flat named tensors plus JSON-ready metadata."""
        tensors, meta = optimizer_state_tensors(self._torch_optimizers())
        for name, fused in self.fused.items():
            for param, values in fused.fused_optimizer().state_dict()["state"].items():
                for key, value in values.items():
                    tensors[f"fused/{name}/{param}/{key}"] = value.detach().clone()
        return tensors, meta

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what ``state_tensors`` returned."""
        load_optimizer_state_tensors(self._torch_optimizers(), tensors, meta)
        for name, fused in self.fused.items():
            fused_state: dict[str, dict[str, torch.Tensor]] = {}
            prefix = f"fused/{name}/"
            for key, value in tensors.items():
                if key.startswith(prefix):
                    param, state_name = key[len(prefix):].rsplit("/", 1)
                    fused_state.setdefault(param, {})[state_name] = value
            fused.fused_optimizer().load_state_dict({"state": fused_state})

    def _torch_optimizers(self) -> list[tuple[str, torch.optim.Optimizer]]:
        pairs: list[tuple[str, torch.optim.Optimizer]] = [("dense", self.dense)]
        if self.sparse is not None:
            pairs.append(("sparse", self.sparse))
        return pairs

    @contextlib.contextmanager
    def plain_tables(self) -> Iterator[None]:
        """Inside, the model holds plain collections viewing the fused weights (no copy).

        FBGEMM's fused CPU lookup exists only as an autograd kernel, so it fails under
        ``torch.inference_mode`` (used by evaluation); ``nn.EmbeddingBag`` does not.
        """
        for name, twin in self.twins.items():
            setattr(self.model, name, twin)
        try:
            yield
        finally:
            for name, fused in self.fused.items():
                setattr(self.model, name, fused)

    def close(self) -> None:
        """Put plain ``EmbeddingBagCollection``s holding the trained weights back."""
        for name, twin in self.twins.items():
            for bag in twin.embedding_bags.values():
                # own storage: the fused module's flat buffer is released with it
                bag.weight = nn.Parameter(bag.weight.detach().clone())
            setattr(self.model, name, twin)
        self.fused, self.twins = {}, {}
        if self.sparse is not None:
            for name in TABLE_MODULES:
                for bag in getattr(self.model, name).embedding_bags.values():
                    bag.sparse = False
            self.sparse = None


def _twin(fused: FusedEmbeddingBagCollection) -> EmbeddingBagCollection:
    """A plain collection whose tables are the fused module's weight parameters."""
    device = _device_of(fused)
    # built on the meta device: no throw-away random init, no memory, no RNG draws
    twin = EmbeddingBagCollection(fused.embedding_bag_configs(), device=torch.device("meta"))
    for table, bag in twin.embedding_bags.items():
        bag.weight = fused.embedding_bags[table].weight
    twin._device = device  # torchrec records the construction device; keep it truthful
    return twin


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device

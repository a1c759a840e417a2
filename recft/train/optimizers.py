"""Optimizers of one training run: fused tables, dense towers, per-row learning-rate scales.

One class serves pretraining and every fine-tuning stage:

- embedding tables train with a fused optimizer (FBGEMM, applied in backward, touching
  only looked-up rows; ``FusedTables``) or with sparse gradients and ``SparseAdam``;
- dense layers (towers, heads, adapters) train with Adam / AdamW / Adagrad / SGD;
- only the parameters named trainable get an optimizer: frozen ones have no state;
- fine-tuning's discriminative learning rates, warm-up and ``train_only_new_rows``: the
  fused kernels have one learning rate per collection, set every step to the rate of its
  pretrained rows (with warm-up). Rows that need another rate (rows appended for new ids,
  rows kept fixed) get their step rescaled: every table optimizer offered here (row-wise
  Adagrad, Adagrad, SGD, Adam) moves a row by ``lr * u`` where ``u`` does not depend on
  ``lr`` (nor does the optimizer state), so scaling the step of such a row by ``r`` is
  exactly training it at ``r * lr``; ``r = 0`` keeps it bit-for-bit. Only those rows are
  copied, so the common case (pretrained rows at a lower rate) costs nothing extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.optim import RowWiseAdagrad

from recft.config import ConfigError
from recft.errors import CheckpointError
from recft.models.roles import ADAPTER_MARK, ParameterRoles, is_row_indexed, table_parameter_names
from recft.train.fused_tables import FusedTables
from recft.train.state import load_optimizer_state_tensors, optimizer_state_tensors

EMBEDDING_OPTIMIZERS = ("rowwise_adagrad", "adagrad", "sgd", "sparse_adam")
DENSE_OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd")

# torchrec maps these optimizer classes onto FBGEMM's fused kernels
_FUSED = {"rowwise_adagrad": RowWiseAdagrad, "adagrad": torch.optim.Adagrad,
          "sgd": torch.optim.SGD}
_DENSE = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
          "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}


@dataclass(frozen=True)
class OptimizerSettings:
    """How the parameters of one training run are optimised.

    Attributes:
        embedding_optimizer: tables: fused ``rowwise_adagrad`` / ``adagrad`` / ``sgd``, or
            ``sparse_adam`` (sparse gradients).
        embedding_lr: learning rate of the tables.
        dense_optimizer / dense_lr / weight_decay: towers, heads and adapters; decay applies
            to trainable matrices only (never to tables, biases or adapter factors).
        pretrained_lr_scale: pretrained parameters (``ParameterRoles``) train at this times
            the rates; rows appended for new ids train at the full rate.
        warmup_steps: linear warm-up of every rate over this many steps.
    """

    embedding_optimizer: str = "rowwise_adagrad"
    embedding_lr: float = 0.05
    dense_optimizer: str = "adam"
    dense_lr: float = 1e-3
    weight_decay: float = 0.0
    pretrained_lr_scale: float = 1.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.embedding_optimizer not in EMBEDDING_OPTIMIZERS:
            raise ConfigError(f"embedding_optimizer must be one of {EMBEDDING_OPTIMIZERS}, "
                              f"got {self.embedding_optimizer!r}")
        if self.dense_optimizer not in DENSE_OPTIMIZERS:
            raise ConfigError(f"dense_optimizer must be one of {DENSE_OPTIMIZERS}, "
                              f"got {self.dense_optimizer!r}")


@dataclass
class _ScaledTable:
    """A fused table some of whose rows step at another rate than their collection's."""

    owner: FusedTables
    weight: torch.Tensor  # live weight (a view into the owner's fused buffer)
    features: list[str]  # KJT keys looked up in this table
    first_new_row: int  # rows below it step at ``old_rows``, the others at ``new_rows``
    old_rows: float  # relative to the collection's rate
    new_rows: float


class Optimizers:
    """The optimizers over exactly the trainable parameters of ``model``.

    Example::

        optimizers = Optimizers(model, OptimizerSettings(), trainable=names, roles=roles)
        loss.backward()              # fused tables are updated here
        optimizers.step()            # dense, sparse and row-scaled updates
        optimizers.zero_grad()
        optimizers.close()           # plain collections with the trained weights

    Args:
        trainable: parameter names to optimise; default every parameter with
            ``requires_grad``.
        roles: pretrained vs new parameters (for ``pretrained_lr_scale``); default: none
            is pretrained.
        masked_rows: table name -> first new row, for tables whose pretrained rows must not
            move (``train_only_new_rows``).
    """

    def __init__(self, model: nn.Module, settings: OptimizerSettings, *,
                 trainable: Iterable[str] | None = None, roles: ParameterRoles | None = None,
                 masked_rows: dict[str, int] | None = None) -> None:
        self.model = model
        self.settings = settings
        self.roles = roles or ParameterRoles(frozenset())
        self.masked_rows = dict(masked_rows or {})
        self.steps = 0
        self.fused: dict[str, FusedTables] = {}  # module path -> fused collection
        self.base_scales: dict[str, float] = {}  # module path -> its rate / embedding_lr
        self.torch_optimizers: list[torch.optim.Optimizer] = []
        self.scaled: list[_ScaledTable] = []
        self._touched: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self._sparse_bags: list[nn.EmbeddingBag] = []
        self._optimised: set[int] = set()
        names = trainable if trainable is not None else [
            n for n, p in model.named_parameters() if p.requires_grad]
        self.add(names)

    # ------------------------------------------------------------------ building
    def add(self, names: Iterable[str]) -> None:
        """Start optimising ``names`` too (gradual unfreezing); each parameter once.

        Names are those of the plain model (as inside ``plain_tables()``)."""
        with self.plain_tables():
            params = dict(self.model.named_parameters())
            tables = table_parameter_names(self.model)
        fresh = [n for n in sorted(set(names))
                 if n in params and id(params[n]) not in self._optimised]
        fused_tables = self._fuse([n for n in fresh if n in tables])
        rows: dict[bool, list[nn.Parameter]] = {}
        dense: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        sparse: list[nn.Parameter] = []
        for name in fresh:
            if name in fused_tables:
                continue
            param = params[name]
            pretrained = self.roles.is_pretrained(name)
            if name in tables and self.settings.embedding_optimizer == "sparse_adam":
                sparse.append(param)
            elif is_row_indexed(name, tables):
                # adapter row factors, and tables wrapped by adapters: row-wise, unfused
                rows.setdefault(pretrained, []).append(param)
            else:
                decay = param.ndim >= 2 and ADAPTER_MARK not in name
                dense.setdefault((pretrained, decay), []).append(param)
            self._optimised.add(id(param))
        settings = self.settings
        groups = [{"params": group, "lr": settings.dense_lr * self._scale(pretrained),
                   "weight_decay": settings.weight_decay if decay else 0.0}
                  for (pretrained, decay), group in sorted(dense.items())]
        if groups:
            self.torch_optimizers.append(_DENSE[settings.dense_optimizer](groups))
        for pretrained, group in sorted(rows.items()):
            lr = settings.embedding_lr * self._scale(pretrained)
            self.torch_optimizers.append(RowWiseAdagrad(group, lr=lr))
        if sparse:
            for bag in self._bags_of(sparse):
                bag.sparse = True  # gradients touch only the looked-up rows
                self._sparse_bags.append(bag)
            self.torch_optimizers.append(torch.optim.SparseAdam(sparse, lr=settings.embedding_lr))
        for optimizer in self.torch_optimizers:
            for group in optimizer.param_groups:
                group.setdefault("target_lr", group["lr"])
        self._apply_warmup()

    def _scale(self, pretrained: bool) -> float:
        return self.settings.pretrained_lr_scale if pretrained else 1.0

    def _fuse(self, table_names: list[str]) -> set[str]:
        """Swap the collections holding ``table_names`` for ``FusedTables``; returns the
        names now trained by fused kernels."""
        if self.settings.embedding_optimizer not in _FUSED or not table_names:
            return set()
        wanted = set(table_names)
        done: set[str] = set()
        for path, module in list(self.model.named_modules()):
            if not isinstance(module, EmbeddingBagCollection) or path in self.fused:
                continue
            prefix = f"{path}.embedding_bags." if path else "embedding_bags."
            if any(type(bag) is not nn.EmbeddingBag for bag in module.embedding_bags.values()):
                continue  # adapters wrap its tables: those train unfused
            chosen = {t for t in module.embedding_bags if f"{prefix}{t}.weight" in wanted}
            if not chosen:
                continue
            names = {t: f"{prefix}{t}.weight" for t in chosen}
            # the collection's rate is its pretrained rows' rate: they are most lookups
            base = self._scale(any(self.roles.is_pretrained(n) for n in names.values()))
            fused = FusedTables(module, chosen, _FUSED[self.settings.embedding_optimizer],
                                {"lr": self.settings.embedding_lr * base})
            _set_submodule(self.model, path, fused)
            self.fused[path] = fused
            self.base_scales[path] = base
            scaled = len(self.scaled)
            for table in sorted(chosen):
                done.add(names[table])
                self._optimised.add(id(fused.table_weight(table)))
                self._track_scaling(fused, table, names[table], base)
            if len(self.scaled) > scaled:
                fused.register_forward_pre_hook(self._remember_rows)
        self._apply_warmup()
        return done

    def _track_scaling(self, fused: FusedTables, table: str, name: str, base: float) -> None:
        weight = fused.table_weight(table)
        rates = self.row_rates(name, weight.shape[0], base)
        if rates is None:
            return  # every row steps at the collection's rate
        self.scaled.append(_ScaledTable(fused, weight, fused.table_features[table], *rates))
        self._touched.append([])

    def row_rates(self, name: str, rows: int, base: float) -> tuple[int, float, float] | None:
        """``(first new row, old rows' rate, new rows' rate)`` of table ``name`` relative to
        its collection's rate ``base``, or None when every row steps at that rate."""
        if self.roles.is_pretrained(name):
            first_new = self.masked_rows.get(name, self.roles.first_new_rows.get(name))
            old_scale = 0.0 if name in self.masked_rows else self._scale(True)
        else:
            first_new, old_scale = 0, 1.0
        if first_new is None:  # a pretrained table that did not grow
            first_new = rows
        old_rows, new_rows = old_scale / base, 1.0 / base
        if (first_new == 0 or old_rows == 1.0) and (first_new == rows or new_rows == 1.0):
            return None
        return first_new, old_rows, new_rows

    # ------------------------------------------------------------------ stepping
    def _remember_rows(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        """Before a lookup: the rows it will touch, with their values before the update."""
        if not torch.is_grad_enabled():
            return  # no backward follows, so no update to scale
        per_key = inputs[0].to_dict()
        for index, table in enumerate(self.scaled):
            if table.owner is not module:
                continue
            looked_up = [per_key[f].values() for f in table.features if f in per_key]
            if not looked_up:
                continue
            ids = torch.cat(looked_up)
            # only rows whose rate differs from the collection's need their step rescaled
            if table.old_rows == 1.0:
                ids = ids[ids >= table.first_new_row]
            elif table.new_rows == 1.0:
                ids = ids[ids < table.first_new_row]
            if len(ids):
                ids = torch.unique(ids)
                self._touched[index].append((ids, table.weight.detach()[ids].clone()))

    def zero_grad(self) -> None:
        # set_to_none: a parameter frozen later must not carry a stale gradient
        for optimizer in self.torch_optimizers:
            optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Apply dense and sparse updates and the per-row scales; fused tables were
        updated during backward."""
        for optimizer in self.torch_optimizers:
            optimizer.step()
        self._scale_rows()
        self.steps += 1
        self._apply_warmup()

    @torch.no_grad()
    def _scale_rows(self) -> None:
        for table, touched in zip(self.scaled, self._touched):
            if not touched:
                continue
            ids = torch.cat([t[0] for t in touched])
            before = torch.cat([t[1] for t in touched])
            ids, first = _first_occurrence(ids)
            before = before[first]
            scale = torch.where(ids < table.first_new_row, table.old_rows, table.new_rows)
            weight = table.weight.detach()
            after = weight[ids]
            weight[ids] = before + scale.unsqueeze(1).to(after.dtype) * (after - before)
            touched.clear()

    def warmup_factor(self) -> float:
        warmup = self.settings.warmup_steps
        return min(1.0, (self.steps + 1) / warmup) if warmup else 1.0

    def _apply_warmup(self) -> None:
        factor = self.warmup_factor()
        for optimizer in self.torch_optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["target_lr"] * factor
        if self.settings.warmup_steps:
            for path, fused in self.fused.items():
                fused.set_learning_rate(self.settings.embedding_lr * self.base_scales[path]
                                        * factor)

    @property
    def parameter_count(self) -> int:
        """Scalars with an optimizer (fused tables included)."""
        dense = sum(p.numel() for opt in self.torch_optimizers for g in opt.param_groups
                    for p in g["params"])
        return dense + sum(p.numel() for f in self.fused.values() for p in f.fused.parameters())

    def state_bytes(self) -> int:
        """Bytes of optimizer state (moments, accumulators) held right now."""
        tensors, _ = self.state_tensors()
        return sum(t.numel() * t.element_size() for t in tensors.values())

    # ------------------------------------------------------------------ model state
    def model_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict under its plain names (resume state)."""
        with self.plain_tables():
            return dict(self.model.state_dict())

    def load_model_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load what ``model_state`` returned (RuntimeError if it does not fit)."""
        with self.plain_tables():
            self.model.load_state_dict(tensors)

    # ------------------------------------------------------------------ inference view
    @contextlib.contextmanager
    def plain_tables(self) -> Iterator[None]:
        """Inside, the model holds plain collections viewing the live weights (no copy):
        for validation (FBGEMM's fused CPU lookup exists only as an autograd kernel and
        fails under ``torch.inference_mode``), state dicts and resume state."""
        for path, fused in self.fused.items():
            _set_submodule(self.model, path, fused.plain_view)
        try:
            yield
        finally:
            for path, fused in self.fused.items():
                _set_submodule(self.model, path, fused)

    def close(self) -> None:
        """Put plain ``EmbeddingBagCollection``s holding the trained weights back."""
        for path, fused in self.fused.items():
            _set_submodule(self.model, path, fused.to_plain())
        self.fused, self.scaled, self._touched = {}, [], []
        for bag in self._sparse_bags:
            bag.sparse = False
        self._sparse_bags = []

    # ------------------------------------------------------------------ resume state
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Optimizer state as flat named tensors plus JSON-ready metadata (no pickle)."""
        labelled = [(str(i), o) for i, o in enumerate(self.torch_optimizers)]
        tensors, meta = optimizer_state_tensors(labelled)
        for path, fused in self.fused.items():
            for param, values in fused.fused_optimizer().state_dict()["state"].items():
                for key, value in values.items():
                    tensors[f"fused/{path}/{param}/{key}"] = value.detach().clone()
        return tensors, {"torch": meta, "count": len(self.torch_optimizers),
                         "fused": sorted(self.fused), "steps": self.steps}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what ``state_tensors`` returned into optimizers built the same way."""
        if meta["count"] != len(self.torch_optimizers) or meta["fused"] != sorted(self.fused):
            raise CheckpointError("saved optimizer state has another layout than this run's "
                                  f"optimizers ({meta['count']} vs {len(self.torch_optimizers)}"
                                  f", fused {meta['fused']} vs {sorted(self.fused)})")
        labelled = [(str(i), o) for i, o in enumerate(self.torch_optimizers)]
        load_optimizer_state_tensors(labelled, tensors, meta["torch"])
        for path, fused in self.fused.items():
            state: dict[str, dict[str, torch.Tensor]] = {}
            prefix = f"fused/{path}/"
            for key, value in tensors.items():
                if key.startswith(prefix):
                    param, state_name = key[len(prefix):].rsplit("/", 1)
                    state.setdefault(param, {})[state_name] = value
            fused.fused_optimizer().load_state_dict({"state": state})
        self.steps = meta["steps"]  # the warm-up factor depends on it
        self._apply_warmup()

    def _bags_of(self, params: list[nn.Parameter]) -> list[nn.EmbeddingBag]:
        ids = {id(p) for p in params}
        return [m for m in self.model.modules()
                if isinstance(m, nn.EmbeddingBag) and id(m.weight) in ids]


def _first_occurrence(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique ``ids`` and the position of each one's first occurrence."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(len(ids), device=ids.device)
    first = torch.full((len(unique),), len(ids), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    return unique, first


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    owner, _, attr = path.rpartition(".")
    setattr(root.get_submodule(owner) if owner else root, attr, module)


__all__ = ["DENSE_OPTIMIZERS", "EMBEDDING_OPTIMIZERS", "OptimizerSettings", "Optimizers"]

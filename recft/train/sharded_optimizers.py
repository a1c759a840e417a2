"""ShardedOptimizers: ``Optimizers`` for one rank of a job whose tables DMP shards.

The same settings mean the same updates as in one process:

- trainable tables get the fused optimizer (row-wise Adagrad by default) attached before
  DMP shards them, so it runs in backward on the rank owning each row; torchrec averages
  embedding gradients over ranks (``GRADIENT_DIVISION``), as DDP does for dense ones;
- data-parallel tables (replicated) are stepped with the same row-wise Adagrad after
  torchrec has averaged their gradients;
- dense layers keep their optimizer (Adam, AdamW, ...) and their gradients are averaged
  over ranks before it steps (DDP's arithmetic, done here because an objective calls the
  towers several times per step and gradual unfreezing changes what trains);
- rows needing another rate than their collection's (new ids, ``train_only_new_rows``) are
  rescaled on the shards that own them (``recft.train.sharded_rows``).

Only the fused row-wise Adagrad, Adagrad and SGD exist as sharded kernels; ``sparse_adam``
and adapters on tables are refused.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torchrec.optim import RowWiseAdagrad

from recft.config import ConfigError
from recft.models.roles import ParameterRoles
from recft.train.distributed import Distributed
from recft.train.optimizers import _FUSED, OptimizerSettings, Optimizers
from recft.train.sharded_rows import ShardedRowScales
from recft.train.sharded_tables import ShardedTables, _split_name

_SHARDED_PREFIX = "fused/"
logger = logging.getLogger(__name__)


class ShardedOptimizers(Optimizers):
    """``Optimizers`` whose construction shards ``model`` over ``context``'s ranks.

    Args:
        context: this process's rank in the job.
        sharding: table -> ``table_wise | row_wise | column_wise | data_parallel``; tables
            not named are placed by torchrec's planner.
        trainable / roles / masked_rows: as for ``Optimizers``.

    ``close()`` gathers the tables back: every rank then holds the plain model.
    """

    def __init__(self, model: nn.Module, settings: OptimizerSettings, *, context: Distributed,
                 sharding: Mapping[str, str] | None = None,
                 trainable: Iterable[str] | None = None, roles: ParameterRoles | None = None,
                 masked_rows: dict[str, int] | None = None) -> None:
        if settings.embedding_optimizer not in _FUSED:
            raise ConfigError(f"embedding_optimizer {settings.embedding_optimizer!r} has no "
                              f"sharded kernel; use one of {sorted(_FUSED)} with --nproc")
        self.context = context
        self.choices = dict(sharding or {})
        self.tables: ShardedTables | None = None
        self.rows: ShardedRowScales | None = None
        self._replicated: torch.optim.Optimizer | None = None
        self._table_bases: dict[str, float] = {}
        super().__init__(model, settings, trainable=trainable, roles=roles,
                         masked_rows=masked_rows)
        if self.tables is None:  # nothing trains in a table: shard them all, frozen
            self._shard(set())
        # replicas start equal (DDP does the same at construction); replicated tables
        # are filled from the same whole tables on every rank already
        assert self.tables is not None
        context.broadcast_parameters(p for n, p in model.named_parameters()
                                     if ".embedding_bags." not in n)

    # ------------------------------------------------------------------ building
    def _fuse(self, table_names: list[str]) -> set[str]:
        """Shard every collection, ``table_names`` (and tables already trained) with the
        fused optimizer; returns the table names now trained."""
        wanted = set(table_names)
        if self.tables is not None:
            if wanted <= self.tables.trainable:
                return wanted
            if self.steps and self.tables.trainable:
                raise ConfigError(
                    "gradual unfreezing would re-shard tables that already trained (their "
                    "fused optimizer state would be lost); release all tables together, or "
                    "run with --nproc 1")
            self._unshard()
            wanted |= self.tables.trainable if self.tables else set()
        if not wanted and self.tables is None:
            return set()  # __init__ shards the frozen tables once the dense part is set
        self._shard(wanted)
        return wanted

    def _shard(self, trainable: set[str]) -> None:
        from torchrec.modules.embedding_modules import EmbeddingBagCollection

        paths = [p for p, m in self.model.named_modules() if isinstance(m, EmbeddingBagCollection)]
        bases = {}
        for path in paths:
            names = [n for n in trainable if _split_name(n)[0] == path]
            # the collection's rate is its pretrained rows' rate: they are most lookups
            bases[path] = self._scale(any(self.roles.is_pretrained(n) for n in names))
        self.base_scales = bases
        embedding_lr = self.settings.embedding_lr
        self.tables = ShardedTables(
            self.model, self.context, trainable=trainable,
            rates={p: embedding_lr * b for p, b in bases.items()},
            optimizer_class=_FUSED[self.settings.embedding_optimizer], choices=self.choices)
        replicated = self.tables.replicated_parameters()
        if replicated:
            groups = [{"params": [param], "lr": embedding_lr * bases[_split_name(name)[0]]}
                      for name, param in replicated.items()]
            self._replicated = _replicated_optimizer(self.settings.embedding_optimizer, groups)
            self.torch_optimizers.append(self._replicated)
            for group in self._replicated.param_groups:
                group.setdefault("target_lr", group["lr"])
        scaled = {}
        for name in sorted(trainable):
            path, _ = _split_name(name)
            rates = self.row_rates(name, self._rows_of(name), bases[path])
            if rates is not None:
                scaled[name] = rates
        self.rows = ShardedRowScales(self.tables, self.context, scaled) if scaled else None
        self.context.plan = self.tables.summary
        if self.context.is_main:
            logger.info(self.tables.describe())

    def _rows_of(self, name: str) -> int:
        path, table = _split_name(name)
        assert self.tables is not None
        return next(c.num_embeddings for c in self.tables.splits[path].configs if c.name == table)

    def _unshard(self) -> None:
        assert self.tables is not None
        if self.rows is not None:
            self.rows.remove()
            self.rows = None
        if self._replicated is not None:
            self.torch_optimizers.remove(self._replicated)
            self._replicated = None
        self.tables.unshard()

    # ------------------------------------------------------------------ stepping
    def _dense_parameters(self) -> list[nn.Parameter]:
        """Replicated parameters whose gradients this class averages (torchrec averages
        those of data-parallel tables itself)."""
        own = {id(p) for g in (self._replicated.param_groups if self._replicated else [])
               for p in g["params"]}
        return [p for optimizer in self.torch_optimizers for group in optimizer.param_groups
                for p in group["params"] if id(p) not in own]

    def step(self) -> None:
        self.context.average_gradients(self._dense_parameters())
        for optimizer in self.torch_optimizers:
            optimizer.step()
        if self.rows is not None:
            self.rows.rescale()
        self.steps += 1
        self._apply_warmup()

    def _apply_warmup(self) -> None:
        super()._apply_warmup()
        if self.settings.warmup_steps and self.tables is not None:
            factor = self.warmup_factor()
            for path, base in self.base_scales.items():
                self.tables.set_rate(path, self.settings.embedding_lr * base * factor)

    @property
    def parameter_count(self) -> int:
        """Scalars with an optimizer, whole tables counted once over all ranks."""
        if self.tables is None:
            return super().parameter_count
        replicated = sum(p.numel() for p in self.tables.replicated_parameters().values())
        return super().parameter_count + self.tables.trainable_parameter_count - replicated

    def state_bytes(self) -> int:
        """Bytes of optimizer state this rank holds."""
        tensors, _ = self.state_tensors()
        total = 0
        for tensor in tensors.values():
            pieces = ([s.tensor for s in tensor.local_shards()]
                      if isinstance(tensor, ShardedTensor) else [tensor])
            total += sum(p.numel() * p.element_size() for p in pieces)
        return total

    # ------------------------------------------------------------------ views and state
    @contextlib.contextmanager
    def plain_tables(self) -> Iterator[None]:
        """Plain collections with gathered copies of the tables (a collective)."""
        if self.tables is None:
            yield
            return
        with self.tables.plain_view():
            yield

    def close(self) -> None:
        if self.tables is not None:
            self._unshard()
            self.tables = None
        super().close()

    def model_state(self) -> dict[str, Any]:
        assert self.tables is not None
        return self.tables.state()

    def load_model_state(self, tensors: dict[str, Any]) -> None:
        assert self.tables is not None
        self.tables.load_state(tensors)

    def state_tensors(self) -> tuple[dict[str, Any], dict[str, Any]]:
        tensors, meta = super().state_tensors()
        if self.tables is not None:
            tensors.update(self.tables.optimizer_state())
        meta["sharded"] = sorted(self.tables.splits) if self.tables else []
        return tensors, meta

    def load_state_tensors(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        sharded = {k: v for k, v in tensors.items() if k.startswith(_SHARDED_PREFIX)}
        super().load_state_tensors({k: v for k, v in tensors.items() if k not in sharded}, meta)
        if self.tables is not None:
            self.tables.load_optimizer_state(sharded)


def _replicated_optimizer(kind: str, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The unfused twin of a fused table optimizer, with FBGEMM's epsilon (1e-8; torch's
    and torchrec's defaults are 1e-10), for replicated (data-parallel) tables."""
    if kind == "rowwise_adagrad":
        return RowWiseAdagrad(groups, eps=1e-8)
    if kind == "adagrad":
        return torch.optim.Adagrad(groups, eps=1e-8)
    return torch.optim.SGD(groups)


__all__ = ["ShardedOptimizers"]

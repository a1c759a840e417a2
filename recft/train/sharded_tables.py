"""ShardedTables: every embedding-bag collection of a model, sharded by torchrec's DMP.

Before ``DistributedModelParallel`` wraps the model, each ``EmbeddingBagCollection`` is
split (``SplitTables``) into one collection per table. Trainable tables get a fused
optimizer attached with ``_apply_optimizer_in_backward`` (torchrec's pattern: DMP builds
FBGEMM kernels that apply it in backward, on the owning shard); frozen tables get none
and are looked up without autograd: no backward ever reaches them, so they cannot move
(torchrec would otherwise train an unattached table with SGD at lr 0.01). One table per
sharded collection because torchrec 1.8 on CPU mis-pools the two-feature ``item_id``
table (``item_id`` and ``item_history``) when its collection mixes sharding types
(measured: ``item_history`` 4e-2 off with a table-wise ``item_id`` beside a row-wise
feature table; weights 0.13 off one process after 5 steps with row-wise ``item_id`` and
``year`` around a data-parallel ``genres``), where one table per collection matches one
process to 1e-5 in every combination (tests/test_distributed.py). Data-parallel tables
are replicated dense parameters: their gradients are averaged by torchrec and
``ShardedOptimizers`` steps them with row-wise Adagrad.

The sharded model keeps the plain model's parameter names for its state (``state()``),
so a single-process state loads into a sharded run and a sharded one gathers into the
portable checkpoint a single process writes.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torch.distributed.optim import _apply_optimizer_in_backward
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.types import ShardingEnv, ShardingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor

from recft.errors import CheckpointError, TrainingError
from recft.train.distributed import Distributed
from recft.train.fused_tables import _collection_of
from recft.train.sharding import RecftSharder, format_plan, plan_sharding, plan_summary


class SplitTables(nn.Module):
    """One collection as one collection per table (``tables[name]``): trainable ones have
    an optimizer attached, frozen ones are looked up under ``no_grad``. Weights are shared
    with ``plain`` until DMP shards them."""

    def __init__(self, plain: EmbeddingBagCollection, trainable: set[str]) -> None:
        super().__init__()
        configs = plain.embedding_bag_configs()
        device = next(plain.parameters()).device
        weights = {c.name: plain.embedding_bags[c.name].weight for c in configs}
        self.configs = configs
        self.feature_order = [f for c in configs for f in c.feature_names]
        self.table_features = {c.name: list(c.feature_names) for c in configs}
        self.trainable_tables = {c.name for c in configs if c.name in trainable}
        self.tables = nn.ModuleDict({c.name: _collection_of([c], weights, device)
                                     for c in configs})

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        per_key = features.to_dict()
        pooled: dict[str, torch.Tensor] = {}
        for name, table in self.tables.items():
            inputs = _keep(per_key, self.table_features[name])
            if name in self.trainable_tables:
                pooled.update(table(inputs).to_dict())
            else:
                with torch.no_grad():  # the output all-to-all waits inside, without autograd
                    pooled.update(table(inputs).to_dict())
        return KeyedTensor.from_tensor_list(self.feature_order,
                                            [pooled[k] for k in self.feature_order])


def _keep(per_key: Mapping[str, Any], features: list[str]) -> KeyedJaggedTensor:
    return KeyedJaggedTensor.from_jt_dict({f: per_key[f] for f in features})


@dataclass
class LocalShard:
    """A piece of a table held by this rank: a live view and where it sits in the table."""

    tensor: torch.Tensor
    row: int
    column: int


class ShardedTables:
    """Shards ``model``'s collections in place and gathers them back.

    Args:
        model: a model holding plain ``EmbeddingBagCollection``s (changed in place).
        context: the job's ranks.
        rates: collection path -> learning rate of its trainable tables; tables whose
            parameter name (``<path>.embedding_bags.<table>.weight``) is in ``trainable``
            get ``optimizer_class`` at that rate, all others are frozen.
        choices: table -> sharding type (``recft.train.sharding``); others: the planner's.
    """

    def __init__(self, model: nn.Module, context: Distributed, *, trainable: set[str],
                 rates: Mapping[str, float], optimizer_class: type,
                 choices: Mapping[str, str]) -> None:
        self.model, self.context = model, context
        plain = {path: module for path, module in model.named_modules()
                 if isinstance(module, EmbeddingBagCollection)}
        self.splits: dict[str, SplitTables] = {}
        sources: dict[str, torch.Tensor] = {}
        for path, collection in plain.items():
            if any(type(bag) is not nn.EmbeddingBag for bag in collection.embedding_bags.values()):
                raise TrainingError(f"{path}: adapters on embedding tables cannot be sharded; "
                                    "train without table adapters or with --nproc 1")
            chosen = {t for t in collection.embedding_bags if _name(path, t) in trainable}
            split = SplitTables(collection, chosen)
            for table, bag in collection.embedding_bags.items():
                sources[_name(path, table)] = bag.weight.detach()
            for table in split.trainable_tables:
                _apply_optimizer_in_backward(optimizer_class, split.tables[table].parameters(),
                                             {"lr": rates[path]})
            _set_submodule(model, path, split)
            self.splits[path] = split
        self.trainable = {n for n in trainable if n in sources}
        self.plan = plan_sharding(model, choices, world_size=context.world_size,
                                  local_world_size=context.local_world_size,
                                  group=context.group)
        self.summary = plan_summary(self.plan)
        self.dmp = DistributedModelParallel(
            model, env=ShardingEnv.from_process_group(context.group),
            device=torch.device("cpu"), plan=self.plan, sharders=[RecftSharder()],
            init_data_parallel=False)
        self.shards = self._local_shards()
        for name, weight in sources.items():
            self.load_full(name, weight)
        del sources  # the plain copies go: from here on each rank holds its shards only

    # ------------------------------------------------------------------ layout
    def _local_shards(self) -> dict[str, list[LocalShard]]:
        """Table parameter name -> this rank's pieces of it (live views)."""
        shards: dict[str, list[LocalShard]] = {}
        for path, split in self.splits.items():
            for table, part in split.tables.items():
                for key, value in part.state_dict(keep_vars=True).items():
                    name = _name(path, table)
                    if isinstance(value, ShardedTensor):
                        shards[name] = [LocalShard(s.tensor, s.metadata.shard_offsets[0],
                                                   s.metadata.shard_offsets[1])
                                        for s in value.local_shards()]
                    else:  # data-parallel: the whole table, replicated
                        shards[name] = [LocalShard(value, 0, 0)]
        return shards

    def sharding_type(self, name: str) -> str:
        return self.summary[name.split(".")[-2]]["sharding"]

    def replicated_parameters(self) -> dict[str, nn.Parameter]:
        """Trainable data-parallel tables by plain name (their optimizer is ``Optimizers``')."""
        found = {}
        for name in sorted(self.trainable):
            if self.sharding_type(name) == ShardingType.DATA_PARALLEL.value:
                path, table = _split_name(name)
                found[name] = self.splits[path].tables[table].embedding_bags[table].weight
        return found

    def describe(self) -> str:
        return format_plan(self.summary)

    # ------------------------------------------------------------------ weights
    @torch.no_grad()
    def load_full(self, name: str, weight: torch.Tensor) -> None:
        """Copy a whole table (a single-process state) into this rank's shards of it."""
        for shard in self.shards[name]:
            rows, columns = shard.tensor.shape
            shard.tensor.copy_(weight[shard.row:shard.row + rows,
                                      shard.column:shard.column + columns])

    def gather(self, name: str) -> torch.Tensor:
        """The whole table ``name`` on every rank (a collective: every rank calls it)."""
        path, table = _split_name(name)
        part = self.splits[path].tables[table]
        value = part.state_dict()[f"embedding_bags.{table}.weight"]
        if not isinstance(value, ShardedTensor):
            return value.detach().clone()
        with warnings.catch_warnings():  # torchrec 1.8's EBC state is ShardedTensor-based
            warnings.filterwarnings("ignore", "Please use DTensor", FutureWarning)
            full = torch.empty(tuple(value.size()), dtype=value.dtype)
            value.gather(dst=0, out=full if self.context.is_main else None)
        dist.broadcast(full, src=0, group=self.context.group)
        return full

    def plain_collection(self, path: str) -> EmbeddingBagCollection:
        """A plain collection holding gathered copies of ``path``'s tables."""
        split = self.splits[path]
        weights = {c.name: nn.Parameter(self.gather(_name(path, c.name)),
                                        requires_grad=_name(path, c.name) in self.trainable)
                   for c in split.configs}
        return _collection_of(split.configs, weights, torch.device("cpu"))

    @contextlib.contextmanager
    def plain_view(self) -> Iterator[None]:
        """Inside, the model holds plain collections with gathered copies of the tables
        (for validation and best-weight snapshots; writes to them are not kept)."""
        plains = {path: self.plain_collection(path) for path in self.splits}
        for path, plain in plains.items():
            _set_submodule(self.model, path, plain)
        try:
            yield
        finally:
            for path, split in self.splits.items():
                _set_submodule(self.model, path, split)

    def unshard(self) -> None:
        """Put plain collections with the trained (gathered) weights back into the model."""
        for path in self.splits:
            _set_submodule(self.model, path, self.plain_collection(path))
        self.splits, self.shards = {}, {}

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The model's state under plain names: tables as ShardedTensors (replicated
        tables and dense layers as tensors), for ``torch.distributed.checkpoint``."""
        state = {}
        for key, value in self.model.state_dict().items():
            state[_plain_key(key)] = value
        return state

    @torch.no_grad()
    def load_state(self, tensors: Mapping[str, Any]) -> None:
        """Load a ``state()`` (ShardedTensors of the same plan) or a single-process state
        dict (whole tables) into the sharded model."""
        expected = set(self.state())
        if set(tensors) != expected:
            missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
            raise CheckpointError(f"saved state does not fit the model: missing {missing[:5]}, "
                                  f"unexpected {extra[:5]}")
        dense = {}
        for key, value in tensors.items():
            if key not in self.shards:
                dense[key] = value
            elif isinstance(value, ShardedTensor):
                pieces = {(s.metadata.shard_offsets[0], s.metadata.shard_offsets[1]): s.tensor
                          for s in value.local_shards()}
                for shard in self.shards[key]:
                    shard.tensor.copy_(pieces[(shard.row, shard.column)])
            else:
                self.load_full(key, value)
        self.model.load_state_dict(dense, strict=False)

    def optimizer_state(self) -> dict[str, Any]:
        """The fused optimizers' state as flat ``fused/<path>/<param>/<name>`` entries."""
        flat = {}
        for path, table, optimizer in self._fused_optimizers():
            for param, values in optimizer.state_dict()["state"].items():
                for key, value in values.items():
                    flat[f"fused/{path}/{table}/{param}/{key}"] = value
        return flat

    def _fused_optimizers(self) -> Iterator[tuple[str, str, Any]]:
        for path, split in self.splits.items():
            for table in sorted(split.trainable_tables):
                yield path, table, split.tables[table].fused_optimizer

    def load_optimizer_state(self, tensors: Mapping[str, Any]) -> None:
        for path, table, optimizer in self._fused_optimizers():
            saved = optimizer.state_dict()
            prefix = f"fused/{path}/{table}/"
            state: dict[str, dict[str, Any]] = {param: {} for param in saved["state"]}
            for key, value in tensors.items():
                if key.startswith(prefix):
                    param, name = key[len(prefix):].rsplit("/", 1)
                    state.setdefault(param, {})[name] = value
            # param groups are torchrec's to keep (absent unless it saves them)
            optimizer.load_state_dict({**saved, "state": state})

    def set_rate(self, path: str, rate: float) -> None:
        """The fused learning rate of ``path``'s trainable tables from the next backward."""
        for owner, _, optimizer in self._fused_optimizers():
            if owner != path:
                continue
            for group in optimizer.param_groups:
                group["lr"] = rate
            optimizer.step()  # torchrec's fused optimizers hand the rate to FBGEMM here

    @property
    def trainable_parameter_count(self) -> int:
        """Scalars of the trainable tables (whole tables, over all ranks)."""
        count = 0
        for name in self.trainable:
            path, table = _split_name(name)
            config = next(c for c in self.splits[path].configs if c.name == table)
            count += config.num_embeddings * config.embedding_dim
        return count


def _name(path: str, table: str) -> str:
    return f"{path}.embedding_bags.{table}.weight" if path else f"embedding_bags.{table}.weight"


def _split_name(name: str) -> tuple[str, str]:
    """``item_ebc.embedding_bags.item_id.weight`` -> (``item_ebc``, ``item_id``)."""
    head, _, _ = name.rpartition(".")  # drop ".weight"
    path, _, table = head.rpartition(".")
    return path.removesuffix(".embedding_bags").removesuffix("embedding_bags"), table


def _plain_key(key: str) -> str:
    """``item_ebc.tables.item_id.embedding_bags.item_id.weight`` -> the plain model's
    ``item_ebc.embedding_bags.item_id.weight``."""
    return re.sub(r"(^|\.)tables\.[^.]+\.embedding_bags\.", r"\1embedding_bags.", key)


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    owner, _, attr = path.rpartition(".")
    setattr(root.get_submodule(owner) if owner else root, attr, module)


__all__ = ["ShardedTables", "SplitTables"]

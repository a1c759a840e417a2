"""Sharding plans: torchrec's planner, per-table choices, and a sharder that allows
row-wise sharding of embedding-bag tables on CPU.

torchrec's ``EmbeddingBagCollectionSharder`` offers row-wise types only for CUDA (measured
on torchrec 1.8.0: the CPU kernels handle them, and a row-wise sharded forward equals the
unsharded one), so the planner never picks row-wise on CPU and a row-wise constraint
finds no candidate. ``RecftSharder`` adds it; the types recft offers are the four below.

Each table is planned alone: ``recft.train.sharded_tables`` gives every table its own
sharded collection (torchrec 1.8 mis-pools when one collection mixes sharding types on
CPU; see there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torchrec.distributed.embedding_types import EmbeddingComputeKernel
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from torchrec.distributed.types import ShardingPlan, ShardingType

from recft.config import ConfigError

SHARDING_TYPES = {
    "table_wise": ShardingType.TABLE_WISE.value,
    "row_wise": ShardingType.ROW_WISE.value,
    "column_wise": ShardingType.COLUMN_WISE.value,
    "data_parallel": ShardingType.DATA_PARALLEL.value,
}


class RecftSharder(EmbeddingBagCollectionSharder):
    """The stock sharder, with row-wise allowed on every device and only recft's types."""

    def sharding_types(self, compute_device_type: str) -> list[str]:
        return list(SHARDING_TYPES.values())


def parse_sharding(text: str | None) -> dict[str, str]:
    """``"item_id=row_wise,user_id=table_wise"`` -> ``{"item_id": "row_wise", ...}``.

    Raises:
        ConfigError: an entry is not ``table=type`` or names an unknown type.
    """
    if not text:
        return {}
    choices: dict[str, str] = {}
    for position, entry in enumerate(str(text).split(","), start=1):
        table, sep, kind = (part.strip() for part in entry.partition("="))
        if not sep or not table or not kind:
            raise ConfigError(f"--sharding entry {position} {entry!r} is not TABLE=TYPE "
                              f"(e.g. item_id=row_wise)")
        if kind not in SHARDING_TYPES:
            raise ConfigError(f"--sharding entry {position}: {kind!r} for table {table!r} is "
                              f"not one of {sorted(SHARDING_TYPES)}")
        choices[table] = kind
    return choices


def table_names(model: nn.Module) -> list[str]:
    """Names of every embedding-bag table of ``model`` (as ``--sharding`` spells them)."""
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    return [config.name for module in model.modules()
            if isinstance(module, EmbeddingBagCollection)
            for config in module.embedding_bag_configs()]


def plan_sharding(model: nn.Module, choices: Mapping[str, str], *, world_size: int,
                  local_world_size: int, group: Any, device_type: str = "cpu") -> ShardingPlan:
    """The plan of every embedding-bag collection in ``model``: torchrec's planner (run on
    rank 0 and broadcast), constrained to the chosen type for each table in ``choices``.

    Model-parallel tables always use the fused kernel (their optimizer is applied in
    backward); data-parallel tables use the dense one (replicated, optimizer after the
    gradients are averaged).

    Raises:
        ConfigError: ``choices`` names a table the model does not have.
    """
    known = table_names(model)
    unknown = sorted(set(choices) - set(known))
    if unknown:
        raise ConfigError(f"--sharding names {unknown}, not tables of this model "
                          f"(its tables: {sorted(known)})")
    constraints = {}
    for table in known:
        kinds = [SHARDING_TYPES[choices[table]]] if table in choices else list(
            SHARDING_TYPES.values())
        kernels = [EmbeddingComputeKernel.DENSE.value if kind == SHARDING_TYPES["data_parallel"]
                   else EmbeddingComputeKernel.FUSED.value for kind in kinds]
        constraints[table] = ParameterConstraints(sharding_types=kinds,
                                                  compute_kernels=sorted(set(kernels)))
    topology = Topology(world_size=world_size, local_world_size=local_world_size,
                        compute_device=device_type)
    planner = EmbeddingShardingPlanner(topology=topology, constraints=constraints)
    return planner.collective_plan(model, [RecftSharder()], group)


def plan_summary(plan: ShardingPlan) -> dict[str, dict[str, Any]]:
    """JSON-ready ``{table: {"module", "sharding", "kernel", "ranks", "shards"}}``; shards are
    ``[row offset, column offset, rows, columns, rank]`` each."""
    summary: dict[str, dict[str, Any]] = {}
    for module_path, module_plan in plan.plan.items():
        for table, sharding in module_plan.items():  # type: ignore[union-attr]
            shards = []
            spec = getattr(sharding, "sharding_spec", None)
            for shard in getattr(spec, "shards", None) or []:
                shards.append([*shard.shard_offsets, *shard.shard_sizes,
                               shard.placement.rank() if shard.placement else None])
            summary[table] = {"module": _plain_path(module_path),
                              "sharding": sharding.sharding_type,
                              "kernel": sharding.compute_kernel,
                              "ranks": list(sharding.ranks or []), "shards": shards}
    return dict(sorted(summary.items()))


def format_plan(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The plan as a few aligned lines (what rank 0 prints)."""
    lines = [f"sharding plan ({len(summary)} tables):"]
    width = max((len(name) for name in summary), default=5)
    for table, entry in summary.items():
        ranks = ",".join(str(r) for r in entry["ranks"]) or "all"
        lines.append(f"  {table:<{width}}  {entry['sharding']:<13} ranks {ranks}  "
                     f"({entry['module']})")
    return "\n".join(lines)


def _plain_path(module_path: str) -> str:
    """``item_ebc.tables.item_id`` -> ``item_ebc``: the collection as the plain model names
    it."""
    head, _, _ = module_path.rpartition(".")
    return head.removesuffix(".tables") if head.endswith(".tables") else module_path


__all__ = ["RecftSharder", "SHARDING_TYPES", "format_plan", "parse_sharding", "plan_sharding",
           "plan_summary", "table_names"]

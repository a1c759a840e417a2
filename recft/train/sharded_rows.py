"""ShardedRowScales: per-row learning rates on sharded tables.

As in one process (``Optimizers``), a fused collection has one rate, and rows that need
another (rows appended for new ids at the full rate while pretrained rows train at a
fraction of it, or pretrained rows kept fixed by ``train_only_new_rows``) have their step
rescaled after it: every offered table optimizer moves a row by ``lr * u`` with ``u``
independent of ``lr``, so ``before + r * (after - before)`` is exactly a step at ``r * lr``.

Sharded, a row is updated on the rank that owns it, with the lookups of every rank: so
before each lookup the ranks exchange the ids they will look up (one all-gather per table
and call), and each rank records and later rescales the rows of its own shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from recft.train.distributed import Distributed
from recft.train.sharded_tables import LocalShard, ShardedTables, _split_name


@dataclass
class _Scaled:
    name: str
    features: list[str]
    first_new_row: int  # rows below it step at ``old_rows`` times the collection's rate
    old_rows: float
    new_rows: float
    touched: list[tuple[LocalShard, torch.Tensor, torch.Tensor]] = field(default_factory=list)


class ShardedRowScales:
    """Rescales the steps of chosen rows of sharded tables.

    Args:
        scaled: table parameter name -> ``(first new row, old rows' rate, new rows' rate)``
            relative to the table's collection (``Optimizers.row_rates``).
    """

    def __init__(self, tables: ShardedTables, context: Distributed,
                 scaled: dict[str, tuple[int, float, float]]) -> None:
        self.tables, self.context = tables, context
        self.by_path: dict[str, list[_Scaled]] = {}
        for name, (first_new, old_rows, new_rows) in sorted(scaled.items()):
            path, table = _split_name(name)
            features = tables.splits[path].table_features[table]
            self.by_path.setdefault(path, []).append(
                _Scaled(name, features, first_new, old_rows, new_rows))
        self.hooks = [tables.splits[path].register_forward_pre_hook(self._remember_rows)
                      for path in self.by_path]
        self._paths = {id(tables.splits[path]): path for path in self.by_path}

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def _remember_rows(self, module: Any, inputs: tuple[Any, ...]) -> None:
        """Before a lookup: the rows any rank will touch that this rank owns, with their
        values before the update. Every rank runs the same lookups, so the all-gathers
        match."""
        if not torch.is_grad_enabled():
            return  # no backward follows, so no update to scale
        per_key = inputs[0].to_dict()
        for scaled in self.by_path[self._paths[id(module)]]:
            looked_up = [per_key[f].values() for f in scaled.features if f in per_key]
            ids = torch.cat(looked_up) if looked_up else torch.zeros(0, dtype=torch.int64)
            if scaled.old_rows == 1.0:
                ids = ids[ids >= scaled.first_new_row]
            elif scaled.new_rows == 1.0:
                ids = ids[ids < scaled.first_new_row]
            ids = torch.unique(torch.cat(self.context.all_gather_tensors(torch.unique(ids))))
            for shard in self.tables.shards[scaled.name]:
                rows = shard.tensor.shape[0]
                mine = ids[(ids >= shard.row) & (ids < shard.row + rows)]
                if len(mine):
                    before = shard.tensor.detach()[mine - shard.row].clone()
                    scaled.touched.append((shard, mine, before))

    @torch.no_grad()
    def rescale(self) -> None:
        """After the step: ``before + scale * (after - before)`` on the recorded rows."""
        for entries in self.by_path.values():
            for scaled in entries:
                for shard, ids, before in _first_records(scaled.touched):
                    scale = torch.where(ids < scaled.first_new_row, scaled.old_rows,
                                        scaled.new_rows).to(before.dtype)
                    weight = shard.tensor.detach()
                    local = ids - shard.row
                    after = weight[local]
                    weight[local] = before + scale.unsqueeze(1) * (after - before)
                scaled.touched.clear()


def _first_records(touched: list[tuple[LocalShard, torch.Tensor, torch.Tensor]]
                   ) -> list[tuple[LocalShard, torch.Tensor, torch.Tensor]]:
    """Per shard, each row once, with the value recorded before its first lookup of the
    step (a table looked up twice in one step was recorded twice)."""
    per_shard: dict[int, tuple[LocalShard, list[torch.Tensor], list[torch.Tensor]]] = {}
    for shard, ids, before in touched:
        entry = per_shard.setdefault(id(shard), (shard, [], []))
        entry[1].append(ids)
        entry[2].append(before)
    records = []
    for shard, ids_list, befores in per_shard.values():
        ids, befores_all = torch.cat(ids_list), torch.cat(befores)
        unique, inverse = torch.unique(ids, return_inverse=True)
        positions = torch.arange(len(ids))
        first = torch.full((len(unique),), len(ids), dtype=torch.long)
        first.scatter_reduce_(0, inverse, positions, reduce="amin")
        records.append((shard, unique, befores_all[first]))
    return records


__all__ = ["ShardedRowScales"]

"""A TwoTower's user tower over plain tensors, exported with torch.export to run without recft."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recft.models.history_pooling import pool_history
from recft.models.inputs import ITEM_ID, USER_ID

INPUTS = [
    {"name": "user_rows", "dtype": "int64", "shape": ["B"],
     "description": "row of each user in users.json; -1 for a user the model does not know"},
    {"name": "history", "dtype": "int64", "shape": ["B", "L"],
     "description": "item rows (items.json) of each user's history, oldest first, padded "
                    "with -1 on the right; entries < 0 are ignored; the most recent "
                    "max_history valid entries are pooled"},
    {"name": "lengths", "dtype": "int64", "shape": ["B"],
     "description": "valid entries per history row (positions >= length are ignored)"},
]
OUTPUT = {"name": "user_embeddings", "dtype": "float32", "shape": ["B", "D"],
          "description": "user embeddings; score = user_embeddings @ item_embeddings.T "
                         "/ temperature (the faiss index ranks by the inner product)"}


def _bag_offsets(counts: torch.Tensor) -> torch.Tensor:
    """(B + 1,) offsets [0, c0, c0 + c1, ...], the layout torchrec's bags use."""
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, dim=0)])


class FeatureBag(nn.Module):
    """One user feature: each known user's value list pooled (mean) from its table.

    The lists are stored padded, (U, widest list) with -1, so a batch gathers its rows
    with plain indexing (no data-dependent sizes for ``torch.export`` to trip on).
    """

    def __init__(self, weight: torch.Tensor, offsets: np.ndarray, values: np.ndarray) -> None:
        super().__init__()
        lengths = np.diff(offsets)
        padded = np.full((len(lengths), max(int(lengths.max(initial=0)), 1)), -1, np.int64)
        padded[np.arange(padded.shape[1]) < lengths[:, None]] = values
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("lists", torch.from_numpy(padded))

    def forward(self, user_rows: torch.Tensor) -> torch.Tensor:
        known = user_rows >= 0
        lists = self.lists[torch.where(known, user_rows, torch.zeros_like(user_rows))]
        valid = (lists >= 0) & known.unsqueeze(1)
        return F.embedding_bag(lists[valid], self.weight, _bag_offsets(valid.long().sum(1)),
                               mode="mean", include_last_offset=True)


class UserTowerOutput(nn.Module):
    """The tower MLP, plus the residual delta a fine-tuned model adds (if any)."""

    def __init__(self, tower: nn.Module, delta: nn.Module | None) -> None:
        super().__init__()
        self.tower = tower
        self.has_delta = delta is not None
        self.delta = delta if delta is not None else nn.Identity()

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        output = self.tower(base)
        if self.has_delta:
            output = output + self.delta(base)
        return output


class ExportedUserTower(nn.Module):
    """``(user_rows (B,), history (B, L), lengths (B,)) -> (B, D)`` user embeddings.

    Computes what ``TwoTower.encode_users`` computes (same pooling kernel, same layers), with
    the tables copied out of the torchrec collections, so the exported program needs only
    torch. Inputs are described by ``INPUTS``.

    Example::

        tower = ExportedUserTower.from_model(model)
        embeddings = tower(torch.tensor([0, -1]), torch.tensor([[3, 5], [7, -1]]),
                           torch.tensor([2, 1]))
    """

    def __init__(self, user_table: torch.Tensor, item_table: torch.Tensor,
                 features: list[FeatureBag], output: UserTowerOutput, use_history: bool,
                 max_history: int, normalize: bool, item_text_table: torch.Tensor | None = None,
                 pool_item_ids: bool = True, history_pooler: nn.Module | None = None) -> None:
        super().__init__()
        # a learned pooler (TwoTowerConfig.history_pooling) replaces the mean of the rows
        self.history_pooler = history_pooler
        self.register_buffer("user_table", user_table.detach().clone())
        self.register_buffer("item_table", item_table.detach().clone())
        # a text model's projected item texts, pooled like the id rows (text_path)
        self.has_text = item_text_table is not None
        self.register_buffer("item_text_table", item_text_table.detach().clone()
                             if item_text_table is not None else torch.zeros(0))
        self.pool_item_ids = pool_item_ids
        self.features = nn.ModuleList(features)
        self.output = output
        self.use_history = use_history
        self.max_history = max_history
        self.normalize = normalize

    @classmethod
    def from_model(cls, model: Any) -> ExportedUserTower:
        """Copy a (fine-tuned) TwoTower's user side; LoRA adapters are merged first."""
        model = copy.deepcopy(model).cpu().eval()
        if any(hasattr(m, "delta_weight") for m in model.modules()):
            from recft.models.adapters import merge_adapters

            model = merge_adapters(model)
        user_tables = model.user_ebc.embedding_bags
        features = []
        for name in model.config.user_feature_sizes:
            feature = model.user_features[name]
            features.append(FeatureBag(user_tables[name].weight, feature.offsets, feature.values))
        residual = getattr(model, "residual_towers", None)
        output = UserTowerOutput(model.user_tower,
                                 residual.user if residual is not None else None)
        config = model.config
        text = getattr(model, "item_text", None)
        with torch.no_grad():
            text_table = None if text is None else text.projected_table()
        return cls(user_tables[USER_ID].weight, model.item_ebc.embedding_bags[ITEM_ID].weight,
                   features, output, config.use_history, config.max_history, config.normalize,
                   item_text_table=text_table,
                   pool_item_ids=getattr(model, "reads_item_ids", True),
                   history_pooler=getattr(model, "history_pooler", None))

    def forward(self, user_rows: torch.Tensor, history: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        known = user_rows >= 0
        blocks = [F.embedding_bag(user_rows[known], self.user_table, _bag_offsets(known.long()),
                                  mode="mean", include_last_offset=True)]
        if self.use_history:
            positions = torch.arange(history.shape[1], dtype=torch.int64,
                                     device=history.device).unsqueeze(0)
            valid = (history >= 0) & (positions < lengths.unsqueeze(1))
            # keep each row's most recent max_history valid entries (rows are oldest first)
            seen_from_end = valid.long().flip([1]).cumsum(1).flip([1])
            keep = valid & (seen_from_end <= self.max_history)
            offsets = _bag_offsets(keep.long().sum(1))
            if self.history_pooler is not None:  # the kept rows in place, holes masked
                items = self.item_table[torch.where(keep, history, torch.zeros_like(history))]
                blocks.append(pool_history(self.history_pooler, items, keep,
                                           seen_from_end - 1, blocks[0]))
            elif self.pool_item_ids:
                blocks.append(F.embedding_bag(history[keep], self.item_table, offsets,
                                              mode="mean", include_last_offset=True))
            if self.has_text:
                blocks.append(F.embedding_bag(history[keep], self.item_text_table, offsets,
                                              mode="mean", include_last_offset=True))
        for feature in self.features:
            blocks.append(feature(user_rows))
        output = self.output(torch.cat(blocks, dim=1))
        if self.normalize:
            output = F.normalize(output, dim=-1)
        return output


def export_user_tower(model: Any) -> torch.export.ExportedProgram:
    """``torch.export`` program of ``ExportedUserTower.from_model(model)`` with dynamic batch
    and history widths (save it with ``torch.export.save``; load it with
    ``torch.export.load(path).module()``, torch only).

    Example::

        torch.export.save(export_user_tower(model), "user_tower.pt2")
    """
    from torch.export import Dim

    tower = ExportedUserTower.from_model(model).eval()
    # an example with a known and an unknown user, padding and an over-long row; every
    # size is declared dynamic, so nothing is specialised to it
    example = (torch.tensor([0, -1, 0]), torch.tensor([[0, 0, -1], [0, 0, 0], [0, -1, -1]]),
               torch.tensor([2, 3, 1]))
    shapes = ({0: Dim.AUTO}, {0: Dim.AUTO, 1: Dim.AUTO}, {0: Dim.AUTO})
    with torch.no_grad():
        return torch.export.export(tower, example, dynamic_shapes=shapes, strict=False)

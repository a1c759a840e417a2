"""Learned pooling of a user's history items: attention, or a small transformer, over the
item rows of the torchrec ``item_id`` table (``TwoTowerConfig.history_pooling``).

The default ``"mean"`` pools the history inside the ``EmbeddingBagCollection`` (a MEAN
bag) and uses nothing from this file. The learned modes need every history item's own row:
``lookup_history_rows`` gets them from the same collection in the same single call as the
item bags, by giving each history item a bag of its own, so the rows are trained by the
tables' optimizer (fused in backward) exactly like every other lookup. The pooling modules
are dense layers, trained by the dense optimizer.

Both learned poolers take the history as a padded ``(B, L, D)`` block with a ``(B, L)``
mask of real items (holes allowed: the exported user tower keeps the tail of each row) and
each item's recency (0 = most recent). A row without history pools to zeros, as an empty
MEAN bag does.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft.models.inputs import ITEM_HISTORY

HISTORY_POOLINGS = ("mean", "attention", "transformer")
TRANSFORMER_LAYERS = 1  # one layer: ml-100k histories are short and CPU time is the limit


def lookup_history_rows(collection: nn.Module, item_features: KeyedJaggedTensor,
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One call of the item collection giving the B pooled bags of every item feature and
    the N history items' own rows.

    The call's batch is B + N rows: the first B hold the item bags (history emptied), the
    other N one history item each (every other feature empty). One call, not two, so a
    fused table steps once per batch as it does in ``"mean"`` mode.

    Returns:
        ``{feature: (B, D)}`` without ``item_history``, and ``(N, D)`` history rows in the
        KJT's order (row by row, oldest first).
    """
    per_key = item_features.to_dict()
    batch = item_features.stride()
    history = per_key[ITEM_HISTORY].values()
    count = history.numel()
    lengths, values = [], []
    for key in item_features.keys():
        jagged = per_key[key]
        if key == ITEM_HISTORY:
            lengths += [jagged.lengths().new_zeros(batch), jagged.lengths().new_ones(count)]
        else:
            lengths += [jagged.lengths(), jagged.lengths().new_zeros(count)]
        values.append(jagged.values())
    spread = KeyedJaggedTensor(keys=item_features.keys(), values=torch.cat(values),
                               lengths=torch.cat(lengths), stride=batch + count)
    pooled = collection(spread).to_dict()
    bags = {key: rows[:batch] for key, rows in pooled.items() if key != ITEM_HISTORY}
    return bags, pooled[ITEM_HISTORY][batch:]


def is_sharded(collection: nn.Module) -> bool:
    """True for a collection torchrec's DMP has sharded (sharded training, ``--nproc``):
    its lookups are split over ranks, and the per-item lookup is not supported there."""
    return any(type(m).__module__.startswith("torchrec.distributed")
               for m in collection.modules())


def padded_history(rows: torch.Tensor, lengths: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jagged history rows ``(N, D)`` with ``lengths (B,)`` as ``(B, L, D)`` items, a
    ``(B, L)`` mask and ``(B, L)`` recency (0 = the last item of the row)."""
    width = max(int(lengths.max()) if lengths.numel() else 0, 1)
    positions = torch.arange(width, device=lengths.device)
    mask = positions.unsqueeze(0) < lengths.unsqueeze(1)
    items = rows.new_zeros(len(lengths), width, rows.shape[-1])
    items[mask] = rows
    recency = (lengths.unsqueeze(1) - 1 - positions.unsqueeze(0)).clamp(min=0)
    return items, mask, recency


class AttentionPooling(nn.Module):
    """Softmax attention over the history items, queried by the user.

    The query is a learned vector plus a linear map of the user's id row: a user unknown to
    the vocabulary (a zero id row) is served by the learned vector and their history alone.
    Query and key maps start at zero, so an untrained pooler is exactly the mean of the
    history: training can only move it away from the ``"mean"`` model where that helps.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim))
        self.user_query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.user_query.weight)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, user: torch.Tensor,
                ) -> torch.Tensor:
        """``items (B, L, D)``, ``mask (B, L)``, ``user (B, D)`` -> ``(B, D)``."""
        query = self.query + self.user_query(user)
        scores = torch.einsum("bld,bd->bl", self.key(items), query) * self.scale
        # a finite floor, not -inf: a row with no item gets uniform weights, then zeros
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * mask
        return torch.einsum("bl,bld->bd", weights, items)


class TransformerPooling(nn.Module):
    """A small transformer encoder over the history in order (recency embeddings added),
    then attention pooling of its outputs."""

    def __init__(self, dim: int, max_history: int, dropout: float) -> None:
        super().__init__()
        self.recency = nn.Embedding(max_history, dim)
        nn.init.normal_(self.recency.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, nhead=2 if dim % 2 == 0 else 1, dim_feedforward=2 * dim, dropout=dropout,
            batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, TRANSFORMER_LAYERS,
                                             enable_nested_tensor=False)
        self.pool = AttentionPooling(dim)

    def forward(self, items: torch.Tensor, mask: torch.Tensor, recency: torch.Tensor,
                user: torch.Tensor) -> torch.Tensor:
        """As ``AttentionPooling``, with each item's recency ``(B, L)``."""
        recency = recency.clamp(0, self.recency.num_embeddings - 1)  # padding: any slot
        hidden = items + self.recency(recency)
        # a row with no item attends to its first slot (an all-masked row would give NaN);
        # the pooling mask then zeroes that row
        padding = ~mask
        padding[:, 0] = padding[:, 0] & mask.any(dim=1)
        hidden = self.encoder(hidden, src_key_padding_mask=padding)
        return self.pool(hidden, mask, user)


def history_pooler(mode: str, dim: int, max_history: int, dropout: float) -> nn.Module | None:
    """The pooling module of ``mode`` (None for ``"mean"``: the MEAN bag pools)."""
    if mode == "attention":
        return AttentionPooling(dim)
    if mode == "transformer":
        return TransformerPooling(dim, max_history, dropout)
    return None


def pool_history(pooler: nn.Module, items: torch.Tensor, mask: torch.Tensor,
                 recency: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
    """Call either pooler with the padded history (recency only reaches the transformer)."""
    if isinstance(pooler, TransformerPooling):
        return pooler(items, mask, recency, user)
    return pooler(items, mask, user)


__all__ = ["AttentionPooling", "HISTORY_POOLINGS", "TransformerPooling", "history_pooler",
           "is_sharded", "lookup_history_rows", "padded_history", "pool_history"]

"""FusedTables: an EmbeddingBagCollection whose trainable tables update inside backward.

torchrec's ``FusedEmbeddingBagCollection`` runs FBGEMM kernels that apply the optimizer
during backward and touch only the rows a batch looked up: with a million-row table a
dense optimizer step is ~30x slower. One fused collection has one optimizer for all its
tables, so a collection with frozen tables keeps those in a plain collection beside it:
they get neither gradient nor optimizer state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor


class FusedTables(nn.Module):
    """Drop-in for an ``EmbeddingBagCollection`` during training.

    Args:
        plain: the collection to train (its weights are copied into the fused buffer).
        trainable: names of the tables that train; the others stay frozen and plain.
        optimizer_class / optimizer_kwargs: what torchrec maps onto FBGEMM's fused kernel.
    """

    def __init__(self, plain: EmbeddingBagCollection, trainable: set[str],
                 optimizer_class: type, optimizer_kwargs: dict[str, Any]) -> None:
        super().__init__()
        configs = plain.embedding_bag_configs()
        device = next(plain.parameters()).device
        self.feature_order = [f for c in configs for f in c.feature_names]
        self.table_features = {c.name: list(c.feature_names) for c in configs}
        fused_configs = [c for c in configs if c.name in trainable]
        self.fused = FusedEmbeddingBagCollection(fused_configs, optimizer_type=optimizer_class,
                                                 optimizer_kwargs=optimizer_kwargs,
                                                 device=device)
        with torch.no_grad():
            for config in fused_configs:
                self.fused.embedding_bags[config.name].weight.copy_(
                    plain.embedding_bags[config.name].weight)
        frozen_configs = [c for c in configs if c.name not in trainable]
        self.frozen: EmbeddingBagCollection | None = None
        if frozen_configs:
            self.frozen = _collection_of(frozen_configs, {
                c.name: plain.embedding_bags[c.name].weight for c in frozen_configs}, device)
        self.fused_features = {f for c in fused_configs for f in c.feature_names}
        weights = {c.name: self.table_weight(c.name) for c in configs}
        # a plain view sharing every weight: for inference, state dicts and resume state
        # (kept out of the module tree so its parameters are not registered twice)
        self._view = (_collection_of(configs, weights, device),)

    @property
    def plain_view(self) -> EmbeddingBagCollection:
        return self._view[0]

    def table_weight(self, table: str) -> torch.Tensor:
        """The live weight of ``table`` (a view into the fused buffer when it trains)."""
        if table in self.fused.embedding_bags:
            return self.fused.embedding_bags[table].weight
        assert self.frozen is not None
        return self.frozen.embedding_bags[table].weight

    def fused_optimizer(self) -> Any:
        return self.fused.fused_optimizer()

    def set_learning_rate(self, lr: float) -> None:
        """The rate of the fused update from the next backward on."""
        optimizer = self.fused.fused_optimizer()
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()  # torchrec's fused optimizers only hand the rate to FBGEMM here

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        if self.frozen is None:
            return self.fused(features)
        per_key = features.to_dict()
        fused_in = {k: v for k, v in per_key.items() if k in self.fused_features}
        frozen_in = {k: v for k, v in per_key.items() if k not in self.fused_features}
        pooled = {**self.fused(KeyedJaggedTensor.from_jt_dict(fused_in)).to_dict(),
                  **self.frozen(KeyedJaggedTensor.from_jt_dict(frozen_in)).to_dict()}
        keys = [k for k in self.feature_order if k in pooled]
        return KeyedTensor.from_tensor_list(keys, [pooled[k] for k in keys])

    def to_plain(self) -> EmbeddingBagCollection:
        """A plain collection holding the trained weights in its own storage (the fused
        module's flat buffer is released with it)."""
        view = self.plain_view
        for bag in view.embedding_bags.values():
            bag.weight = nn.Parameter(bag.weight.detach().clone(),
                                      requires_grad=bag.weight.requires_grad)
        return view


def _collection_of(configs: list, weights: dict[str, torch.Tensor],
                   device: torch.device) -> EmbeddingBagCollection:
    """A plain collection whose tables are the given tensors (no copy)."""
    # built on the meta device: no throw-away random init, no memory, no RNG draws
    collection = EmbeddingBagCollection(configs, device=torch.device("meta"))
    for name, bag in collection.embedding_bags.items():
        weight = weights[name]
        bag.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(
            weight, requires_grad=weight.requires_grad)
    collection._device = device  # torchrec records the construction device; keep it truthful
    return collection


__all__ = ["FusedTables"]

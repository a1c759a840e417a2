"""The retrieval objective shared by pretraining and fine-tuning: batch -> scalar loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recft.config import ConfigError
from recft.train.batches import Batch
from recft.train.losses import bpr_loss, sampled_softmax_loss

SOFTMAX = ("softmax", "sampled_softmax")  # pretraining's and recipes' names for it
RETRIEVAL_LOSSES = (*SOFTMAX, "bpr")


def retrieval_loss(model: nn.Module, batch: Batch, loss: str, temperature: float,
                   embeddings: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Sampled softmax over in-batch (and extra uniform) negatives with logQ correction, or
    BPR against the batch's uniform negatives.

    Args:
        embeddings: the batch's ``(user_emb, item_emb)`` when the caller has computed them.
    """
    if loss not in RETRIEVAL_LOSSES:
        raise ConfigError(f"retrieval loss must be one of {RETRIEVAL_LOSSES}, got {loss!r}")
    user_emb, item_emb = embeddings or model(batch.user_features, batch.item_features)
    negatives = None
    if batch.negative_features is not None:
        negatives = model.encode_item_features(batch.negative_features)
    if loss in SOFTMAX:
        return sampled_softmax_loss(
            user_emb, item_emb, temperature, log_q=batch.log_q,
            extra_negatives=negatives, extra_log_q=batch.negative_log_q,
            item_ids=batch.item_ids, extra_item_ids=batch.negative_ids, weights=batch.weights,
        )
    if negatives is None:
        raise ConfigError("loss 'bpr' needs uniform negatives (num_negatives >= 1)")
    positive = (user_emb * item_emb).sum(-1) / temperature
    negative = user_emb @ negatives.T / temperature
    mask = batch.item_ids.unsqueeze(1) != batch.negative_ids.unsqueeze(0)
    return bpr_loss(positive, negative, batch.weights, mask=mask)


@dataclass
class RetrievalObjective:
    """``fit``'s objective for a two-tower trained on retrieval alone (pretraining)."""

    loss: str
    temperature: float

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return retrieval_loss(model, batch, self.loss, self.temperature)


__all__ = ["RETRIEVAL_LOSSES", "RetrievalObjective", "retrieval_loss"]

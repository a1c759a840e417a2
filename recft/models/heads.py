"""Task heads attached for fine-tuning: a new retrieval tower pair, rating, binary, your own.

Extension point: a head is an ``nn.Module`` that follows :class:`Head` and is built by a
factory registered under a name::

    class Popularity(nn.Module):               # scores (user, item) pairs, trains on labels
        def __init__(self, dim: int):
            super().__init__()
            self.bias = nn.Linear(dim, 1)
        def forward(self, user_repr, item_repr):
            return self.bias(item_repr).squeeze(-1)           # (B,)
        def loss(self, outputs, batch):
            return nn.functional.binary_cross_entropy_with_logits(outputs, batch.labels)

    register_head("popularity", lambda model, **options: Popularity(model.config.output_dim))
    recipe = Recipe.default(heads=["retrieval", "popularity"])

``user_repr`` / ``item_repr`` are the (B, D) tower outputs; ``batch`` is a
:class:`HeadBatch`. The factory receives the model and the head's options, which are saved
in the checkpoint's config so ``load_pretrained`` rebuilds the head (register it first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from recft.errors import TrainingError


@dataclass
class HeadBatch:
    """Labels of one batch of (user, item) pairs for task heads.

    Attributes:
        ratings: (B,) observed ratings / play counts of the pairs, or None.
        labels: (B,) float 0/1 targets for binary heads (threshold on ratings, or 1 for
            observed pairs and 0 for sampled negatives).
        weights: (B,) example weights (mean about 1).
    """

    ratings: torch.Tensor | None
    labels: torch.Tensor
    weights: torch.Tensor


@runtime_checkable
class Head(Protocol):
    """What a task head provides (see the module docstring for a full example)."""

    def forward(self, user_repr: torch.Tensor, item_repr: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) predictions or logits."""
        ...

    def loss(self, outputs: torch.Tensor, batch: HeadBatch) -> torch.Tensor:
        """Scalar loss of ``forward``'s outputs against ``batch``."""
        ...


HeadFactory = Callable[..., nn.Module]


class ResidualTowers(nn.Module):
    """A new retrieval tower pair: fresh MLPs over the pretrained base representations whose
    output is *added* to the pretrained towers' output.

    The last layer starts at zero, so fine-tuning starts exactly at the zero-shot model and
    the frozen stage can only move it where the target's data pulls.
    """

    def __init__(self, user_in: int, item_in: int, out_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.user = _mlp(user_in, hidden, out_dim)
        self.item = _mlp(item_in, hidden, out_dim)

    def user_delta(self, user_base: torch.Tensor) -> torch.Tensor:
        """(B, user_base_dim) -> (B, D)."""
        return self.user(user_base)

    def item_delta(self, item_base: torch.Tensor) -> torch.Tensor:
        """(B, item_base_dim) -> (B, D)."""
        return self.item(item_base)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    last = nn.Linear(hidden, out_dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), last)


class PairHead(nn.Module):
    """MLP over ``[u, i, u * i]`` -> one value per pair; base of the rating and binary heads."""

    def __init__(self, dim: int, hidden: int = 64, bias: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.net[-1].bias, bias)

    def forward(self, user_repr: torch.Tensor, item_repr: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,)."""
        joint = torch.cat([user_repr, item_repr, user_repr * item_repr], dim=-1)
        return self.net(joint).squeeze(-1)


class RatingHead(PairHead):
    """Explicit rating regression (weighted MSE); the bias starts at the mean rating."""

    def loss(self, outputs: torch.Tensor, batch: HeadBatch) -> torch.Tensor:
        if batch.ratings is None:
            raise TrainingError("the rating head needs ratings (explicit or count feedback)")
        return (batch.weights * (outputs - batch.ratings) ** 2).sum() / batch.weights.sum()


class BinaryHead(PairHead):
    """Like / listen / click probability (weighted BCE on logits)."""

    def loss(self, outputs: torch.Tensor, batch: HeadBatch) -> torch.Tensor:
        losses = F.binary_cross_entropy_with_logits(outputs, batch.labels, reduction="none")
        return (batch.weights * losses).sum() / batch.weights.sum()


def _retrieval(model: nn.Module, hidden: int = 64) -> nn.Module:
    return ResidualTowers(model.user_base_dim, model.item_base_dim, model.config.output_dim,
                          hidden)


def _rating(model: nn.Module, hidden: int = 64, mean_rating: float = 0.0) -> nn.Module:
    return RatingHead(model.config.output_dim, hidden, bias=mean_rating)


def _binary(model: nn.Module, hidden: int = 64) -> nn.Module:
    return BinaryHead(model.config.output_dim, hidden)


HEADS: dict[str, HeadFactory] = {"retrieval": _retrieval, "rating": _rating, "binary": _binary}
RETRIEVAL = "retrieval"  # the one kind that changes the encoders rather than scoring pairs


def register_head(name: str, factory: HeadFactory, *, overwrite: bool = False) -> None:
    """Make ``name`` usable in ``Recipe.heads`` and loadable from checkpoints.

    Args:
        factory: ``factory(model, **options) -> nn.Module`` following :class:`Head`.
    """
    if name in HEADS and not overwrite:
        raise TrainingError(f"head {name!r} is already registered; pass overwrite=True")
    HEADS[name] = factory


def build_head(model: nn.Module, kind: str, options: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a registered head for ``model``; unknown kinds list the registered ones."""
    if kind not in HEADS:
        raise TrainingError(f"unknown head {kind!r}; registered heads: {sorted(HEADS)} "
                            "(add yours with recft.finetune.register_head)")
    head = HEADS[kind](model, **(options or {}))
    if kind != RETRIEVAL and not isinstance(head, Head):
        raise TrainingError(f"head {kind!r} must define forward(user_repr, item_repr) and "
                            "loss(outputs, batch)")
    return head

"""TargetScorer: score a vocabulary-grown model in the target domain's own ids and catalog."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.finetune.vocab_transfer import VocabAlignment


class TargetScorer(nn.Module):
    """A ``recft.evaluate.Scorer`` over the target's rows for a model aligned to it.

    The model's catalog is the pretrained one grown by the target's new items; ranking it
    whole would let source-only items compete. This scorer ranks exactly the target's
    catalog, so a fine-tuned model, a scratch model and a baseline are compared on the
    same candidates. It is an embedding scorer (``encode_users``, ``encode_items``,
    ``score``), so ``recft.evaluate`` encodes the target catalog once per evaluation.

    Example::

        scorer = TargetScorer(result.model, result.alignment)
        evaluate(scorer, split.test, exclude=split.train)      # target rows throughout
    """

    def __init__(self, model: nn.Module, alignment: VocabAlignment) -> None:
        super().__init__()
        self.model = model
        self.alignment = alignment
        self._cache: tuple[Any, Interactions] | None = None

    def encode_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B,) target user rows, target-vocabulary history -> (B, D)."""
        rows = self.alignment.user_rows[np.asarray(users, dtype=np.int64)]
        return self.model.encode_users(rows, self._remapped(history))

    def encode_items(self) -> torch.Tensor:
        """(target catalog, D) in the target's item order."""
        return self.model.encode_items(self.alignment.item_rows)

    def score(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self.model.score(user_emb, item_emb)

    @torch.no_grad()
    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B,) target user rows, target-vocabulary history -> (B, target catalog) scores."""
        with _eval_mode(self):
            return self.score(self.encode_users(users, history), self.encode_items())

    def _remapped(self, history: Interactions) -> Interactions:
        # evaluation calls once per user chunk with the same history: remap it once
        if self._cache is not None and self._cache[0]() is history:
            return self._cache[1]
        remapped = self.alignment.remap(history)
        self._cache = (weakref.ref(history), remapped)
        return remapped

    def __repr__(self) -> str:
        return (f"TargetScorer({type(self.model).__name__}, "
                f"catalog={len(self.alignment.item_rows):,})")


class CatalogMask(nn.Module):
    """A ``Scorer`` in the model's own rows that ranks only ``allowed`` items (the target's
    catalog inside a grown model): the others score -inf. Fine-tuning validates with it on
    data remapped once, instead of remapping on every call; like the model, it is an
    embedding scorer, so evaluation encodes the catalog once.
    """

    def __init__(self, model: nn.Module, allowed: np.ndarray) -> None:
        super().__init__()
        self.model = model
        blocked = torch.ones(model.catalog_size, dtype=torch.bool)
        blocked[torch.from_numpy(np.asarray(allowed, dtype=np.int64))] = False
        self.register_buffer("blocked", blocked, persistent=False)

    def encode_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        return self.model.encode_users(users, history)

    def encode_items(self) -> torch.Tensor:
        return self.model.encode_items()

    def score(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        scores = self.model.score(user_emb, item_emb)
        if len(self.blocked) != scores.shape[1]:  # the catalog grew after this mask was made
            raise ValueError("CatalogMask is stale: the model's catalog changed size")
        return scores.masked_fill(self.blocked.to(scores.device), float("-inf"))

    @torch.no_grad()
    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        with _eval_mode(self):
            return self.score(self.encode_users(users, history), self.encode_items())


class _eval_mode:
    """Eval mode (no dropout) for the duration, then the previous mode."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was_training = module, module.training

    def __enter__(self) -> None:
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)


def target_scorer(model: nn.Module, target: Interactions, init: str = "feature_mean",
                  user_init: str = "zeros") -> TargetScorer:
    """Score ``target``'s ids and catalog with ``model``, aligning vocabularies by raw id.

    Ids the model has never seen get new rows (``init`` / ``user_init``; new users start at
    zeros, so their history alone represents them); nothing trains. Use it to evaluate a
    saved fine-tuned checkpoint on its target data, or any checkpoint on another dataset.

    Example::

        scorer = target_scorer(load_pretrained("runs/tuned"), split.train)
        evaluate(scorer, split.test, exclude=split.known("test"))
    """
    from recft.finetune.vocab_transfer import align_vocabulary

    alignment = align_vocabulary(model, target, init=init, user_init=user_init)
    return TargetScorer(model.eval(), alignment)


def zero_shot(model: nn.Module, target: Interactions, init: str = "feature_mean",
              user_init: str = "zeros", through_text: str | bool = "auto") -> nn.Module:
    """The pretrained model, untouched, scoring the target domain: the "zero-shot" row of
    every comparison.

    For most bases that is ``target_scorer``: the base's own towers. A base that reads item
    text and knows none of the target's items (movies -> music) is scored through its text
    space instead (``recft.finetune.cross_domain.TextHistoryScorer``: users are the mean
    projected text of their history, plus the target's log-popularity), because its towers
    read those items through id rows that carry nothing.

    Args:
        through_text: ``"auto"`` (the rule above), ``True`` (the text scorer; the base
            must read text) or ``False`` (the towers, whatever the base).
    """
    scorer = target_scorer(model, target, init=init, user_init=user_init)
    if through_text == "auto":
        through_text = (getattr(model, "item_text", None) is not None
                        and scorer.alignment.counts["items"]["matched"] == 0)
    if not through_text:
        return scorer
    from recft.finetune.cross_domain import TextHistoryScorer

    return TextHistoryScorer(scorer.model, scorer.alignment, target)

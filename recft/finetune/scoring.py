"""TargetScorer: score a vocabulary-grown model in the target domain's own ids and catalog."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.finetune.vocab_transfer import VocabAlignment


class TargetScorer:
    """A ``recft.evaluate.Scorer`` over the target's rows for a model aligned to it.

    The model's catalog is the pretrained one grown by the target's new items; ranking it
    whole would let source-only items compete. This scorer ranks exactly the target's
    catalog, so a fine-tuned model, a scratch model and a baseline are compared on the
    same candidates.

    Example::

        scorer = TargetScorer(result.model, result.alignment)
        evaluate(scorer, split.test, exclude=split.train)      # target rows throughout
    """

    def __init__(self, model: nn.Module, alignment: VocabAlignment) -> None:
        self.model = model
        self.alignment = alignment
        self._item_index = torch.from_numpy(alignment.item_rows)
        self._cache: tuple[Any, Interactions] | None = None

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B,) target user rows, target-vocabulary history -> (B, target catalog) scores."""
        remapped = self._remapped(history)
        rows = self.alignment.user_rows[np.asarray(users, dtype=np.int64)]
        scores = self.model.score_users(rows, remapped)
        return scores[:, self._item_index.to(scores.device)]

    def _remapped(self, history: Interactions) -> Interactions:
        # evaluation calls once per user chunk with the same history: remap it once
        if self._cache is not None and self._cache[0]() is history:
            return self._cache[1]
        remapped = self.alignment.remap(history)
        self._cache = (weakref.ref(history), remapped)
        return remapped

    def __repr__(self) -> str:
        return f"TargetScorer({type(self.model).__name__}, catalog={len(self._item_index):,})"


class CatalogMask:
    """A ``Scorer`` in the model's own rows that ranks only ``allowed`` items (the target's
    catalog inside a grown model): the others score -inf. Fine-tuning validates with it on
    data remapped once, instead of remapping on every call.
    """

    def __init__(self, model: nn.Module, allowed: np.ndarray) -> None:
        self.model = model
        self.blocked = torch.ones(model.catalog_size, dtype=torch.bool)
        self.blocked[torch.from_numpy(np.asarray(allowed, dtype=np.int64))] = False

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        scores = self.model.score_users(users, history)
        blocked = self.blocked.to(scores.device)
        if len(blocked) != scores.shape[1]:  # the catalog grew after this mask was made
            raise ValueError("CatalogMask is stale: the model's catalog changed size")
        return scores.masked_fill(blocked, float("-inf"))


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
              user_init: str = "zeros") -> TargetScorer:
    """The pretrained model, untouched, scoring the target domain: the "zero-shot" row of
    every comparison (``target_scorer`` of a base checkpoint)."""
    return target_scorer(model, target, init=init, user_init=user_init)

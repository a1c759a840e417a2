"""Transfer across domains whose ids share nothing: movies -> music, through item text.

A movies base and a music target have no user and no item in common, so only what the
items *say* can carry over: the base reads every item's text (``item_text``), and the
target's artists are encoded by the same sentence encoder into the same space.

Zero-shot through text (``TextHistoryScorer``, what ``scoring.zero_shot`` gives for such a
base): the base's towers cannot do it. Their user input is a user-id row (none: the user
is new), pooled history id rows (new rows, initialised alike: they carry nothing) and the
pooled projected text; trained on movies, the towers mix the text with those id blocks in
ways that do not hold for artists (NDCG@10 0.0018 on lastfm-2k at 10%, random level). What
does carry over is the base's *text space*: each item is its text vector through the base's
trained projection, each user the mean of their history items' vectors, and an artist
scores by its cosine to the user (divided by a temperature) plus the log of how often the
target's history holds it: the one thing a new domain's text cannot say is which of its
items are popular, and the history given for the users says it.

Both datasets number their users and items with small integers, so their raw ids would
collide (MovieLens user 5 is not Last.fm user 5); ``namespaced`` prefixes them, making the
two vocabularies disjoint as they are in reality.
"""

from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError
from recft.finetune.scenarios import Scenario
from recft.finetune.vocab_transfer import VocabAlignment
from recft.models.inputs import UserHistories

#: The sentence encoder both domains are read with (recft.text; weights from the lock).
CROSS_DOMAIN_ENCODER = "all-MiniLM-L6-v2"


def namespaced(data: Interactions, prefix: str) -> Interactions:
    """``data`` with raw ids ``"<prefix>-user:<id>"`` and ``"<prefix>:<id>"``; rows, features
    and texts unchanged (only the names of the ids change)."""
    users = np.asarray([f"{prefix}-user:{u}" for u in data.user_vocab.ids.tolist()], dtype=object)
    items = np.asarray([f"{prefix}:{i}" for i in data.item_vocab.ids.tolist()], dtype=object)
    return dataclasses.replace(
        data, user_vocab=Vocabulary(users, name=data.user_vocab.name),
        item_vocab=Vocabulary(items, name=data.item_vocab.name))


#: Cosine similarity is multiplied by this before the log-popularity prior is added: a
#: cosine of 1 is worth e^10 times the plays. Chosen on lastfm-2k's validation part (movies
#: base, 10% of the target; 3 and 33 were worse), never on its test part.
TEXT_WEIGHT = 10.0
TEXT_SPACES = ("projected", "encoder")


class TextHistoryScorer(nn.Module):
    """Zero-shot through text: users are the mean text vector of their history items.

    A ``recft.evaluate.Scorer`` in the target's ids and catalog. Items are read in the
    base's text space (``space="projected"``: the stored encoder vector through the base's
    trained projection; ``"encoder"``: the encoder's vector itself, which uses nothing the
    base learned), each L2-normalised. A user's vector is the normalised mean of their
    most recent ``max_history`` history items'; the score of an item is ``text_weight *
    cosine + log(1 + its count in the target history)``. A user without history (or with
    only items without text) gets the popularity order.

    Args:
        model: the base, aligned to the target (``alignment``), with a text path.
        alignment: target rows -> model rows.
        target: the target interactions whose counts make the prior (the training part).
        text_weight: scale of the cosine against the log-count prior; ``None``: no prior
            (items ranked by cosine alone).
        space: ``"projected"`` or ``"encoder"``.
    """

    def __init__(self, model: nn.Module, alignment: VocabAlignment, target: Interactions,
                 text_weight: float | None = TEXT_WEIGHT, space: str = "projected") -> None:
        super().__init__()
        if getattr(model, "item_text", None) is None:
            raise DataError("zero-shot through text needs a base that reads item text "
                            "(item_text='id+text' or 'text'); this one has none")
        if space not in TEXT_SPACES:
            raise DataError(f"space must be one of {TEXT_SPACES}, got {space!r}")
        self.model, self.alignment, self.space = model, alignment, space
        self.text_weight = text_weight
        self.max_history = int(model.config.max_history)
        with torch.no_grad():
            vectors = model.item_text.vectors[torch.from_numpy(alignment.item_rows)]
            if space == "projected":
                vectors = model.item_text.projection(vectors)
            self.register_buffer("items", F.normalize(vectors.float(), dim=-1),
                                 persistent=False)
        counts = np.bincount(target.item_ids, minlength=len(target.item_vocab))
        prior = np.log1p(counts) if text_weight is not None else np.zeros(len(counts))
        self.register_buffer("prior", torch.from_numpy(prior.astype(np.float32)),
                             persistent=False)
        self._cache: tuple[Any, UserHistories] | None = None  # (weakref, its histories)

    @property
    def catalog_size(self) -> int:
        return len(self.items)

    @torch.no_grad()
    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """(B,) target user rows, target-vocabulary history -> (B, target catalog) scores."""
        if self._cache is None or self._cache[0]() is not history:  # once per evaluation
            self._cache = (weakref.ref(history), UserHistories.from_interactions(history))
        lengths, values = self._cache[1].gather(np.asarray(users, dtype=np.int64),
                                                self.max_history)
        offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
        torch.cumsum(torch.from_numpy(lengths), dim=0, out=offsets[1:])
        pooled = F.embedding_bag(torch.from_numpy(values), self.items, offsets, mode="mean",
                                 include_last_offset=True)
        cosine = F.normalize(pooled, dim=-1) @ self.items.T
        weight = 1.0 if self.text_weight is None else self.text_weight
        return weight * cosine + self.prior

    def __repr__(self) -> str:
        return (f"TextHistoryScorer(space={self.space}, text_weight={self.text_weight}, "
                f"catalog={self.catalog_size:,})")


def movies_to_music_scenario(data_dir: str | Path | None = None, seed: int = 0) -> Scenario:
    """Pretrain on ml-latest-small (ids + text), fine-tune on lastfm-2k (no shared id).

    The target is every lastfm-2k user, split per user 80/10/10 (``seed`` varies the split
    and training); play counts are weighted by log1p like the music preset.
    """
    from recft.data.registry import load

    source = namespaced(load("ml-latest-small", data_dir=data_dir), "movie")
    target = namespaced(load("lastfm-2k", data_dir=data_dir), "music")
    return Scenario(
        name="movies-to-music", source=source, target=target,
        split_spec="random:0.8,0.1,0.1",
        description="ml-latest-small (ids + item text) -> lastfm-2k: no user or item id "
                    f"shared, items read by {CROSS_DOMAIN_ENCODER}; play counts weighted by "
                    "log1p; random 80/10/10 split of the target",
        recipe_overrides={"sample_weighting": "log1p"},
        item_text="id+text", text_encoder=CROSS_DOMAIN_ENCODER,
    )

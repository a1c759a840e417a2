"""Align a target domain's ids with a pretrained vocabulary and grow tables for new ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from recft.data.features import CategoricalFeature, EntityFeatures
from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError
from recft.finetune.new_rows import new_rows
from recft.finetune.recipe import NEW_ID_INITS
from recft.models.growth import grow_collection
from recft.models.inputs import ITEM_HISTORY, ITEM_ID, USER_ID
from recft.models.text_path import ItemTextVectors, encode_texts

__all__ = ["VocabAlignment", "align_vocabulary", "grow_collection"]


@dataclass
class VocabAlignment:
    """How a target domain's ids map onto a (grown) pretrained model.

    Attributes:
        user_rows: (target users,) model user row of every target user row.
        item_rows: (target catalog,) model item row of every target item row.
        user_vocab / item_vocab: the model's grown vocabularies.
        item_features: the model's grown item features (aligned to ``item_vocab``).
        counts: per side (``users``, ``items``, ``feature:<name>``): ``matched`` and ``new``.
        init: the strategy that initialised new rows.
        first_new_rows: table parameter name -> first row appended by this alignment
            (feed it to ``ParameterRoles.with_new_rows``).
    """

    user_rows: np.ndarray
    item_rows: np.ndarray
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    item_features: dict[str, CategoricalFeature] = field(default_factory=dict)
    user_features: dict[str, CategoricalFeature] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    init: str = "mean"
    first_new_rows: dict[str, int] = field(default_factory=dict)

    def remap(self, interactions: Interactions) -> Interactions:
        """``interactions`` (in the target's vocabularies) re-expressed in the model's rows."""
        if len(interactions.user_vocab) != len(self.user_rows) or \
                len(interactions.item_vocab) != len(self.item_rows):
            raise DataError("remap needs interactions that share the aligned target's "
                            "vocabularies (the same dataset's train / valid / test)")
        features = EntityFeatures(self.item_features) if self.item_features else None
        return interactions.replace(
            user_ids=self.user_rows[interactions.user_ids],
            item_ids=self.item_rows[interactions.item_ids],
            user_vocab=self.user_vocab,
            item_vocab=self.item_vocab,
            item_features=features,
            user_features=EntityFeatures(self.user_features) if self.user_features else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"init": self.init, "counts": self.counts,
                "num_users": len(self.user_vocab), "num_items": len(self.item_vocab)}

    def __str__(self) -> str:
        parts = [f"{side}: {c['matched']:,} matched, {c['new']:,} new"
                 for side, c in self.counts.items()]
        return "vocabulary alignment (" + f"new rows init={self.init}): " + "; ".join(parts)


def align_vocabulary(model: nn.Module, target: Interactions, init: str = "mean",
                     seed: int = 0, user_init: str = "zeros",
                     item_text: ItemTextVectors | np.ndarray | None = None,
                     text_encoder: Any = None) -> VocabAlignment:
    """Extend the model's vocabularies with the target's ids and grow its tables (in place).

    Pretrained rows keep their positions and values bit-for-bit (``Vocabulary.extend``
    appends); new rows start from ``init``. Item feature values the checkpoint has not
    seen (a new genre) grow their feature tables the same way. Target features the model
    has no table for are ignored (reported under ``counts``).

    Args:
        model: a two-tower model with ``user_vocab``, ``item_vocab``, ``item_features``
            (dict of CategoricalFeature) and EmbeddingBagCollections keyed by
            ``user_id`` / ``item_id`` / ``item_history`` / feature names.
        target: the target domain (any split sharing its vocabularies).
        init: ``zeros | mean | feature_mean | random`` for new item rows (and ``mean``
            for new feature values when ``feature_mean``).
        user_init: the same for new user rows; ``zeros`` makes an untrained new user's id
            bag empty-equivalent, so the history tower alone serves them.
        item_text: for a model with a text path, the target catalog's text vectors (one
            per ``target.item_vocab`` row, by the model's encoder); by default the new
            items' texts (``recft.text.item_texts(target)``) are encoded with the model's
            encoder (``text_path.checkpoint_encoder``), cached on disk.
        text_encoder: the encoder to use for that (needed for a TF-IDF model loaded from
            disk); it must be the one the model records.

    Returns:
        The alignment; ``alignment.remap(x)`` converts target interactions.
    """
    for label, value in (("init", init), ("user_init", user_init)):
        if value not in NEW_ID_INITS:
            raise DataError(f"{label} must be one of {NEW_ID_INITS}, got {value!r}")
    counts: dict[str, dict[str, int]] = {}
    first_new: dict[str, int] = {}
    user_vocab = model.user_vocab.extend(target.user_vocab.ids)
    item_vocab = model.item_vocab.extend(target.item_vocab.ids)
    for side, old, new in (("users", model.user_vocab, user_vocab),
                           ("items", model.item_vocab, item_vocab)):
        counts[side] = {"matched": _shared(old, side, target), "new": len(new) - len(old)}
    old_items = len(model.item_vocab)
    model_features: dict[str, CategoricalFeature] = dict(getattr(model, "item_features", None)
                                                        or {})
    target_features = target.item_features.categorical if target.item_features else {}
    grown_features: dict[str, CategoricalFeature] = {}
    for name, feature in model_features.items():
        grown_features[name] = _grow_feature(feature, target_features.get(name), target,
                                             item_vocab, old_items)
        theirs = target_features.get(name)
        shared = 0 if theirs is None else int(
            (feature.vocab.encode(theirs.vocab.ids, unknown="mark") >= 0).sum())
        counts[f"feature:{name}"] = {"matched": shared,
                                     "new": len(grown_features[name].vocab) - len(feature.vocab)}
    for name in sorted(set(target_features) - set(model_features)):
        counts[f"feature:{name}"] = {"matched": 0, "new": 0, "ignored": 1}
    sizes = {USER_ID: len(user_vocab), ITEM_ID: len(item_vocab), ITEM_HISTORY: len(item_vocab)}
    sizes.update({name: len(f.vocab) for name, f in grown_features.items()})
    user_features = dict(getattr(model, "user_features", None) or {})
    for name, feature in user_features.items():
        user_features[name] = feature.take(np.concatenate([
            np.arange(feature.num_entities), np.full(len(user_vocab) - feature.num_entities, -1)]))
        sizes.setdefault(name, len(feature.vocab))
    generator = torch.Generator().manual_seed(seed)
    for owner, attr, ebc in _collections(model):
        new_sizes = {}
        for config in ebc.embedding_bag_configs():
            wanted = {sizes[f] for f in config.feature_names if f in sizes}
            if len(wanted) > 1:
                raise DataError(f"table {config.name!r} serves features of different vocabularies "
                                f"{config.feature_names}; cannot grow it")
            if wanted and wanted.pop() > config.num_embeddings:
                new_sizes[config.name] = max(sizes[f] for f in config.feature_names if f in sizes)
        if not new_sizes:
            continue
        inits = {}
        for config in ebc.embedding_bag_configs():
            if config.name not in new_sizes:
                continue
            weight = ebc.embedding_bags[config.name].weight.detach()
            count = new_sizes[config.name] - weight.shape[0]
            item_side = ITEM_ID in config.feature_names or ITEM_HISTORY in config.feature_names
            strategy = user_init if USER_ID in config.feature_names else init
            if strategy == "feature_mean" and not item_side:
                strategy = "mean"  # only item rows have features to share
            inits[config.name] = new_rows(
                weight, count, strategy,
                generator=generator,
                features=grown_features if item_side else None,
            )
        prefix = f"{owner}." if owner else ""
        grown = grow_collection(ebc, new_sizes, inits)
        setattr(model.get_submodule(owner) if owner else model, attr, grown)
        for table, old_rows in ((c.name, c.num_embeddings) for c in ebc.embedding_bag_configs()
                                if c.name in new_sizes):
            first_new[f"{prefix}{attr}.embedding_bags.{table}.weight"] = old_rows
    text_path = getattr(model, "item_text", None)
    if text_path is not None:
        vectors = _new_item_text(model, target, item_vocab.ids[old_items:], item_text,
                                 text_encoder)
        missing = int((~vectors.any(axis=1)).sum())
        counts["item_text"] = {"matched": old_items, "new": len(vectors) - missing,
                               "without_text": missing}
        if len(vectors):
            model.item_text = text_path.grown(vectors)
    attributes = getattr(model, "item_attributes", None)
    if attributes is not None:
        model.item_attributes = _grow_attributes(attributes, target, item_vocab, old_items)
    model.user_vocab, model.item_vocab = user_vocab, item_vocab
    if model_features:
        model.item_features = grown_features
    if user_features:
        model.user_features = user_features
    _sync_config_sizes(model)
    return VocabAlignment(
        user_rows=user_vocab.encode(target.user_vocab.ids),
        item_rows=item_vocab.encode(target.item_vocab.ids),
        user_vocab=user_vocab, item_vocab=item_vocab,
        item_features=grown_features, user_features=user_features,
        counts=counts, init=init, first_new_rows=first_new,
    )


def _new_item_text(model: nn.Module, target: Interactions, new_ids: np.ndarray,
                   given: ItemTextVectors | np.ndarray | None, encoder: Any) -> np.ndarray:
    """(new items, text_dim) text vectors of the target's items the model lacks."""
    target_rows = target.item_vocab.encode(new_ids)
    config = model.config
    if given is not None:
        vectors = given.vectors if isinstance(given, ItemTextVectors) else np.asarray(given)
        if isinstance(given, ItemTextVectors) and (given.encoder_name, given.encoder_version) \
                != (config.text_encoder, config.text_encoder_version):
            raise DataError(f"item_text was encoded by {given.encoder_name!r} (version "
                            f"{given.encoder_version}), the model's texts by "
                            f"{config.text_encoder!r} (version {config.text_encoder_version})")
        if vectors.shape != (len(target.item_vocab), model.config.text_dim):
            raise DataError(f"item_text has shape {vectors.shape}; expected "
                            f"({len(target.item_vocab)}, {model.config.text_dim}): one vector "
                            "per target item, as wide as the model's")
        return np.asarray(vectors[target_rows], dtype=np.float32)
    if len(new_ids) == 0:
        return np.zeros((0, model.config.text_dim), dtype=np.float32)
    from recft.text import item_texts

    # the whole catalog in its own order: the cache entry every other use of it shares
    return encode_texts(model, item_texts(target).texts, encoder=encoder)[target_rows]


def _grow_feature(feature: CategoricalFeature, target_feature: CategoricalFeature | None,
                  target: Interactions, item_vocab: Vocabulary,
                  old_items: int) -> CategoricalFeature:
    """The model's feature for the grown item vocabulary: pretrained items keep theirs, new
    items take the target's values (re-encoded in the grown value vocabulary)."""
    new_ids = item_vocab.ids[old_items:]
    if target_feature is None or len(new_ids) == 0:
        rows = np.concatenate([np.arange(old_items), np.full(len(new_ids), -1)])
        return feature.take(rows)
    vocab = feature.vocab.extend(target_feature.vocab.ids)
    target_rows = target.item_vocab.encode(new_ids)
    lengths, values, weights = target_feature.gather(target_rows)
    values = vocab.encode(target_feature.vocab.decode(values))
    offsets = np.concatenate([feature.offsets, feature.offsets[-1] + np.cumsum(lengths)])
    merged_weights = None
    if feature.weights is not None or weights is not None:
        merged_weights = np.concatenate([
            feature.weights if feature.weights is not None else np.ones(len(feature.values)),
            weights if weights is not None else np.ones(len(values)),
        ]).astype(np.float32)
    return CategoricalFeature(offsets.astype(np.int64),
                              np.concatenate([feature.values, values]).astype(np.int64),
                              vocab, merged_weights)


def _grow_attributes(attributes: pd.DataFrame, target: Interactions, item_vocab: Vocabulary,
                     old_items: int) -> pd.DataFrame:
    """Display attributes (titles...) for the grown catalog: new items take the target's."""
    new_ids = item_vocab.ids[old_items:]
    if len(new_ids) == 0:
        return attributes
    theirs = target.item_features.attributes if target.item_features is not None else None
    if theirs is not None:
        rows = theirs.iloc[target.item_vocab.encode(new_ids)].reset_index(drop=True)
        added = rows.reindex(columns=attributes.columns)
    else:
        added = pd.DataFrame(index=range(len(new_ids)), columns=attributes.columns)
    return pd.concat([attributes.reset_index(drop=True), added], ignore_index=True)


def _shared(old: Vocabulary, side: str, target: Interactions) -> int:
    """Target ids the pretrained vocabulary already has."""
    target_vocab = target.user_vocab if side == "users" else target.item_vocab
    return int((old.encode(target_vocab.ids, unknown="mark") >= 0).sum())


def _collections(model: nn.Module) -> list[tuple[str, str, EmbeddingBagCollection]]:
    """``(owner module name, attribute, collection)`` of every EBC in the model."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, EmbeddingBagCollection):
            owner, _, attr = name.rpartition(".")
            found.append((owner, attr, module))
    return found


def _sync_config_sizes(model: nn.Module) -> None:
    """Keep the size fields of the model's config equal to its grown vocabularies, so a
    saved checkpoint rebuilds tables of the right shape."""
    config = getattr(model, "config", None)
    sizes = {
        "num_users": len(model.user_vocab),
        "num_items": len(model.item_vocab),
        "item_feature_sizes": {n: len(f.vocab) for n, f in model.item_features.items()},
        "user_feature_sizes": {n: len(f.vocab) for n, f in model.user_features.items()},
    }
    for field_name, size in sizes.items():
        if config is not None and hasattr(config, field_name):
            setattr(config, field_name, size)

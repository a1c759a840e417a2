"""Growing a model's catalog: more rows in its tables, old rows kept bit-for-bit.

Fine-tuning grows every vocabulary for a target domain (``recft.finetune.vocab_transfer``);
serving adds cold items described by text (``Recommender.add_items``). Both append rows
with ``grow_collection``; ``append_items`` is the serving case: new items get a zero id
row (the model knows nothing of them), no feature values, and their text vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from recft.errors import DataError
from recft.models.inputs import ITEM_ID
from recft.models.roles import ADAPTER_MARK


def grow_collection(ebc: EmbeddingBagCollection, sizes: Mapping[str, int],
                    inits: Mapping[str, torch.Tensor]) -> EmbeddingBagCollection:
    """A new EmbeddingBagCollection with more rows in some tables; old rows copied exactly.

    Args:
        sizes: table name -> new number of rows (>= the current number).
        inits: table name -> (new rows, dim) initial values of the appended rows.
    """
    configs = []
    for config in ebc.embedding_bag_configs():
        rows = sizes.get(config.name, config.num_embeddings)
        if rows < config.num_embeddings:
            raise DataError(f"cannot shrink table {config.name!r}")
        configs.append(EmbeddingBagConfig(
            num_embeddings=rows, embedding_dim=config.embedding_dim, name=config.name,
            data_type=config.data_type, feature_names=list(config.feature_names),
            pooling=config.pooling, init_fn=config.init_fn,
            weight_init_min=config.weight_init_min, weight_init_max=config.weight_init_max,
        ))
    old_weight = next(iter(ebc.parameters()))
    grown = EmbeddingBagCollection(tables=configs, is_weighted=ebc.is_weighted(),
                                   device=old_weight.device)
    with torch.no_grad():
        for config in ebc.embedding_bag_configs():
            source = ebc.embedding_bags[config.name].weight
            target = grown.embedding_bags[config.name].weight
            target[: source.shape[0]].copy_(source)
            if target.shape[0] > source.shape[0]:
                target[source.shape[0]:].copy_(inits[config.name])
            target.requires_grad_(source.requires_grad)
    return grown.train(ebc.training)


def append_items(model: nn.Module, ids: np.ndarray,
                 text_vectors: np.ndarray | None = None) -> np.ndarray:
    """Add items the model has never seen to its catalog, in place.

    Each new item gets a zero ``item_id`` row (an unknown id contributes nothing), empty
    feature lists, empty display attributes and, with a text path, its text vector, so a
    model with text scores it from what it says.

    Args:
        model: a (fine-tuned) TwoTower in plain torchrec collections, adapters merged.
        ids: raw ids, none of them in ``model.item_vocab``.
        text_vectors: (len(ids), text_dim) for a model with a text path.

    Returns:
        The new items' rows, in the order of ``ids``.
    """
    if any(ADAPTER_MARK in name for name, _ in model.named_parameters()):
        raise DataError("merge the model's adapters (recft.models.adapters.merge_adapters) "
                        "before adding items")
    ids = np.asarray(ids)
    if model.item_vocab.is_integer and len(ids) and ids.dtype.kind not in "iu":
        raise DataError(f"the catalog's item ids are integers; {ids[0]!r} is not one")
    if len(ids) and (model.item_vocab.encode(ids, unknown="mark") >= 0).any():
        raise DataError("append_items: some ids are already in the catalog")
    old = len(model.item_vocab)
    vocab = model.item_vocab.extend(ids)
    count = len(vocab) - old
    if count != len(ids):
        raise DataError(f"append_items: {len(ids) - count} duplicate ids")
    rows = vocab.encode(ids)  # extend appends new ids sorted, not in the order given
    text_path = getattr(model, "item_text", None)
    if text_path is not None:
        if text_vectors is None or len(text_vectors) != count:
            raise DataError(f"the model reads item text: give {count} text vectors")
        ordered = np.empty((count, text_path.vectors.shape[1]), dtype=np.float32)
        ordered[rows - old] = text_vectors
        model.item_text = text_path.grown(ordered)
    weight = model.item_ebc.embedding_bags[ITEM_ID].weight
    model.item_ebc = grow_collection(
        model.item_ebc, {ITEM_ID: len(vocab)},
        {ITEM_ID: torch.zeros(count, weight.shape[1], dtype=weight.dtype)})
    none = np.full(count, -1, dtype=np.int64)
    model.item_features = {name: feature.take(np.concatenate([np.arange(old), none]))
                           for name, feature in model.item_features.items()}
    attributes: Any = getattr(model, "item_attributes", None)
    if attributes is not None:
        blank = pd.DataFrame(index=range(count), columns=attributes.columns)
        model.item_attributes = pd.concat([attributes.reset_index(drop=True), blank],
                                          ignore_index=True)
    model.item_vocab = vocab
    model.config.num_items = len(vocab)
    return rows

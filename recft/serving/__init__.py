"""recft.serving: the Recommender facade, resumable batch jobs, and self-contained exports.

Modules:
    recommender  Recommender: recommend / similar_items / embed_users / embed_items in raw ids
    history      HistoryTable: histories from Interactions, DataFrames, mappings or files
    ids          raw-id coercion, unknown-id warnings, item allow-lists
    index        faiss indexes (exact / IVF) and their recall against exact search
    user_tower   the user tower over plain tensors, exported with torch.export
    ranking      deterministic top-k (ties broken by item row)
    batch        BatchJob / recommend_batch: chunked, atomic, resumable Parquet output
    rank_chunks  which chunks of a batch job each rank computes (sharded over users)
    export       export(): item embeddings, a faiss index and an exported user tower

Heavy imports (torch, faiss) happen on first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

# Bound eagerly (export.py imports torch and faiss only when called): the function shares
# its module's name, and a lazy lookup never runs once the submodule is imported.
from recft.serving.export import export

_LAZY = {
    "Recommender": "recommender",
    "ServingWarning": "ids",
    "BatchJob": "batch",
    "recommend_batch": "batch",
    "read_users": "batch",
}

__all__ = [*_LAZY, "export"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"recft.serving.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'recft.serving' has no attribute {name!r}")

"""faiss inner-product indexes over item embeddings: exact (flat) or IVF, with measured recall."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recft.errors import DataError

INDEX_KINDS = ("exact", "ivf", "auto")
AUTO_IVF_ITEMS = 50_000  # above this many items, "auto" picks IVF: flat search grows with I
MIN_POINTS_PER_LIST = 39  # faiss warns below this many training points per IVF list


def resolve_kind(kind: str, num_items: int) -> str:
    """``"exact"`` or ``"ivf"`` for a requested kind and catalog size."""
    if kind not in INDEX_KINDS:
        raise DataError(f"index must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "auto":
        return "ivf" if num_items > AUTO_IVF_ITEMS else "exact"
    return kind


def default_nlist(num_items: int) -> int:
    """About 4 sqrt(I) lists, capped so each list gets enough training points."""
    return max(1, min(int(4 * math.sqrt(num_items)), num_items // MIN_POINTS_PER_LIST))


def build_index(embeddings: np.ndarray, kind: str, nlist: int | None = None,
                nprobe: int | None = None, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """An inner-product index over ``embeddings`` and its description for a manifest.

    Args:
        embeddings: (I, D) float32 item embeddings; row = item row.
        kind: ``"exact"`` (``IndexFlatIP``) or ``"ivf"`` (``IndexIVFFlat``, inner product).
        nlist: IVF lists (default ``default_nlist``).
        nprobe: lists searched per query (default about nlist / 8, at least 1).
        seed: k-means seed of IVF training.

    Returns:
        ``(index, {"type", "faiss_class", "metric", "nlist", "nprobe"})``.

    Example::

        index, info = build_index(item_embeddings, "ivf", nlist=256)
        scores, rows = index.search(user_embeddings, 10)
    """
    import faiss

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    num_items, dim = vectors.shape
    if num_items == 0:
        raise DataError("cannot index an empty catalog")
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, {"type": "exact", "faiss_class": "IndexFlatIP", "metric": "inner_product"}
    if kind != "ivf":
        raise DataError(f"index kind must be 'exact' or 'ivf', got {kind!r}")
    nlist = int(nlist or default_nlist(num_items))
    if not 1 <= nlist <= num_items:
        raise DataError(f"nlist must be in [1, {num_items}] (the number of items), got {nlist}")
    nprobe = int(nprobe or max(1, nlist // 8))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # reproducible k-means
    index.train(vectors)
    index.add(vectors)
    index.nprobe = min(nprobe, nlist)
    info = {"type": "ivf", "faiss_class": "IndexIVFFlat", "metric": "inner_product",
            "nlist": nlist, "nprobe": int(index.nprobe)}
    return index, info


def recall_at_k(index: Any, embeddings: np.ndarray, queries: np.ndarray,
                ks: Sequence[int] = (10, 100)) -> dict[str, float]:
    """Mean overlap of ``index``'s top-k with exact inner-product top-k over ``queries``.

    Args:
        index: a faiss index over ``embeddings``.
        embeddings: (I, D) the indexed vectors.
        queries: (Q, D) query vectors (real users' embeddings).
        ks: cut-offs (each clipped to I).

    Returns:
        ``{"recall@10": ..., "recall@100": ...}``, 1.0 meaning identical top-k sets.
    """
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    exact = faiss.IndexFlatIP(embeddings.shape[1])
    exact.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    result = {}
    for k in ks:
        depth = min(int(k), len(embeddings))
        _, truth = exact.search(queries, depth)
        _, found = index.search(queries, depth)
        hits = [len(set(t.tolist()) & set(f.tolist()) - {-1}) for t, f in zip(truth, found)]
        result[f"recall@{k}"] = float(np.mean(hits) / depth) if len(hits) else float("nan")
    return result

"""Self-check of a DomainPair's planted structure with plain numpy/scipy reference scorers.

These are not recft's evaluation (see ``recft.evaluate``): they are small, model-free
references that show the generated data has the structure it promises — the planted
scores rank held-out target items far above popularity, and item co-occurrence learned
on the source alone (the proxy for "pretraining on the source helps") beats popularity
and beats the same method fitted on a quarter of the target's data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from recft.data.synthetic import DomainPair


def recall_at_k(scores: np.ndarray, seen: sp.csr_matrix, held_out: sp.csr_matrix,
                k: int = 20) -> float:
    """Mean over users with held-out items of hits@k / |held-out|, seen items excluded.

    Args:
        scores: (U, I) scores of every user for every item.
        seen: (U, I) binary matrix of items to exclude (the users' histories).
        held_out: (U, I) binary matrix of the items to find.
        k: cut-off.
    """
    scores = np.array(scores, dtype=np.float64)
    scores[seen.nonzero()] = -np.inf  # seen items would otherwise reward memorising history
    users = np.flatnonzero(np.diff(held_out.indptr) > 0)
    top = np.argpartition(-scores[users], k, axis=1)[:, :k]
    relevant = held_out[users].toarray() > 0
    hits = np.take_along_axis(relevant, top, axis=1).sum(axis=1)
    return float(np.mean(hits / relevant.sum(axis=1)))


def cosine_similarity(matrix: sp.csr_matrix) -> np.ndarray:
    """(I, I) item-item cosine similarity of a binary user x item matrix, zero diagonal."""
    columns = matrix.tocsc().astype(np.float64)
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0))).ravel()
    columns = columns @ sp.diags(1.0 / np.maximum(norms, 1e-12))
    similarity = (columns.T @ columns).toarray()
    np.fill_diagonal(similarity, 0.0)
    return similarity


def source_similarity_on_target(pair: DomainPair) -> np.ndarray:
    """(I_t, I_t) item-kNN similarity learned on the source only, on target item rows.

    Items the source never saw (the target's new items) have zero similarity.
    """
    rows = pair.source.item_vocab.encode(pair.target.item_vocab.ids, unknown="mark")
    known = rows >= 0
    similarity = np.zeros((len(rows), len(rows)))
    source = cosine_similarity(pair.source.user_item_sets())
    similarity[np.ix_(known, known)] = source[np.ix_(rows[known], rows[known])]
    return similarity


def planted_structure(pair: DomainPair, k: int = 20, seed: int = 0) -> dict[str, float]:
    """recall@k of reference scorers on a per-user random 80/20 split of the target.

    Returns:
        ``{"oracle", "popularity", "source_popularity", "knn_source",
        "knn_target", "knn_target_quarter", "random"}`` -> recall@k, where ``oracle``
        ranks by the planted scores, ``popularity`` by target-train counts,
        ``source_popularity`` by source counts, ``knn_*`` score a user's target history
        with item-item cosine learned on the source, the whole target train, or a random
        quarter of it.
    """
    from recft.data.splits import split

    parts = split(pair.target, "random:0.8,0.2", seed=seed)
    train, test = parts.train.user_item_sets(), parts.test.user_item_sets()
    rng = np.random.default_rng(seed)
    quarter = parts.train.subset(rng.random(len(parts.train)) < 0.25).user_item_sets()
    rows = pair.source.item_vocab.encode(pair.target.item_vocab.ids, unknown="mark")
    source_counts = np.zeros(pair.target.catalog_size)
    source_counts[rows >= 0] = pair.source.item_popularity()[rows[rows >= 0]]
    candidates = {
        "oracle": pair.truth.scores("target"),
        "popularity": np.broadcast_to(parts.train.item_popularity(), train.shape),
        "source_popularity": np.broadcast_to(source_counts, train.shape),
        "knn_source": train @ source_similarity_on_target(pair),
        "knn_target": train @ cosine_similarity(train),
        "knn_target_quarter": train @ cosine_similarity(quarter),
        "random": rng.random(train.shape),
    }
    return {name: recall_at_k(np.asarray(scores), train, test, k)
            for name, scores in candidates.items()}

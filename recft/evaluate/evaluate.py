"""Full-ranking evaluation of any Scorer with seen-item exclusion, chunked over users.

The metric math is ``TopKTally``'s (the same as ``topk_metrics``); this module only feeds it
one block of scores per chunk of users, so memory stays bounded whatever the user count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.evaluate.metrics import RANKING_METRICS, TopKTally, auc, mae, normalize_ks, rmse
from recft.evaluate.scorer import Scorer
from recft.evaluate.segments import head_items, item_segment_block, summarize_segments

BLOCK_BYTES = 256 * 2**20
"""Budget for one (B, I) float32 score block. Seen items are masked in place, so this is
about the peak; bigger blocks run faster (fewer, larger matmuls and top-k calls)."""


def evaluate(
    model: Scorer,
    test: Interactions,
    exclude: Interactions | None = None,
    ks: Sequence[int] = (10, 20),
    history: Interactions | None = None,
    batch_size: int | None = None,
    segments: bool = False,
    progress: bool = False,
    metrics: Sequence[str] | None = None,
    return_per_user: bool = False,
    distributed: Any = None,
) -> dict[str, Any] | tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Rank the whole catalog for every test user and average top-K metrics.

    Args:
        model: a ``Scorer`` (``score_users(users, history) -> (B, catalog_size)``); an
            embedding model (``encode_users``, ``encode_items``, ``score``, like
            ``TwoTower``) has its catalog encoded once instead of once per chunk.
        test: held-out interactions; each user's test items are the relevant set R.
        exclude: items never recommended to a user (train, or train + valid); they are
            scored -inf, so a model is not rewarded for repeating what the user has seen.
        ks: cut-offs.
        history: what the model may know at prediction time; defaults to ``exclude``
            (empty when both are None, so the test set never leaks into the scorer).
        batch_size: users per scoring call; default keeps a score block near 256 MB.
        segments: also report ``"segments"`` by user activity and head / tail items.
        progress: show a tqdm bar over user chunks.
        metrics: names from ``ALL_METRICS``; default all (avg_popularity needs history).
        return_per_user: also return ``{"ndcg@10": (N,) array, ...}`` for the N test
            users in row order (``np.unique(test.user_ids)``), whose means are the result's.
        distributed: a ``recft.train.distributed.Distributed``: each rank ranks its share
            of the users and every rank returns the result for all of them, the one a
            single process returns (a collective: every rank calls it with the same
            arguments; see ``recft.train.rank_evaluation``).

    Returns:
        ``{"ndcg@10": ..., "recall@10": ..., "coverage@10": ..., "num_users": ...,
        "exclude_seen": True, "ranking": "full", ...}`` (JSON-ready), plus
        ``"segments"`` when asked, plus the per-user dict when ``return_per_user``.

    Example::

        metrics = evaluate(EASE().fit(train), test, exclude=train, ks=(10, 20))
        metrics["ndcg@10"]
    """
    if not callable(getattr(model, "score_users", None)):
        raise TypeError(f"{type(model).__name__} has no score_users(users, history) method; "
                        "see recft.evaluate.Scorer")
    ks = normalize_ks(ks)
    for label, other in (("exclude", exclude), ("history", history)):
        _check_same_catalog(test, other, label)
    if history is None:
        history = exclude if exclude is not None else test.subset(np.zeros(0, dtype=np.int64))
    catalog = test.catalog_size
    relevant = test.user_item_sets()
    users = np.flatnonzero(np.diff(relevant.indptr))
    if users.size == 0:
        raise DataError(f"{test.name or 'test'} has no interactions to evaluate")
    if distributed is not None:
        from recft.train.rank_evaluation import gather_tallies, users_of_rank

        users = users_of_rank(users, distributed)
        progress = progress and distributed.is_main
    exclude_matrix = exclude.user_item_sets() if exclude is not None else None
    popularity = history.item_popularity() if len(history) else None
    tally = TopKTally(catalog, ks, metrics, popularity)
    if segments and not tally.ranking:
        raise ValueError(f"segments need at least one ranking metric of {RANKING_METRICS}")
    head = head_items(popularity if popularity is not None else np.zeros(catalog)) \
        if segments else None

    rows_per_chunk = batch_size or max(1, BLOCK_BYTES // (4 * max(catalog, 1)))
    chunks = [users[start:start + rows_per_chunk] for start in range(0, users.size, rows_per_chunk)]
    item_parts: list[dict[str, dict[str, np.ndarray]]] = []
    with _scoring_mode(model), torch.inference_mode():
        score_chunk = _chunk_scorer(model, history)
        for chunk in _progress(chunks, progress):
            scores = score_chunk(chunk)
            if tuple(scores.shape) != (chunk.size, catalog):
                raise ValueError(
                    f"{type(model).__name__} scored shape {tuple(scores.shape)} for "
                    f"{chunk.size} users, expected ({chunk.size}, {catalog}) = "
                    "(users, catalog_size)"
                )
            chunk_relevant = relevant[chunk]
            block = tally.add(scores, chunk_relevant,
                              None if exclude_matrix is None else exclude_matrix[chunk])
            del scores
            if segments:
                item_parts.append(item_segment_block(block, chunk_relevant, head, ks,
                                                     tally.ranking))
    if distributed is not None:  # every rank's users, in the order one process ranks them
        tally, item_parts, users = gather_tallies(tally, item_parts, users, distributed)

    result: dict[str, Any] = tally.summary()
    result.update(
        num_users=int(users.size),
        num_items=int(catalog),
        ks=list(ks),
        ranking="full",
        exclude_seen=exclude is not None,
        num_history_interactions=len(history),
    )
    if segments:
        item_per_user = {
            name: {key: np.concatenate([p[name][key] for p in item_parts]) for key in item_parts[0][name]}
            for name in ("head", "tail")
        }
        result["segments"] = summarize_segments(
            tally.per_user(),
            history.user_activity()[users],
            item_per_user,
            head,
            popularity if popularity is not None else np.zeros(catalog),
        )
    if return_per_user:
        return result, tally.per_user()
    return result


def rating_metrics(predictions: np.ndarray | torch.Tensor, test: Interactions) -> dict[str, float]:
    """RMSE and MAE of (N,) predicted ratings against ``test.ratings`` (same order)."""
    if test.ratings is None:
        raise DataError(f"{test.name or 'test'} has no ratings to compare against", field="rating")
    return {
        "rmse": rmse(predictions, test.ratings),
        "mae": mae(predictions, test.ratings),
        "num_ratings": len(test),
    }


def binary_metrics(scores: np.ndarray | torch.Tensor,
                   labels: np.ndarray | torch.Tensor) -> dict[str, float]:
    """AUC of (N,) scores (logits or probabilities) against (N,) 0/1 labels."""
    label_array = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    return {
        "auc": auc(scores, label_array),
        "num_examples": int(label_array.size),
        "positive_rate": float(np.mean(label_array)),
    }


# ---------------------------------------------------------------------- helpers
def _chunk_scorer(model: Scorer, history: Interactions) -> Callable[[np.ndarray], torch.Tensor]:
    """Scores of a chunk of users: ``score_users``, or for an embedding model the same
    ``score(encode_users(users, history), encode_items())`` with the catalog encoded once.

    ``TwoTower.score_users`` encodes the whole catalog on every call: at 100k items that
    is 0.17 s per chunk on top of 0.4 s of scoring it (one thread); see ``Scorer``.
    """
    if all(callable(getattr(model, name, None))
           for name in ("encode_users", "encode_items", "score")):
        embedder: Any = model
        item_embeddings = embedder.encode_items()
        return lambda users: embedder.score(embedder.encode_users(users, history),
                                            item_embeddings)
    return lambda users: model.score_users(users, history)


def _check_same_catalog(test: Interactions, other: Interactions | None, label: str) -> None:
    """Rows only mean the same item / user when both sides share the vocabularies."""
    if other is None:
        return
    for kind in ("item_vocab", "user_vocab"):
        mine, theirs = getattr(test, kind), getattr(other, kind)
        if mine is not theirs and mine != theirs:
            raise DataError(
                f"test and {label} have different {kind.split('_')[0]} vocabularies "
                f"({len(mine):,} vs {len(theirs):,} ids); split one Interactions object so "
                "every part shares them",
                field=label,
            )


class _scoring_mode:
    """Put an nn.Module scorer in eval mode for the duration, then restore its mode."""

    def __init__(self, model: object) -> None:
        self.module = model if isinstance(model, torch.nn.Module) else None
        self.was_training = bool(self.module is not None and self.module.training)

    def __enter__(self) -> None:
        if self.module is not None:
            self.module.eval()

    def __exit__(self, *exc: object) -> None:
        if self.module is not None and self.was_training:
            self.module.train()


def _progress(chunks: list[np.ndarray], enabled: bool) -> Any:
    if not enabled:
        return chunks
    from tqdm.auto import tqdm

    return tqdm(chunks, desc="evaluate", unit="chunk")

"""Tables for a qualitative check: a user's history next to their recommendations, with titles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recft.data.interactions import Interactions


def item_labels(model: Any, items: Iterable[Any]) -> list[str]:
    """Display labels for raw item ids: the title (or name) saved with the model, else the id.

    Features such as genres are appended, so a reader can judge relevance at a glance.
    """
    items = list(items)
    vocab = model.item_vocab
    rows = vocab.encode(np.asarray(items, dtype=object if not vocab.is_integer else None),
                        unknown="mark") if items else np.zeros(0, np.int64)
    attributes = getattr(model, "item_attributes", None)
    title_column = None
    if attributes is not None:
        title_column = next((c for c in ("title", "name") if c in attributes.columns), None)
    feature = next((model.item_features[n] for n in ("genres", "tag", "tags")
                    if n in getattr(model, "item_features", {})), None)
    labels = []
    for raw, row in zip(items, rows):
        label = str(raw)
        if row >= 0 and title_column is not None and pd.notna(attributes[title_column].iloc[row]):
            label = str(attributes[title_column].iloc[row])
        if row >= 0 and feature is not None and row < feature.num_entities:
            values = feature.as_lists([row])[0][:3]
            if values:
                label += f"  [{', '.join(map(str, values))}]"
        labels.append(label)
    return labels


def history_next_to_recommendations(recommender: Any, users: Sequence[Any], history: Interactions,
                                    k: int = 10, recent: int = 10,
                                    held_out: Interactions | None = None,
                                    **recommend_options: Any) -> pd.DataFrame:
    """One row per position: the user's most recent items and their top-k, side by side.

    Args:
        recommender: a ``recft.serving.Recommender``.
        users: raw user ids to show.
        history: interactions the recommendations are based on (recent items shown).
        k: recommendations per user; recent: history items shown per user.
        held_out: interactions to mark as hits (e.g. the test split).
        recommend_options: passed to ``recommend`` (``filter_items`` ...).
    """
    recommendations = recommender.recommend(users, k=k, **recommend_options)
    frame = history.to_pandas()
    order = "timestamp" if "timestamp" in frame.columns else None
    hits = set()
    if held_out is not None:
        hits = set(map(tuple, held_out.to_pandas()[["user_id", "item_id"]].itertuples(index=False)))
    blocks = []
    for user in users:
        mine = frame[frame["user_id"] == user]
        if order:
            mine = mine.sort_values(order, ascending=False)
        past = mine["item_id"].head(recent).tolist()
        recs = recommendations[recommendations["user"] == user]
        rows = max(len(past), len(recs))
        rec_items = recs["item"].tolist()
        blocks.append(pd.DataFrame({
            "user": [user] * rows,
            "recent history": _padded(item_labels(recommender.model, past), rows),
            "recommended": _padded(item_labels(recommender.model, rec_items), rows),
            "in held-out": _padded(["yes" if (user, item) in hits else "" for item in rec_items], rows),
        }))
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame()


def similar_items_table(recommender: Any, items: Sequence[Any], k: int = 5) -> pd.DataFrame:
    """Each item's nearest neighbours by item-tower embedding, with labels."""
    neighbours = recommender.similar_items(items, k=k)
    neighbours.insert(0, "item label", item_labels(recommender.model, neighbours["item"]))
    neighbours["similar label"] = item_labels(recommender.model, neighbours["similar_item"])
    return neighbours[["item label", "rank", "similar label", "score"]]


def feature_share(model: Any, items: Iterable[Any], feature: str) -> pd.Series:
    """Share of ``items`` carrying each value of an item feature (e.g. genres)."""
    items = list(items)
    rows = model.item_vocab.encode(items, unknown="mark")
    rows = rows[rows >= 0]
    values = model.item_features[feature].as_lists(rows)
    counts = pd.Series([v for vs in values for v in vs]).value_counts()
    return (counts / max(len(rows), 1)).rename(f"share of items with {feature}")


def _padded(values: list[Any], length: int) -> list[Any]:
    return values + [""] * (length - len(values))


def items_with_feature(model: Any, feature: str, value: Any | None = None, limit: int = 5,
                       popularity: np.ndarray | None = None) -> tuple[Any, list[Any]]:
    """``(value, raw item ids)``: up to ``limit`` items carrying ``value`` of ``feature``
    (default: the most common value), most popular first when ``popularity`` is given."""
    table = model.item_features[feature]
    if value is None:
        value = table.vocab.decode([np.bincount(table.values, minlength=len(table.vocab)).argmax()])[0]
    code = table.vocab.encode([value])[0]
    owners = np.repeat(np.arange(table.num_entities), table.lengths())[table.values == code]
    if popularity is not None:
        owners = owners[np.argsort(-popularity[owners], kind="stable")]
    return value, model.item_vocab.decode(owners[:limit]).tolist()

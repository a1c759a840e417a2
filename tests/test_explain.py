"""Qualitative tables label items by title and features and line histories up with lists."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recft.data import CategoricalFeature, Interactions, Vocabulary
from recft.explain import feature_share, history_next_to_recommendations, item_labels, items_with_feature


class _Model:
    item_vocab = Vocabulary(["a", "b", "c"])
    item_attributes = pd.DataFrame({"title": ["Alpha", "Beta", None]})
    item_features = {"genres": CategoricalFeature.from_lists([["Drama"], ["Comedy", "Drama"], []])}


class _Recommender:
    model = _Model()

    def recommend(self, users, k=10, **options):
        return pd.DataFrame({"user": ["u1", "u1"], "rank": [1, 2], "item": ["c", "b"], "score": [2.0, 1.0]})


def test_item_labels_use_titles_then_ids_and_show_features() -> None:
    assert item_labels(_Model(), ["a", "c", "zz"]) == ["Alpha  [Drama]", "c", "zz"]


def test_history_is_shown_newest_first_next_to_marked_recommendations() -> None:
    history = Interactions.from_raw(["u1", "u1"], ["a", "b"], timestamps=[1, 2],
                                    item_vocab=_Model.item_vocab)
    held_out = Interactions.from_raw(["u1"], ["b"], item_vocab=_Model.item_vocab)
    table = history_next_to_recommendations(_Recommender(), ["u1"], history, k=2, held_out=held_out)
    assert table["recent history"].tolist() == ["Beta  [Comedy, Drama]", "Alpha  [Drama]"]
    assert table["in held-out"].tolist() == ["", "yes"]


def test_feature_helpers() -> None:
    value, items = items_with_feature(_Model(), "genres")
    assert value == "Drama" and items == ["a", "b"]
    share = feature_share(_Model(), ["a", "b", "c"], "genres")
    assert np.isclose(share["Drama"], 2 / 3) and np.isclose(share["Comedy"], 1 / 3)

"""Interactions, Vocabulary and side features: the contracts every stage relies on."""

from __future__ import annotations

import numpy as np
import pytest

from recft.data import CategoricalFeature, EntityFeatures, Interactions, Vocabulary
from recft.errors import DataError


def small() -> Interactions:
    return Interactions.from_raw(
        ["u2", "u1", "u1", "u3", "u2"],
        [20, 10, 30, 10, 10],
        ratings=[4, 5, 3, 2, 1],
        timestamps=[5, 1, 2, 3, 4],
        item_vocab=Vocabulary([10, 20, 30, 40], name="item"),  # item 40: catalog only
    )


def test_sizes_count_distinct_ids_and_catalog_separately() -> None:
    x = small()
    assert len(x) == 5
    assert x.num_users == 3
    assert x.num_items == 3
    assert x.catalog_size == 4


def test_vocabulary_round_trip_and_sorted_rows() -> None:
    vocab = Vocabulary.from_values(["b", "a", "c", "a"])
    assert vocab.ids.tolist() == ["a", "b", "c"]
    assert vocab.encode(["c", "a"]).tolist() == [2, 0]
    assert vocab.decode([1]).tolist() == ["b"]
    restored = Vocabulary.from_dict(vocab.to_dict())
    assert restored == vocab


def test_vocabulary_integer_ids_accept_string_lookups() -> None:
    vocab = Vocabulary.from_values([3, 1, 2])
    assert vocab.is_integer
    assert vocab.encode(np.array(["2", "3"])).tolist() == [1, 2]
    assert "1" in vocab and 7 not in vocab


def test_vocabulary_unknown_ids_error_or_mark() -> None:
    vocab = Vocabulary.from_values(["a", "b"], name="user")
    with pytest.raises(DataError, match=r"1 unknown user.*'zz'"):
        vocab.encode(["a", "zz"])
    assert vocab.encode(["a", "zz"], unknown="mark").tolist() == [0, -1]


def test_vocabulary_extend_keeps_existing_rows() -> None:
    vocab = Vocabulary.from_values(["b", "d"])
    grown = vocab.extend(["d", "a", "z", "a"])
    assert grown.ids.tolist() == ["b", "d", "a", "z"]
    assert grown.encode(["b", "d"]).tolist() == vocab.encode(["b", "d"]).tolist()
    assert vocab.extend(["b"]) is vocab


def test_vocabulary_rejects_duplicates_and_missing() -> None:
    with pytest.raises(DataError, match="duplicate"):
        Vocabulary(["a", "a"])
    with pytest.raises(DataError, match="missing"):
        Vocabulary.from_values(np.array(["a", None], dtype=object))


def test_csr_matrix_sums_duplicates_and_uses_catalog_shape() -> None:
    x = small()
    matrix = x.to_csr("rating").toarray()
    assert matrix.shape == (3, 4)
    u1, u2 = x.user_vocab.encode(["u1", "u2"])
    assert matrix[u1].tolist() == [5, 0, 3, 0]
    assert matrix[u2].tolist() == [1, 4, 0, 0]
    assert x.user_item_sets().toarray().max() == 1


def test_to_pandas_returns_raw_ids() -> None:
    frame = small().to_pandas()
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert frame.iloc[0].tolist() == ["u2", 20, 4.0, 5]


def test_subset_shares_vocabularies() -> None:
    x = small()
    part = x.subset(x.timestamps >= 4)
    assert len(part) == 2 and part.item_vocab is x.item_vocab
    assert part.to_pandas()["item_id"].tolist() == [20, 10]
    joined = part.concat(x.subset(x.timestamps < 4))
    assert len(joined) == 5


def test_nan_rating_is_rejected_with_its_position() -> None:
    with pytest.raises(DataError, match=r"field 'ratings'.*interaction 1"):
        Interactions.from_raw(["a", "b"], [1, 2], ratings=[1.0, float("nan")])


def test_item_features_must_match_catalog() -> None:
    genres = CategoricalFeature.from_lists([["Drama"], ["Comedy", "Drama"]])
    with pytest.raises(DataError, match="item feature 'genres' has 2 rows"):
        Interactions.from_raw(["a"], [1], item_vocab=Vocabulary([1, 2, 3]),
                              item_features=EntityFeatures({"genres": genres}))


def test_categorical_feature_gather_is_vectorised_csr_lookup() -> None:
    feature = CategoricalFeature.from_lists([["a"], [], ["b", "a"], ["c"]])
    lengths, values, _ = feature.gather(np.array([2, 1, 0]))
    assert lengths.tolist() == [2, 0, 1]
    assert feature.vocab.decode(values).tolist() == ["b", "a", "a"]
    grown = feature.take(np.array([3, -1, 0]))
    assert grown.as_lists() == [["c"], [], ["a"]]


def test_repr_is_readable() -> None:
    text = repr(small().replace(name="toy"))
    assert "5 interactions" in text and "3 users" in text and "catalog 4" in text


def test_entity_features_take_keeps_attribute_dtypes_without_new_rows() -> None:
    import pandas as pd

    features = EntityFeatures(attributes=pd.DataFrame({"year": [1990, 2001]}))
    assert features.take(np.array([1, 0])).attributes["year"].dtype == np.int64
    grown = features.take(np.array([1, -1]))
    assert grown.attributes["year"].iloc[0] == 2001 and pd.isna(grown.attributes["year"].iloc[1])

"""Item texts: built from each dataset's features, from the user's file, and the fallback for
items without text."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recft.data import CategoricalFeature, EntityFeatures, Interactions
from recft.errors import DataError
from recft.text import item_texts, read_item_texts, texts_for_vocabulary, text_encoder
from recft.text.text_file import item_texts_from_frame

REAL_DATA = os.environ.get("RECFT_DATA_DIR")


def movies() -> Interactions:
    """Three movies: a full one (trailing article, tags), one without a year in its title,
    and one with nothing at all."""
    features = EntityFeatures(
        {"genres": CategoricalFeature.from_lists([["Crime", "Drama"], ["Comedy"], []]),
         "tag": CategoricalFeature.from_lists([["prison", "hope", "morgan freeman"], [], []])},
        pd.DataFrame({"title": ["Shawshank Redemption, The (1994)", "Clerks", None],
                      "year": pd.array([1994, 1994, None], dtype="Int64")}),
    )
    return Interactions.from_raw([1, 1, 2], [10, 20, 30], item_features=features)


def test_movie_texts_have_title_year_genres_and_top_tags() -> None:
    texts = item_texts(movies(), max_tags=2)
    assert texts.texts == (
        "The Shawshank Redemption (1994). Genres: Crime, Drama. Tags: prison, hope",
        "Clerks (1994). Genres: Comedy",
        "",
    )
    assert texts.fields == ("title", "year", "genres", "tag")
    assert texts.missing.tolist() == [False, False, True]
    assert texts.coverage() == pytest.approx(2 / 3)


def test_an_item_without_text_encodes_to_the_zero_vector() -> None:
    texts = item_texts(movies())
    vectors = text_encoder("tfidf", fit_texts=texts.texts).encode(texts.texts)
    assert not vectors[texts.missing].any()
    np.testing.assert_allclose(np.linalg.norm(vectors[~texts.missing], axis=1), 1.0, rtol=1e-5)


def test_data_without_item_features_gives_only_missing_texts() -> None:
    texts = item_texts(Interactions.from_raw([1, 2], ["a", "b"]))
    assert texts.texts == ("", "") and texts.missing.all() and texts.fields == ()


def test_music_texts_name_the_artist_and_tags(synthetic_music_pair) -> None:
    source = synthetic_music_pair.source
    texts = item_texts(source, max_tags=3)
    assert len(texts) == len(source.item_vocab) and not texts.missing.any()
    features = source.item_features
    row = 0
    artist = features.attributes["artist"].iloc[row]
    tags = features.categorical["tag"].as_lists([row])[0][:3]
    assert texts.texts[row] == f"Synthetic Track {row} by {artist}. Tags: {', '.join(tags)}"


def test_lastfm_shape_name_then_tags() -> None:
    features = EntityFeatures(
        {"tag": CategoricalFeature.from_lists([["pop", "dance"], []])},
        pd.DataFrame({"name": ["Madonna", "Unknown\tBand\n"], "url": ["", ""]}))
    texts = item_texts(features)
    assert texts.texts == ("Madonna. Tags: pop, dance", "Unknown Band")
    assert texts.fields == ("name", "tag")


def test_side_texts_align_with_the_vocabulary_by_raw_id() -> None:
    x = movies()  # integer item ids 10, 20, 30
    texts = texts_for_vocabulary({"20": "a comedy", 10: " a\ndrama ", 99: "not in the data"},
                                 x.item_vocab)
    assert texts.texts == ("a drama", "a comedy", "") and texts.missing.tolist() == [
        False, False, True]


def test_read_item_texts_from_a_side_file_and_an_interactions_column(tmp_path: Path) -> None:
    side = tmp_path / "items.csv"
    side.write_text('item_id,text\n10,"Heat, a heist film"\n20,\n')
    assert read_item_texts(side) == {"10": "Heat, a heist film", "20": ""}
    clicks = tmp_path / "clicks.tsv"
    clicks.write_text("user_id\titem_id\titem_text\n1\t10\tHeat\n2\t10\t\n3\t20\tRonin\n"
                      "4\t10\tHeat\n")
    assert read_item_texts(clicks, text="item_text") == {"10": "Heat", "20": "Ronin"}
    parquet = tmp_path / "items.parquet"
    pd.DataFrame({"sku": [7, 8], "text": ["red shoes", None]}).to_parquet(parquet)
    assert read_item_texts(parquet, item="sku") == {7: "red shoes", 8: ""}


def test_bad_text_files_name_the_file_line_and_field(tmp_path: Path) -> None:
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("user_id,item_id,item_text\n1,10,Heat\n2,20,Ronin\n3,10,Heat 2\n")
    with pytest.raises(DataError, match=r"clicks.csv, line 4, field 'item_text': item '10' "
                                        r"has another text than on line 2"):
        read_item_texts(clicks, text="item_text")
    with pytest.raises(DataError, match=r"field 'text': no column 'text'; the columns are "
                                        r"\['user_id', 'item_id', 'item_text'\]"):
        read_item_texts(clicks)
    empty_id = tmp_path / "items.csv"
    empty_id.write_text("item_id,text\n10,Heat\n,Ronin\n")
    with pytest.raises(DataError, match=r"items.csv, line 3, field 'item_id': empty item id"):
        read_item_texts(empty_id)
    with pytest.raises(DataError, match="file not found"):
        read_item_texts(tmp_path / "absent.csv")
    unknown_format = tmp_path / "items.json"
    unknown_format.write_text("{}")
    with pytest.raises(DataError, match="cannot tell the format from the suffix '.json'"):
        read_item_texts(unknown_format)


def test_frame_errors_name_the_row_label() -> None:
    frame = pd.DataFrame({"item_id": [1, 1], "text": ["a", "b"]}, index=[5, 6])
    with pytest.raises(DataError, match=r"row 6, field 'text': item 1 has another text than "
                                        r"at row 5"):
        item_texts_from_frame(frame)


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_DATA, reason="set RECFT_DATA_DIR to the folder holding the releases")
def test_real_movielens_and_lastfm_texts() -> None:
    from recft.data import load

    movielens = item_texts(load("ml-latest-small"))
    assert len(movielens) == 9742 and movielens.coverage() == 1.0
    assert movielens.texts[0] == ("Toy Story (1995). Genres: Adventure, Animation, Children, "
                                  "Comedy, Fantasy. Tags: pixar, fun")
    lastfm = item_texts(load("lastfm-2k"))
    assert len(lastfm) == 17_632 and lastfm.fields == ("name", "tag")
    assert lastfm.texts[0].startswith("MALICE MIZER. Tags: j-rock, visual kei")

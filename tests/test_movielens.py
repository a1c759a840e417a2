"""MovieLens loaders on tiny files in each release's exact format, plus the real releases."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recft.data.movielens import MOVIELENS_RELEASES, load_movielens
from recft.errors import DataError, DatasetNotFoundError
from release_files import write_ml1m, write_ml10m, write_ml100k, write_ml_csv

REAL_DATA = os.environ.get("RECFT_DATA_DIR")
realdata = pytest.mark.skipif(
    not REAL_DATA, reason="set RECFT_DATA_DIR to the folder holding ml-100k/ and ml-latest-small/")


def _rows(x, column: str = "rating") -> list[tuple]:
    frame = x.to_pandas()
    return sorted(zip(frame["user_id"], frame["item_id"], frame[column]))


def test_ml100k_interactions_catalog_and_features(tmp_path: Path) -> None:
    x = load_movielens("ml-100k", path=write_ml100k(tmp_path / "ml-100k"))
    assert (len(x), x.num_users, x.num_items, x.catalog_size) == (4, 3, 3, 4)
    assert _rows(x) == [(1, 10, 5.0), (1, 20, 3.0), (2, 10, 4.0), (3, 30, 1.0)]
    assert x.timestamps.tolist() == [881250949, 881250950, 881250951, 881250952]
    assert x.feedback == "explicit" and x.ratings.dtype == np.float32
    items = x.item_features
    rows = x.item_vocab.encode([10, 20, 30, 40])
    # u.genre's "unknown" flag means no genre, like "(no genres listed)" in later releases
    assert items.categorical["genres"].as_lists(rows) == [["Action", "Comedy"], ["Drama"], [], []]
    assert items.categorical["year"].as_lists(rows) == [[1995], [1995], [1971], []]
    assert items.attributes["title"].iloc[rows[1]] == "Misérables, Les (1995)"  # Latin-1
    users = x.user_features
    user_rows = x.user_vocab.encode([1, 2, 3])
    assert users.categorical["age"].as_lists(user_rows) == [["18-24"], ["50-55"], ["Under 18"]]
    assert users.categorical["occupation"].as_lists(user_rows)[2] == ["student"]
    assert users.attributes["zip_code"].tolist() == ["85711", "94043", "T8H1N"]


def test_ml1m_double_colon_format_with_colons_in_titles(tmp_path: Path) -> None:
    x = load_movielens("ml-1m", path=write_ml1m(tmp_path / "ml-1m"))
    assert _rows(x) == [(1, 661, 3.0), (1, 1193, 5.0), (2, 1193, 4.0)]
    titles = dict(zip(x.item_vocab.ids.tolist(), x.item_features.attributes["title"]))
    assert titles == {661: "Voyage: The Return (1996)", 1193: "Café Story (1975)",
                      2000: "Never Rated (1990)"}
    occupation = x.user_features.categorical["occupation"].as_lists(x.user_vocab.encode([1, 2]))
    assert occupation == [["K-12 student"], ["self-employed"]]
    assert x.user_features.categorical["age"].as_lists(x.user_vocab.encode([2])) == [["56+"]]


def test_ml10m_release_folder_name_and_tags(tmp_path: Path) -> None:
    write_ml10m(tmp_path / "ml-10M100K")  # the zip's folder name is found under data_dir
    x = load_movielens("ml-10m", data_dir=tmp_path)
    assert _rows(x) == [(1, 122, 5.0), (1, 185, 4.5), (2, 122, 0.5)]
    tags = x.item_features.categorical["tag"]
    row = x.item_vocab.encode([122])
    # "Dark" and "dark " are one lower-cased tag applied twice
    assert tags.as_lists(row) == [["dark"]]
    assert tags.weights[tags.offsets[row[0]]] == 2.0
    genres = x.item_features.categorical["genres"].as_lists(x.item_vocab.encode([300]))
    assert genres == [[]]  # "(no genres listed)"


def test_csv_releases_quoted_commas_crlf_and_tags(tmp_path: Path) -> None:
    folder = write_ml_csv(tmp_path / "ml-latest-small")
    x = load_movielens("ml-latest-small", data_dir=tmp_path)
    assert (len(x), x.num_users, x.num_items, x.catalog_size) == (3, 2, 2, 4)
    assert _rows(x) == [(1, 1, 4.0), (1, 3, 4.5), (5, 1, 0.5)]
    attributes = x.item_features.attributes
    rows = x.item_vocab.encode([1, 3, 7, 9])
    assert attributes["title"].iloc[rows[1]] == "Good, the Bad and the Test, The (1966)"
    assert attributes["year"].iloc[rows].tolist()[:2] == [1995, 1966]
    assert attributes["year"].isna().iloc[rows[2]]
    assert attributes["year"].iloc[rows[3]] == 2006  # "(2006–2007)"
    assert x.item_features.categorical["genres"].as_lists(rows) == [
        ["Adventure", "Animation"], ["Western"], [], ["Drama"]]
    tags = x.item_features.categorical["tag"]
    assert tags.as_lists(rows[:2]) == [["funny"], ["slow, long"]]
    for name in ("ml-20m", "ml-25m", "ml-32m", "ml-latest"):  # same format, other names
        other = load_movielens(name, path=folder)
        assert other.name == name and len(other) == 3


@pytest.mark.parametrize("line, content, expected", [
    (2, "1\t20\t3\t881250950\t7", ["line 2", "expected 4 fields, found 5"]),
    (3, "2\t10\t4", ["line 3", "expected 4 fields, found 3"]),
    (2, "1\t20\tx\t881250950", ["line 2", "field 'rating'", "'x'"]),
    (4, "3\t30\t\t881250952", ["line 4", "field 'rating'", "empty"]),
    (1, "1\t10\t4.5\t881250949", ["line 1", "field 'rating'", "integer"]),
    (2, "1\t20\t9\t881250950", ["line 2", "field 'rating'", "outside 1..5"]),
    (3, "2\t99\t4\t881250951", ["line 3", "field 'item'", "not in u.item"]),
    (3, "", ["line 3", "blank line"]),
])
def test_ml100k_malformed_u_data_names_file_line_field(tmp_path: Path, line: int, content: str,
                                                       expected: list[str]) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    lines = (folder / "u.data").read_text().splitlines()
    lines[line - 1] = content
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        load_movielens("ml-100k", path=folder)
    message = str(caught.value)
    assert "u.data" in message
    for part in expected:
        assert part in message


def test_trailing_blank_lines_are_not_rows(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    with open(folder / "u.data", "a") as handle:
        handle.write("\n\n")
    assert len(load_movielens("ml-100k", path=folder)) == 4


def test_csv_errors_name_line_and_field(tmp_path: Path) -> None:
    folder = write_ml_csv(tmp_path / "ml-latest")
    ratings = folder / "ratings.csv"
    ratings.write_bytes(ratings.read_bytes().replace(b"1,3,4.5,", b"1,3,nan,"))
    with pytest.raises(DataError, match=r"ratings\.csv, line 3, field 'rating'"):
        load_movielens("ml-latest", path=folder)
    ratings.write_text("userId,itemId,rating,timestamp\n1,1,4.0,964982703\n")
    with pytest.raises(DataError, match=r"ratings\.csv, line 1: header is"):
        load_movielens("ml-latest", path=folder)
    ratings.write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match=r"ratings\.csv, line 2: file has no data rows"):
        load_movielens("ml-latest", path=folder)
    (folder / "movies.csv").write_text('movieId,title,genres\n1,"Open quote,Drama\n')
    with pytest.raises(DataError, match=r"movies\.csv, line 2: unterminated quoted field"):
        load_movielens("ml-latest", path=folder)


def test_duplicate_catalog_id_names_second_line(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m")
    with open(folder / "movies.dat", "a", encoding="latin-1") as handle:
        handle.write("661::Again (1996)::Drama\n")
    with pytest.raises(DataError, match=r"movies\.dat, line 4, field 'item'.*appears twice"):
        load_movielens("ml-1m", path=folder)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_bytes(b"")
    with pytest.raises(DataError, match=r"u\.data, line 1: file is empty"):
        load_movielens("ml-100k", path=folder)
    (folder / "u.item").unlink()
    with pytest.raises(DataError, match=r"u\.item: missing file of ml-100k") as caught:
        load_movielens("ml-100k", path=folder)
    assert "recft data download ml-100k --force" in caught.value.hint


def test_missing_dataset_hint_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        load_movielens("ml-1m", data_dir=tmp_path)
    assert "recft data download ml-1m" in caught.value.hint
    assert "RECFT_DATA_DIR" in caught.value.hint
    with pytest.raises(DataError, match="ml-100k, ml-1m, ml-10m"):
        load_movielens("ml-3m", data_dir=tmp_path)


def test_release_metadata_is_complete() -> None:
    assert set(MOVIELENS_RELEASES) == {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m",
                                       "ml-32m", "ml-latest-small", "ml-latest"}
    for name, release in MOVIELENS_RELEASES.items():
        assert release.name == name and release.url.endswith(f"/{name}.zip")
        assert release.files and release.format
        assert release.md5 is None or len(release.md5) == 32


@pytest.mark.realdata
@realdata
def test_real_ml100k() -> None:
    x = load_movielens("ml-100k", data_dir=REAL_DATA)
    assert (len(x), x.num_users, x.num_items) == (100_000, 943, 1682)
    assert np.bincount(x.ratings.astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert (x.timestamps.min(), x.timestamps.max()) == (874724710, 893286638)
    assert x.item_features.attributes["title"].iloc[x.item_vocab.encode([543])[0]] == \
        "Misérables, Les (1995)"


@pytest.mark.realdata
@realdata
def test_real_ml_latest_small() -> None:
    x = load_movielens("ml-latest-small", data_dir=REAL_DATA)
    assert (len(x), x.num_users, x.num_items, x.catalog_size) == (100_836, 610, 9724, 9742)
    assert (float(x.ratings.min()), float(x.ratings.max())) == (0.5, 5.0)
    tags = x.item_features.categorical["tag"]
    assert tags.weights.sum() == 3683  # every tag application counted once

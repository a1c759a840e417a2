"""MovieLens loaders: ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest(-small).

Every rating row is kept exactly as in the file (nothing is deduplicated or filtered; see
``recft.data.transforms``). The item vocabulary is the whole catalog (movies without a
rating still get a row), so a rating of a movie absent from the catalog file is an error
that names the ratings file and line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recft.data._catalog import (
    catalog_vocabulary,
    encode_in_catalog,
    jagged_feature,
    split_multi_valued,
    tag_feature,
    year_feature,
    years_from_titles,
)
from recft.data._parsing import UTF8_OR_LATIN1, Column, factorize_sorted, read_table
from recft.data._time import refuse_outside_time_range
from recft.data._users import read_ml1m_users, read_ml100k_users
from recft.data.features import CategoricalFeature, EntityFeatures
from recft.data.interactions import Interactions
from recft.data.releases import MOVIELENS_RELEASES, release_dir
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

# u.genre's content, used when a copy of ml-100k lacks that file
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
# genre markers that mean "no genre": the item gets an empty genre list
_NO_GENRE = ("", "(no genres listed)", "unknown")
_RATING_RANGE = {"ml-100k": (1, 5), "ml-1m": (1, 5)}


def load_movielens(name: str, data_dir: str | Path | None = None,
                   path: str | Path | None = None) -> Interactions:
    """Load a MovieLens release as explicit-feedback Interactions with item side features.

    Args:
        name: one of ``MOVIELENS_RELEASES`` (``ml-100k``, ``ml-1m``, ``ml-10m``, ``ml-20m``,
            ``ml-25m``, ``ml-32m``, ``ml-latest-small``, ``ml-latest``).
        data_dir: cache root holding ``<name>/`` (default ``$RECFT_DATA_DIR`` or ``data/``).
        path: a folder holding the release's files directly (overrides ``data_dir``).

    Returns:
        Interactions with ratings (stars) and timestamps (Unix seconds); item features
        ``genres``, ``year`` and ``tag`` (where the release has tags; weighted by count),
        item attributes ``title``/``year``; user features for ml-100k and ml-1m.

    Raises:
        DatasetNotFoundError: the release is not in the cache.
        DataError: a malformed file (the message names the file, line and field).

    Example::

        x = load_movielens("ml-100k", data_dir="data")
        assert (len(x), x.num_users, x.num_items) == (100_000, 943, 1682)
    """
    if name not in MOVIELENS_RELEASES:
        raise DataError(f"unknown MovieLens release {name!r}; valid: "
                        f"{', '.join(MOVIELENS_RELEASES)}")
    release = MOVIELENS_RELEASES[name]
    folder = release_dir(release, data_dir, path)
    if release.format == "ml-100k":
        return _load_100k(folder, name)
    return _load_modern(folder, name, release.format == "ml-csv")


def _ratings_columns(rating_kind: str = "float") -> list[Column]:
    return [Column("user", "int"), Column("item", "int"), Column("rating", rating_kind),
            Column("timestamp", "int")]


def _check_rating_range(ratings: np.ndarray, path: Path, first_line: int, name: str) -> None:
    low, high = _RATING_RANGE.get(name, (0.5, 5.0))
    bad = (ratings < low) | (ratings > high)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"rating {ratings[row]:g} is outside {low:g}..{high:g}",
                        path=path, line=first_line + row, field="rating")


def _interactions(ratings: pd.DataFrame, ratings_path: Path, first_line: int, name: str,
                  item_vocab: Vocabulary, catalog: Path, items: EntityFeatures,
                  users: tuple[Vocabulary, EntityFeatures | None] | None,
                  users_path: Path | None = None) -> Interactions:
    """Encode the ratings frame against the catalogs and assemble the Interactions."""
    values = ratings["rating"].to_numpy()
    _check_rating_range(values, ratings_path, first_line, name)
    item_rows = encode_in_catalog(item_vocab, ratings["item"].to_numpy(), ratings_path,
                                  first_line, "item", catalog)
    if users is None:
        user_rows, user_ids = factorize_sorted(ratings["user"])
        user_vocab, user_features = Vocabulary(user_ids, name="user"), None
    else:
        user_vocab, user_features = users
        user_rows = encode_in_catalog(user_vocab, ratings["user"].to_numpy(), ratings_path,
                                      first_line, "user", users_path or "users file")
    times = ratings["timestamp"].to_numpy(np.int64)
    refuse_outside_time_range(times, ratings_path, first_line, "timestamp")
    return Interactions(
        user_ids=user_rows, item_ids=item_rows, user_vocab=user_vocab, item_vocab=item_vocab,
        ratings=values.astype(np.float32), timestamps=times,
        item_features=items, user_features=user_features, feedback="explicit", name=name,
    )


def _load_100k(folder: Path, name: str) -> Interactions:
    item_path = folder / "u.item"
    genres = _read_100k_genres(folder / "u.genre")
    columns = [Column("item", "int"), Column("title"), Column("release_date", optional=True),
               Column("video_release_date", optional=True), Column("imdb_url", optional=True),
               *(Column(g, "int") for g in genres)]
    movies = read_table(item_path, columns, sep="|", encoding="latin-1")
    item_vocab = catalog_vocabulary(movies["item"], item_path, 1, "item", "item")
    movies = movies.iloc[np.argsort(item_vocab.encode(movies["item"].to_numpy()))]
    flags = movies[list(genres)].to_numpy()
    bad = (flags != 0) & (flags != 1)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(f"genre flag is {flags[row, col]}, expected 0 or 1", path=item_path,
                        line=int(movies.index[row]) + 1, field=genres[col])
    item_rows, genre_cols = np.nonzero(flags)
    names = np.asarray(genres, dtype=object)[genre_cols]
    keep = ~np.isin(names, _NO_GENRE)
    years = years_from_titles(movies["title"])
    features = EntityFeatures(
        {"genres": jagged_feature(item_rows[keep], names[keep], len(item_vocab), name="genre"),
         "year": year_feature(years)},
        pd.DataFrame({"title": movies["title"].to_numpy(), "year": years,
                      "release_date": movies["release_date"].to_numpy(),
                      "imdb_url": movies["imdb_url"].to_numpy()}),
    )
    users = None
    if (folder / "u.user").is_file():
        users = read_ml100k_users(folder / "u.user")
    data_path = folder / "u.data"
    ratings = read_table(data_path, _ratings_columns("int"), sep="\t")
    return _interactions(ratings, data_path, 1, name, item_vocab, item_path, features, users,
                         folder / "u.user")


def _read_100k_genres(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ML100K_GENRES
    table = read_table(path, [Column("genre"), Column("index", "int")], sep="|",
                       encoding="latin-1")
    if table["index"].tolist() != list(range(len(table))):
        raise DataError("genre indices must be 0, 1, 2, ... in order", path=path, field="index")
    return tuple(table["genre"].tolist())


def _load_modern(folder: Path, name: str, csv_format: bool) -> Interactions:
    """ml-1m / ml-10m (``::``-separated .dat) and the CSV releases (ml-20m and later)."""
    suffix, sep = (".csv", ",") if csv_format else (".dat", "::")
    header = (lambda names: names) if csv_format else (lambda names: None)
    first_line = 2 if csv_format else 1
    movies_path = folder / f"movies{suffix}"
    movies = read_table(
        movies_path, [Column("item", "int"), Column("title"), Column("genres")],
        sep=sep, header=header(["movieId", "title", "genres"]), quoted=csv_format,
        encoding="latin-1" if name == "ml-1m" else UTF8_OR_LATIN1,
    )
    item_vocab = catalog_vocabulary(movies["item"], movies_path, first_line, "item", "item")
    movies = movies.iloc[np.argsort(item_vocab.encode(movies["item"].to_numpy()))]
    positions, genre_names = split_multi_valued(movies["genres"], none=_NO_GENRE)
    years = years_from_titles(movies["title"])
    categorical: dict[str, CategoricalFeature] = {
        "genres": jagged_feature(positions, genre_names, len(item_vocab), name="genre"),
        "year": year_feature(years),
    }
    tags_path = folder / f"tags{suffix}"
    if tags_path.is_file():
        tags = read_table(
            tags_path, [Column("user", "int"), Column("item", "int"), Column("tag", optional=True),
                        Column("timestamp", "int")],
            sep=sep, header=header(["userId", "movieId", "tag", "timestamp"]),
            quoted=csv_format, encoding=UTF8_OR_LATIN1, allow_empty=True,
        )
        tag_rows = encode_in_catalog(item_vocab, tags["item"].to_numpy(), tags_path,
                                     first_line, "item", movies_path)
        categorical["tag"] = tag_feature(tag_rows, tags["tag"], len(item_vocab))
    features = EntityFeatures(
        categorical, pd.DataFrame({"title": movies["title"].to_numpy(), "year": years}))
    users_path = folder / "users.dat"
    users = read_ml1m_users(users_path) if name == "ml-1m" and users_path.is_file() else None
    ratings_path = folder / f"ratings{suffix}"
    ratings = read_table(ratings_path, _ratings_columns(), sep=sep,
                         header=header(["userId", "movieId", "rating", "timestamp"]),
                         quoted=csv_format)
    return _interactions(ratings, ratings_path, first_line, name, item_vocab, movies_path,
                         features, users, users_path)

"""Last.fm loaders: HetRec 2011 lastfm-2k, Celma's lastfm-1k (events) and lastfm-360k.

Items are artists and ``ratings`` are play counts (``feedback="count"``). Every row of
the play-count files is kept; lastfm-1k's listening events are aggregated to one row per
(user, artist) with the event count and the last timestamp. An artist is identified by
its MusicBrainz id, or by its name where the release gives no id.

A play count below zero is refused (the file, line and field are named): it counts
listens, so a negative one is corrupt data, and as a training weight it would push the
pair apart. Zero is kept.

Two documented exceptions to "every row is used": HetRec's ``user_taggedartists.dat``
tags 390 artists that ``artists.dat`` (the catalog) lacks; those 1,538 tag assignments
describe no catalog item and are skipped. In lastfm-1k/360k, a row with neither an artist
id nor a name cannot be attributed to any artist and is skipped with a warning.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from recft.data._catalog import catalog_vocabulary, encode_in_catalog, jagged_feature, tag_feature
from recft.data._parsing import (
    UTF8_OR_LATIN1,
    Column,
    factorize_sorted,
    read_table,
    unix_seconds,
)
from recft.data._time import refuse_outside_time_range
from recft.data._users import age_group
from recft.data.features import CategoricalFeature, EntityFeatures
from recft.data.interactions import Interactions
from recft.data.releases import EVENTS_1K, LASTFM_RELEASES, PLAYS_360K, release_dir
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

logger = logging.getLogger(__name__)


def load_lastfm(name: str, data_dir: str | Path | None = None,
                path: str | Path | None = None) -> Interactions:
    """Load a Last.fm release as play-count Interactions (items are artists).

    Args:
        name: ``lastfm-2k``, ``lastfm-1k`` or ``lastfm-360k``.
        data_dir: cache root holding ``<name>/`` (default ``$RECFT_DATA_DIR`` or ``data/``).
        path: a folder holding the release's files directly (overrides ``data_dir``).

    Returns:
        Interactions with ``ratings`` = play counts and ``feedback="count"``; item
        attribute ``name``; lastfm-2k adds the ``tag`` feature (tag counts per artist),
        lastfm-1k the last listening time per (user, artist) as ``timestamps``, and the
        user profiles (where present) ``gender``/``age``/``country`` user features.

    Example::

        x = load_lastfm("lastfm-2k", data_dir="data")
        assert (len(x), x.num_users, x.num_items) == (92_834, 1892, 17_632)
    """
    if name not in LASTFM_RELEASES:
        raise DataError(f"unknown Last.fm release {name!r}; valid: {', '.join(LASTFM_RELEASES)}")
    folder = release_dir(LASTFM_RELEASES[name], data_dir, path)
    loader = {"lastfm-2k": _load_2k, "lastfm-1k": _load_1k, "lastfm-360k": _load_360k}[name]
    return loader(folder, name)


def _load_2k(folder: Path, name: str) -> Interactions:
    artists_path = folder / "artists.dat"
    artists = read_table(
        artists_path, [Column("item", "int"), Column("name"), Column("url", optional=True),
                       Column("picture_url", optional=True)],
        sep="\t", header=["id", "name", "url", "pictureURL"], encoding=UTF8_OR_LATIN1)
    item_vocab = catalog_vocabulary(artists["item"], artists_path, 2, "artistID", "item")
    artists = artists.iloc[np.argsort(item_vocab.encode(artists["item"].to_numpy()))]
    categorical = {}
    tagged_path, tags_path = folder / "user_taggedartists.dat", folder / "tags.dat"
    if tagged_path.is_file() and tags_path.is_file():
        categorical["tag"] = _read_2k_tags(tags_path, tagged_path, item_vocab)
    features = EntityFeatures(categorical, pd.DataFrame(
        {"name": artists["name"].to_numpy(), "url": artists["url"].to_numpy()}))
    plays_path = folder / "user_artists.dat"
    plays = read_table(plays_path, [Column("user", "int"), Column("item", "int"),
                                    Column("weight", "int")],
                       sep="\t", header=["userID", "artistID", "weight"])
    _refuse_negative_counts(plays["weight"].to_numpy(), plays_path, 2, "weight")
    item_rows = encode_in_catalog(item_vocab, plays["item"].to_numpy(), plays_path, 2,
                                  "artistID", artists_path)
    user_rows, user_ids = factorize_sorted(plays["user"])
    return Interactions(
        user_ids=user_rows, item_ids=item_rows, user_vocab=Vocabulary(user_ids, name="user"),
        item_vocab=item_vocab, ratings=plays["weight"].to_numpy(np.float32),
        item_features=features, feedback="count", name=name,
    )


def _read_2k_tags(tags_path: Path, tagged_path: Path,
                  item_vocab: Vocabulary) -> CategoricalFeature:
    tags = read_table(tags_path, [Column("tag", "int"), Column("value")], sep="\t",
                      header=["tagID", "tagValue"], encoding=UTF8_OR_LATIN1)
    tag_vocab = catalog_vocabulary(tags["tag"], tags_path, 2, "tagID", "tag")
    tags = tags.iloc[np.argsort(tag_vocab.encode(tags["tag"].to_numpy()))]
    tagged = read_table(
        tagged_path, [Column(c, "int") for c in ("user", "item", "tag", "day", "month", "year")],
        sep="\t", header=["userID", "artistID", "tagID", "day", "month", "year"],
        allow_empty=True)
    tag_rows = encode_in_catalog(tag_vocab, tagged["tag"].to_numpy(), tagged_path, 2,
                                 "tagID", tags_path)
    item_rows = item_vocab.encode(tagged["item"].to_numpy(), unknown="mark")
    known = item_rows >= 0
    if not known.all():
        logger.debug("%s: %d tag assignments of artists not in artists.dat skipped",
                     tagged_path, int((~known).sum()))
    values = pd.Series(tags["value"].to_numpy()[tag_rows[known]])
    return tag_feature(item_rows[known], values, len(item_vocab))


def _refuse_negative_counts(counts: np.ndarray, path: Path, first_line: int,
                            field: str) -> None:
    """A play count is how often someone listened: below zero it is corrupt data."""
    negative = counts < 0
    if negative.any():
        row = int(np.argmax(negative))
        raise DataError(f"play count {counts[row]} is negative", path=path,
                        line=first_line + row, field=field)


def _artist_ids(mbids: pd.Series, names: pd.Series, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Artist id per row (MBID, else name) and a mask of rows that have either."""
    mbid = mbids.astype(str).to_numpy()
    label = names.astype(str).to_numpy()
    ids = np.where(mbid != "", mbid, label)
    usable = ids != ""
    if not usable.all():
        row = int(np.argmax(~usable))
        warnings.warn(f"{path}: {int((~usable).sum()):,} rows have neither an artist id "
                      f"nor a name (first at row {row + 1}); they are skipped", stacklevel=3)
    return ids, usable


def _artist_attributes(item_rows: np.ndarray, names: np.ndarray, size: int) -> pd.DataFrame:
    first = np.full(size, -1, dtype=np.int64)
    # reversed assignment leaves each artist's first occurrence in place
    first[item_rows[::-1]] = np.arange(len(item_rows))[::-1]
    return pd.DataFrame({"name": names[first]})


def _load_1k(folder: Path, name: str) -> Interactions:
    events_path = folder / EVENTS_1K
    events = read_table(
        events_path, [Column("user", "category"), Column("time", "str"),
                      Column("artist_id", "category", optional=True),
                      Column("artist_name", "category", optional=True),
                      Column("track_id", "category", optional=True),
                      Column("track_name", "category", optional=True)],
        sep="\t", encoding=UTF8_OR_LATIN1)
    ids, usable = _artist_ids(events["artist_id"], events["artist_name"], events_path)
    times = pd.to_datetime(events["time"], format="%Y-%m-%dT%H:%M:%SZ", utc=True,
                           errors="coerce")
    if times.isna().any():
        row = int(np.argmax(times.isna().to_numpy()))
        raise DataError(f"{events['time'].iloc[row]!r} is not a time like "
                        "2009-05-04T23:08:57Z", path=events_path, line=row + 1, field="time")
    seconds = unix_seconds(times)
    refuse_outside_time_range(seconds, events_path, 1, "time")
    user_rows, user_ids = factorize_sorted(events["user"].to_numpy()[usable])
    item_rows, item_ids = factorize_sorted(ids[usable])
    names = events["artist_name"].astype(str).to_numpy()[usable]
    grouped = pd.DataFrame({"user": user_rows, "item": item_rows, "time": seconds[usable]}
                           ).groupby(["user", "item"], sort=True)["time"].agg(["size", "max"])
    pairs = grouped.index.to_frame(index=False)
    user_vocab = Vocabulary(user_ids, name="user")
    return Interactions(
        user_ids=pairs["user"].to_numpy(np.int64), item_ids=pairs["item"].to_numpy(np.int64),
        user_vocab=user_vocab, item_vocab=Vocabulary(item_ids, name="item"),
        ratings=grouped["size"].to_numpy(np.float32), timestamps=grouped["max"].to_numpy(),
        item_features=EntityFeatures({}, _artist_attributes(item_rows, names, len(item_ids))),
        user_features=_profiles(folder / "userid-profile.tsv", user_vocab, header=True),
        feedback="count", name=name,
    )


def _load_360k(folder: Path, name: str) -> Interactions:
    plays_path = folder / PLAYS_360K
    plays = read_table(
        plays_path, [Column("user", "category"), Column("artist_id", "category", optional=True),
                     Column("artist_name", "category", optional=True), Column("plays", "int")],
        sep="\t", encoding=UTF8_OR_LATIN1)
    _refuse_negative_counts(plays["plays"].to_numpy(), plays_path, 1, "plays")
    ids, usable = _artist_ids(plays["artist_id"], plays["artist_name"], plays_path)
    user_rows, user_ids = factorize_sorted(plays["user"].to_numpy()[usable])
    item_rows, item_ids = factorize_sorted(ids[usable])
    names = plays["artist_name"].astype(str).to_numpy()[usable]
    user_vocab = Vocabulary(user_ids, name="user")
    return Interactions(
        user_ids=user_rows, item_ids=item_rows, user_vocab=user_vocab,
        item_vocab=Vocabulary(item_ids, name="item"),
        ratings=plays["plays"].to_numpy()[usable].astype(np.float32),
        item_features=EntityFeatures({}, _artist_attributes(item_rows, names, len(item_ids))),
        user_features=_profiles(folder / "usersha1-profile.tsv", user_vocab, header=False),
        feedback="count", name=name,
    )


def _profiles(path: Path, user_vocab: Vocabulary, header: bool) -> EntityFeatures | None:
    """gender / age group / country user features from a profile file, if present."""
    if not path.is_file():
        return None
    columns = [Column("user"), *(Column(c, optional=True) for c in
                                 ("gender", "age", "country", "signup"))]
    expected = ["#id", "gender", "age", "country", "registered"] if header else None
    table = read_table(path, columns, sep="\t", header=expected, encoding=UTF8_OR_LATIN1)
    ages = pd.to_numeric(table["age"].replace("", None), errors="coerce")
    rows = user_vocab.encode(table["user"].to_numpy(), unknown="mark")
    known = rows >= 0  # profiles of users without plays describe nobody in the data
    table, rows, ages = table[known], rows[known], ages[known]
    categorical = {}
    for feature in ("gender", "country"):
        present = (table[feature] != "").to_numpy()
        categorical[feature] = jagged_feature(rows[present], table[feature].to_numpy()[present],
                                              len(user_vocab), name=feature)
    has_age = ages.notna().to_numpy()
    categorical["age"] = jagged_feature(rows[has_age], age_group(ages.to_numpy()[has_age]),
                                        len(user_vocab), name="age")
    attributes = pd.DataFrame(index=range(len(user_vocab)), columns=["gender", "age", "country"])
    attributes.iloc[rows] = np.column_stack([table["gender"], ages.to_numpy(), table["country"]])
    return EntityFeatures(categorical, attributes)

"""Last.fm loaders on tiny files in each release's exact format, plus the real lastfm-2k."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from release_files import (
    EVENTS_1K,
    PLAYS_360K,
    write_lastfm1k,
    write_lastfm2k,
    write_lastfm360k,
)

from recft.data.lastfm import LASTFM_RELEASES, load_lastfm
from recft.errors import DataError, DatasetNotFoundError

REAL_DATA = os.environ.get("RECFT_DATA_DIR")
MBID = "f1b1cf71-bd35-4e99-8624-24a6e15f133a"


def _plays(x) -> list[tuple]:
    frame = x.to_pandas()
    return sorted(zip(frame["user_id"], frame["item_id"], frame["rating"]))


def test_lastfm2k_counts_catalog_and_tags(tmp_path: Path) -> None:
    write_lastfm2k(tmp_path / "hetrec2011-lastfm-2k")  # the zip's name is found too
    x = load_lastfm("lastfm-2k", data_dir=tmp_path)
    assert x.feedback == "count" and x.timestamps is None
    assert _plays(x) == [(2, 51, 13883.0), (2, 52, 11690.0), (3, 51, 5.0)]
    assert (x.num_users, x.num_items, x.catalog_size) == (2, 2, 3)
    rows = x.item_vocab.encode([51, 52, 53])
    assert x.item_features.attributes["name"].iloc[rows].tolist() == [
        "Duran Test", "Morçheeba", "Nobody Plays"]
    tags = x.item_features.categorical["tag"]
    # two users tagged 52 "trip-hop", one "chillé" (Latin-1 in tags.dat); most frequent first
    assert tags.as_lists(rows) == [["metal"], ["trip-hop", "chillé"], []]
    assert tags.weights[tags.offsets[rows[1]]:tags.offsets[rows[1] + 1]].tolist() == [2.0, 1.0]


def test_lastfm2k_play_of_unknown_artist_names_line(tmp_path: Path) -> None:
    folder = write_lastfm2k(tmp_path / "lastfm-2k")
    with open(folder / "user_artists.dat", "ab") as handle:
        handle.write(b"4\t77\t10\r\n")
    with pytest.raises(DataError, match=r"user_artists\.dat, line 5, field 'artistID'.*77"):
        load_lastfm("lastfm-2k", path=folder)


def test_lastfm2k_bad_count_and_field_count(tmp_path: Path) -> None:
    folder = write_lastfm2k(tmp_path / "lastfm-2k")
    plays = folder / "user_artists.dat"
    original = plays.read_bytes()
    plays.write_bytes(original.replace(b"2\t52\t11690", b"2\t52\tmany"))
    with pytest.raises(DataError, match=r"user_artists\.dat, line 3, field 'weight': 'many'"):
        load_lastfm("lastfm-2k", path=folder)
    plays.write_bytes(original.replace(b"3\t51\t5", b"3\t51"))
    with pytest.raises(DataError, match=r"user_artists\.dat, line 4: expected 3 fields, found 2"):
        load_lastfm("lastfm-2k", path=folder)


def test_lastfm1k_events_aggregate_to_counts_with_last_time(tmp_path: Path) -> None:
    x = load_lastfm("lastfm-1k", path=write_lastfm1k(tmp_path / "lastfm-1k"))
    frame = x.to_pandas()
    got = sorted(zip(frame["user_id"], frame["item_id"], frame["rating"], frame["timestamp"]))
    assert got == [
        ("user_000001", "No Id Band", 1.0, 1241344800),  # no MBID: the name is the id
        ("user_000001", MBID, 2.0, 1241478537),          # two events, the later time
        ("user_000002", MBID, 1.0, 1230768000),
    ]
    names = dict(zip(x.item_vocab.ids.tolist(), x.item_features.attributes["name"]))
    assert names == {MBID: "Deep Test", "No Id Band": "No Id Band"}
    users = x.user_features.categorical
    rows = x.user_vocab.encode(["user_000001", "user_000002"])
    assert users["country"].as_lists(rows) == [["Japan"], ["Peru"]]
    assert users["age"].as_lists(rows) == [[], ["18-24"]]


def test_lastfm1k_bad_timestamp(tmp_path: Path) -> None:
    folder = write_lastfm1k(tmp_path / "lastfm-1k")
    events = folder / EVENTS_1K
    events.write_text(events.read_text().replace("2009-05-03T10:00:00Z", "yesterday"))
    with pytest.raises(DataError, match=r"line 3, field 'time': 'yesterday'"):
        load_lastfm("lastfm-1k", path=folder)


def test_lastfm360k_plays_and_profiles(tmp_path: Path) -> None:
    x = load_lastfm("lastfm-360k", path=write_lastfm360k(tmp_path / "lastfm-360k"))
    frame = x.to_pandas()
    assert sorted(zip(frame["user_id"].str[:5], frame["item_id"], frame["rating"])) == [
        ("00000", "3bd73256-3905-4f3a-97e2-8b341527f805", 2137.0),
        ("00000", "unknown garage band", 12.0),
        ("00001", "3bd73256-3905-4f3a-97e2-8b341527f805", 40.0),
    ]
    gender = x.user_features.categorical["gender"]
    assert gender.lengths().tolist() == [1, 0]  # the second profile leaves gender empty


def test_lastfm360k_row_without_artist_is_skipped_with_warning(tmp_path: Path) -> None:
    folder = write_lastfm360k(tmp_path / "lastfm-360k")
    with open(folder / PLAYS_360K, "a") as handle:
        handle.write("00000c289a1829a808ac09c00daf10bc3c4e223b\t\t\t3\n")
    with pytest.warns(UserWarning, match="1 rows have neither an artist id nor a name"):
        x = load_lastfm("lastfm-360k", path=folder)
    assert len(x) == 3


def test_missing_release_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        load_lastfm("lastfm-2k", data_dir=tmp_path)
    assert "recft data download lastfm-2k" in caught.value.hint
    with pytest.raises(DataError, match="lastfm-2k, lastfm-1k, lastfm-360k"):
        load_lastfm("lastfm-5k", data_dir=tmp_path)
    assert set(LASTFM_RELEASES) == {"lastfm-2k", "lastfm-1k", "lastfm-360k"}


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_DATA, reason="set RECFT_DATA_DIR to the folder holding lastfm-2k/")
def test_real_lastfm2k() -> None:
    x = load_lastfm("lastfm-2k", data_dir=REAL_DATA)
    assert (len(x), x.num_users, x.num_items) == (92_834, 1892, 17_632)
    assert (x.ratings.min(), x.ratings.max(), x.ratings.astype(np.int64).sum()) == (
        1, 352_698, 69_183_975)
    tags = x.item_features.categorical["tag"]
    # 186,479 assignments minus the 1,538 on artists that artists.dat does not list
    assert tags.weights.sum() == 186_479 - 1_538

"""Hostile and broken inputs (issue 13): each is refused in one line that names the file,
the 1-based file line and the field, with exit 2 from the CLI, or loads by a documented
rule. The fast pyarrow path must never change which files load or what they load as."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from release_files import PLAYS_360K, write_lastfm2k, write_lastfm360k, write_ml_csv

from recft.cli import main
from recft.data import Interactions, _arrow_csv, _parsing, _table_reader, tabular
from recft.data.describe import describe
from recft.data.lastfm import load_lastfm
from recft.data.movielens import load_movielens
from recft.data.tabular import from_pandas, read_interactions
from recft.errors import DataError

HUGE_ID = "99999999999999999999999991"  # beyond int64


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _refused(load, *parts: str) -> str:
    with pytest.raises(DataError) as caught:
        load()
    message = str(caught.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


# ------------------------------------------------------------------ ids beyond int64
def test_id_beyond_int64_keeps_working_as_a_string_id(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.csv", f"user_id,item_id\n{HUGE_ID},1\n2,1\n{HUGE_ID},3\n")
    x = read_interactions(path)
    assert sorted(x.user_vocab.ids.tolist()) == ["2", HUGE_ID]  # exact, as strings
    assert x.to_pandas()["user_id"].tolist() == [HUGE_ID, "2", HUGE_ID]
    assert x.item_vocab.ids.dtype == np.int64  # the other column keeps integer ids
    y = from_pandas(pd.DataFrame({"user_id": [10**30, 7], "item_id": [1, 2]}))
    assert y.user_vocab.ids.tolist() == [str(10**30), "7"]
    z = Interactions.from_raw([10**30, 7], [1, 2])
    assert z.user_vocab.encode([10**30]).tolist() == [0]


def test_release_id_beyond_int64_is_refused_with_its_line(tmp_path: Path) -> None:
    folder = write_ml_csv(tmp_path / "ml-latest")
    ratings = folder / "ratings.csv"
    lines = ratings.read_text().splitlines()
    lines[2] = f"{HUGE_ID}," + lines[2].split(",", 1)[1]
    ratings.write_text("\n".join(lines) + "\n")
    _refused(lambda: load_movielens("ml-latest", path=folder), "ratings.csv, line 3",
             "field 'user'", "outside the 64-bit integer range")


# ------------------------------------------------------------------ timestamps
def test_timestamp_outside_sane_range_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "user_id,item_id,timestamp\n1,1,100\n2,2,1e20\n")
    _refused(lambda: read_interactions(path), "t.csv, line 3, field 'timestamp'", "'1e20'",
             "1900-01-01 .. 2200-01-01")
    millis = _write(tmp_path / "ms.csv", "user_id,item_id,timestamp\n1,1,1600000000000\n")
    _refused(lambda: read_interactions(millis), "line 2", "looks like milliseconds")
    late = _write(tmp_path / "iso.csv", "user_id,item_id,timestamp\n1,1,2020-01-01\n"
                  "1,2,2999-01-01\n")
    _refused(lambda: read_interactions(late), "iso.csv, line 3, field 'timestamp'")


def test_release_timestamp_outside_range_names_line(tmp_path: Path) -> None:
    folder = write_ml_csv(tmp_path / "ml-latest")
    ratings = folder / "ratings.csv"
    original = ratings.read_text()
    stamp = original.splitlines()[2].rsplit(",", 1)[1]
    for bad, phrase in (("1e20", "64-bit integer range"), ("1600000000000", "milliseconds")):
        ratings.write_text(original.replace(stamp, bad))
        _refused(lambda: load_movielens("ml-latest", path=folder), "ratings.csv, line 3",
                 "field 'timestamp'", phrase)


def test_describe_never_fails_on_extreme_timestamps() -> None:
    x = Interactions.from_raw([1, 2], [1, 2], timestamps=np.array([-2**63 + 1, 2**63 - 1]))
    time_range = describe(x)["time_range"]
    assert time_range["start"] == f"{-2**63 + 1} s" and time_range["end"] == f"{2**63 - 1} s"
    assert "interactions" in repr(x)


# ------------------------------------------------------------------ column types
def test_parquet_list_ids_and_bool_times_are_refused(tmp_path: Path) -> None:
    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"user_id": [[1, 2], [3]], "item_id": [1, 2]}), lists)
    _refused(lambda: read_interactions(lists), "lists.parquet", "field 'user_id'", "list")
    flags = tmp_path / "flags.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [1, 2],
                             "timestamp": [True, False]}), flags)
    _refused(lambda: read_interactions(flags), "flags.parquet", "field 'timestamp'", "boolean")
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "timestamp": [True, False]})
    _refused(lambda: from_pandas(frame), "field 'timestamp'", "boolean")
    nested = pd.DataFrame({"user_id": [1, [2, 3]], "item_id": [1, 2]})
    _refused(lambda: from_pandas(nested), "field 'user_id'", "row 1", "list")


def test_duplicated_header_column_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "user_id,item_id,rating,rating\n1,1,4,5\n")
    _refused(lambda: read_interactions(path), "d.csv, line 1, field 'rating'", "appears twice",
             "columns 3 and 4")
    frame = pd.DataFrame([[1, 1, 4, 5]], columns=["user_id", "item_id", "rating", "rating"])
    _refused(lambda: from_pandas(frame), "field 'rating'", "appears twice")
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1])] * 4,
                                        names=["user_id", "item_id", "rating", "rating"]),
                   parquet)
    _refused(lambda: read_interactions(parquet), "d.parquet", "'rating' appears twice")


# ------------------------------------------------------------------ lines and quoting
def test_line_of_empty_fields_is_an_error_but_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", "user_id,item_id,rating\n1,1,4\n\n,,\n2,2,3\n")
    _refused(lambda: read_interactions(path), "e.csv, line 4:", "every field is empty")
    blank = _write(tmp_path / "b.csv", "user_id,item_id,rating\n1,1,4\n\n2,2,3\n\n")
    assert len(read_interactions(blank)) == 2
    folder = write_ml_csv(tmp_path / "ml-latest")
    with open(folder / "ratings.csv", "a") as handle:
        handle.write(",,,\n")
    _refused(lambda: load_movielens("ml-latest", path=folder), "ratings.csv, line 5",
             "field 'user'", "empty value")


def test_unterminated_quote_names_the_file_line(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i},3\n" for i in range(40))  # lines 2..41
    path = _write(tmp_path / "q.csv", "user_id,item_id,rating\n" + rows + '5,"6,3\n7,7,7\n')
    _refused(lambda: read_interactions(path), "q.csv, line 42:", "unterminated quoted field")
    # a quoted field spanning two lines earlier in the file shifts records against lines
    spanning = _write(tmp_path / "s.csv", 'user_id,item_id,rating\n1,"a\nb",3\n' + rows
                      + '5,"6,3\n')
    _refused(lambda: read_interactions(spanning), "s.csv, line 44:", "unterminated")
    # in a column that is not even used, an unterminated quote still never drops rows
    unused = _write(tmp_path / "u.csv", 'user_id,item_id,note\n1,2,"oops\n3,4,x\n')
    _refused(lambda: read_interactions(unused), "u.csv, line 2:", "unterminated")


def test_field_count_error_names_the_file_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.csv", 'user_id,item_id,rating\n1,"a\nb",3\n2,2,3,4\n')
    _refused(lambda: read_interactions(path), "f.csv, line 4:", "expected 3 fields, found 4")


# ------------------------------------------------------------------ counts
def test_negative_play_counts_are_refused(tmp_path: Path) -> None:
    folder = write_lastfm2k(tmp_path / "lastfm-2k")
    plays = folder / "user_artists.dat"
    plays.write_bytes(plays.read_bytes().replace(b"2\t52\t11690", b"2\t52\t-5"))
    _refused(lambda: load_lastfm("lastfm-2k", path=folder), "user_artists.dat, line 3",
             "field 'weight'", "play count -5 is negative")
    folder = write_lastfm360k(tmp_path / "lastfm-360k")
    with open(folder / PLAYS_360K, "a") as handle:
        handle.write("00000c289a1829a808ac09c00daf10bc3c4e223b\t\tsomeone\t-2\n")
    _refused(lambda: load_lastfm("lastfm-360k", path=folder), f"{PLAYS_360K}, line 4",
             "field 'plays'", "negative")
    path = _write(tmp_path / "c.csv", "user_id,item_id,plays\n1,1,4\n2,2,-3\n")
    _refused(lambda: read_interactions(path, rating="plays", feedback="count"),
             "c.csv, line 3, field 'plays'", "negative count")
    assert read_interactions(path, rating="plays").ratings.tolist() == [4.0, -3.0]  # a score


# ------------------------------------------------------------------ compression
def test_gzip_named_csv_is_read_transparently(tmp_path: Path) -> None:
    text = "user_id,item_id,rating\n1,10,4\n2,20,3\n"
    (tmp_path / "z.csv").write_bytes(gzip.compress(text.encode()))
    plain = read_interactions(_write(tmp_path / "p.csv", text))
    zipped = read_interactions(tmp_path / "z.csv")
    assert zipped.to_pandas().equals(plain.to_pandas())
    pq.write_table(pa.table({"user_id": [1], "item_id": [1]}), tmp_path / "pq.csv")
    message = _refused(lambda: read_interactions(tmp_path / "pq.csv"), "pq.csv", "Parquet")
    assert "hint" not in message  # the hint travels separately (the CLI appends it)
    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", text)
        archive.writestr("b.csv", text)
    _refused(lambda: read_interactions(tmp_path / "two.csv.zip"), "exactly one file")


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("name, text, parts", [
    ("t.csv", "user_id,item_id,timestamp\n1,1,100\n2,2,1e20\n",
     ["line 3", "field 'timestamp'"]),
    ("d.csv", "user_id,item_id,rating,rating\n1,1,4,5\n", ["line 1", "field 'rating'"]),
    ("e.csv", "user_id,item_id\n1,1\n,\n", ["line 3", "every field is empty"]),
    ("q.csv", 'user_id,item_id\n1,1\n2,"2\n', ["line 3", "unterminated"]),
])
def test_cli_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                   name: str, text: str, parts: list[str]) -> None:
    path = _write(tmp_path / name, text)
    assert main(["data", "describe", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"recft: error: {path}")
    for part in parts:
        assert part in err


# ------------------------------------------------------------------ fast path == reference
def _no_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise _arrow_csv.NotFast("disabled by the test")

    monkeypatch.setattr(tabular, "read_columns", refuse)
    monkeypatch.setattr(_parsing, "read_frame", refuse)


VALID_FILES = {
    "ints.csv": "user_id,item_id,rating,timestamp\n1,10,4.5,100\n2,20,3,200\n1,20,1,300\n",
    "strings.tsv": "user_id\titem_id\tweight\nu1\t007\t0.5\nu2\t7\t2\nu1\t7\t1\n",
    "iso.csv": "user_id,item_id,timestamp\n1,1,2020-01-01T00:00:00Z\n1,2,2020-01-02\n",
    "quoted.csv": 'user_id,item_id,note\n"1",a,"x, ""y"""\n2,b,\n\n3,a,"two\nlines"\n',
    "big.csv": f"user_id,item_id\n{HUGE_ID},-5\n2,0\n",
}


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_fast_path_loads_what_the_reference_parser_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path = _write(tmp_path / name, VALID_FILES[name])
    fast = read_interactions(path)
    _no_fast_path(monkeypatch)
    reference = read_interactions(path)
    assert fast.to_pandas().equals(reference.to_pandas())
    assert fast.user_vocab == reference.user_vocab and fast.item_vocab == reference.item_vocab
    assert fast.feedback == reference.feedback


def test_plain_files_never_need_the_reference_parser(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory bound holds only on the fast path: ordinary files must take it."""
    def fail(*args, **kwargs):
        raise AssertionError("the reference parser ran")

    monkeypatch.setattr(tabular, "text_frames", fail)
    monkeypatch.setattr(_table_reader.TableReader, "read", fail)
    for name in ("ints.csv", "strings.tsv", "big.csv"):
        read_interactions(_write(tmp_path / name, VALID_FILES[name]))
    load_movielens("ml-latest", path=write_ml_csv(tmp_path / "ml-latest"))


def test_big_files_are_searched_in_chunks_with_the_same_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tabular, "CHUNKED_ABOVE_BYTES", 0)  # every file counts as big
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 2)
    head = "user_id,item_id,timestamp\n1,1,100\n\n2,2,200\n3,3,300\n"  # lines 1-5
    bad = _write(tmp_path / "bad.csv", head + "4,4,400\n5,5,1e20\n")
    _refused(lambda: read_interactions(bad), "bad.csv, line 7, field 'timestamp'", "'1e20'")
    empty = _write(tmp_path / "empty.csv", head + "\n,,\n")
    _refused(lambda: read_interactions(empty), "empty.csv, line 7:", "every field is empty")
    # valid, yet not for the fast path (mixed time formats): the chunks find nothing
    mixed = _write(tmp_path / "mixed.csv", "user_id,item_id,timestamp\n1,1,2020-01-01\n"
                   "1,2,2020-01-02T10:00:00+01:00\n\n2,1,2020-01-03 00:00\n")
    assert read_interactions(mixed).timestamps.tolist() == [1577836800, 1577955600,
                                                            1578009600]


def test_big_release_files_are_searched_in_chunks(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_table_reader, "CHUNKED_ABOVE_BYTES", 0)
    monkeypatch.setattr(_table_reader, "CHUNK_ROWS", 1)
    folder = write_ml_csv(tmp_path / "ml-latest")
    ratings = folder / "ratings.csv"
    original = ratings.read_text()
    ratings.write_text(original + "\n\n")  # trailing blank lines: harmless
    assert len(load_movielens("ml-latest", path=folder)) == 3
    lines = original.splitlines()
    ratings.write_text("\n".join([*lines[:3], "5,1,x,964982703", lines[3]]) + "\n")
    _refused(lambda: load_movielens("ml-latest", path=folder), "ratings.csv, line 4",
             "field 'rating'", "'x'")

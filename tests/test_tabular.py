"""The user's own files and DataFrames: column mapping, ids, timestamps, error lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recft.data._sources import RecordLines, text_opener
from recft.data.tabular import from_pandas, read_interactions
from recft.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_defaults_pick_up_rating_and_timestamp(tmp_path: Path) -> None:
    path = _write(tmp_path / "clicks.csv",
                  "user_id,item_id,rating,timestamp,extra\nu1,10,4,100,a\nu2,20,3.5,200,b\n"
                  "u1,20,1,300,c\n")
    x = read_interactions(path)
    assert x.name == "clicks" and x.feedback == "explicit"
    frame = x.to_pandas()
    assert frame.values.tolist() == [["u1", 10, 4.0, 100], ["u2", 20, 3.5, 200],
                                     ["u1", 20, 1.0, 300]]
    assert x.item_vocab.ids.dtype == np.int64  # integer ids stay integers


def test_column_mapping_tsv_and_implicit(tmp_path: Path) -> None:
    path = _write(tmp_path / "plays.tsv", "uid\tsku\tplays\n1\tA\t5\n2\tB\t7\n")
    x = read_interactions(path, user="uid", item="sku", rating="plays", feedback="count")
    assert x.feedback == "count" and x.ratings.tolist() == [5.0, 7.0]
    y = read_interactions(path, user="uid", item="sku")
    assert y.feedback == "implicit" and y.ratings is None


def test_zero_padded_ids_stay_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "user_id,item_id\n1,007\n1,7\n")
    x = read_interactions(path)
    assert sorted(x.item_vocab.ids.tolist()) == ["007", "7"] and x.num_items == 2


def test_iso_and_unix_timestamps(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "user_id,item_id,timestamp\n1,1,2020-01-01T00:00:00Z\n"
                  "1,2,2020-01-02\n1,3,2020-01-01T01:00:00+01:00\n")
    assert read_interactions(path).timestamps.tolist() == [1577836800, 1577923200, 1577836800]
    frame = pd.DataFrame({"user_id": [1], "item_id": [2],
                          "timestamp": pd.to_datetime(["1970-01-02"])})
    assert from_pandas(frame).timestamps.tolist() == [86400]


def test_gzip_and_parquet(tmp_path: Path) -> None:
    text = "user_id,item_id,weight\n1,1,0.5\n2,1,2\n"
    gz = tmp_path / "w.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    x = read_interactions(gz)
    assert x.weights.tolist() == [0.5, 2.0]
    parquet = tmp_path / "w.parquet"
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "rating": [1.0, 2.0]})
    frame.to_parquet(parquet)
    y = read_interactions(parquet)
    assert y.to_pandas().values.tolist() == [[1, "a", 1.0], [2, "b", 2.0]]


def test_missing_column_lists_columns_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "user,item\n1,2\n")
    with pytest.raises(DataError) as caught:
        read_interactions(path)
    message = str(caught.value)
    assert "x.csv" in message and "'user_id'" in message and "['user', 'item']" in message


@pytest.mark.parametrize("body, line, field, phrase", [
    ("1,1,4\n2,2,\n", 3, "rating", "empty value"),
    ("1,1,4\n2,2,x\n3,3,5\n", 3, "rating", "'x' is not a finite number"),
    ("1,1,NaN\n", 2, "rating", "'NaN' is not a finite number"),
    ("1,1,4\n\n,2,5\n", 4, "user_id", "empty value"),  # blank line 3 keeps the numbering
])
def test_bad_values_name_the_line(tmp_path: Path, body: str, line: int, field: str,
                                  phrase: str) -> None:
    path = _write(tmp_path / "r.csv", "user_id,item_id,rating\n" + body)
    with pytest.raises(DataError) as caught:
        read_interactions(path)
    assert str(caught.value) == f"{path}, line {line}, field {field!r}: {phrase}"


def test_bad_timestamp_and_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "user_id,item_id,timestamp\n1,1,100\n1,2,soon\n")
    with pytest.raises(DataError, match=r"line 3, field 'timestamp': 'soon' is not Unix"):
        read_interactions(path)
    with pytest.raises(DataError, match="file is empty"):
        read_interactions(_write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match="no data rows"):
        read_interactions(_write(tmp_path / "h.csv", "user_id,item_id\n"))
    with pytest.raises(DataError, match="file not found"):
        read_interactions(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_interactions(_write(tmp_path / "x.json", "{}"))


def test_from_pandas_names_row_label() -> None:
    frame = pd.DataFrame({"u": [1, 2], "i": ["a", "b"], "r": [1.0, np.nan]}, index=[10, 11])
    with pytest.raises(DataError, match=r"field 'r': row 11: missing value"):
        from_pandas(frame, user="u", item="i", rating="r")
    x = from_pandas(frame.iloc[:1], user="u", item="i", rating="r", name="mine")
    assert (x.name, len(x), x.ratings.tolist()) == ("mine", 1, [1.0])


@pytest.mark.parametrize("block_size", [5, 1 << 22])  # 5 bytes: lines straddle blocks
def test_record_lines_count_file_lines_not_records(tmp_path: Path, monkeypatch,
                                                   block_size: int) -> None:
    monkeypatch.setattr(RecordLines, "block_size", block_size)
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b"h,i\r\na,b\r\n\r\n,\r\nlast,x")
    lines = RecordLines(text_opener(crlf), ",")
    assert [lines.line(r) for r in range(6)] == [1, 2, 3, 4, 5, 6]
    assert lines.blank([1, 2, 3, 4]) == [False, True, False, False]
    quoted = tmp_path / "quoted.csv"
    quoted.write_bytes(b'h,i\n"x\ny",1\n\nb,2\n')  # record 1 spans lines 2 and 3
    lines = RecordLines(text_opener(quoted), ",")
    assert [lines.line(r) for r in range(4)] == [1, 2, 4, 5]
    assert lines.blank([2, 3]) == [True, False]
    lone_cr = tmp_path / "mac.csv"
    lone_cr.write_bytes(b"h,i\ra,b\rc,d\r")
    assert RecordLines(text_opener(lone_cr), ",").line(2) == 3

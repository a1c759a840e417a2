"""describe() statistics on inputs with known answers, the text table, and `recft data`."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from release_files import write_ml100k

from recft.cli import main
from recft.cli.data import run_describe, run_download
from recft.data import Interactions
from recft.data.describe import describe, format_description
from recft.data.movielens import load_movielens
from recft.errors import DataError


@pytest.fixture
def small() -> Interactions:
    # 3 users x 2 items; the pair (1, 10) repeats
    return Interactions.from_raw(
        [1, 1, 1, 2, 3], [10, 20, 10, 20, 20], ratings=[5, 4, 3, 4, 1],
        timestamps=[0, 86400, 2 * 86400, 3 * 86400, 10 * 86400], name="small",
    )


def test_counts_density_activity_and_histogram(small: Interactions) -> None:
    d = describe(small)
    assert (d["interactions"], d["users"], d["items"], d["catalog_size"]) == (5, 3, 2, 2)
    assert d["density"] == pytest.approx(5 / 6) and d["sparsity"] == pytest.approx(1 / 6)
    assert d["duplicate_pairs"] == 1
    assert d["per_user"] == {"min": 1, "median": 1.0, "mean": 5 / 3, "max": 3}
    assert d["per_item"] == {"min": 2, "median": 2.5, "mean": 2.5, "max": 3}
    assert d["ratings"]["histogram"] == {"1": 1, "3": 1, "4": 2, "5": 1}
    assert d["time_range"] == {"start": "1970-01-01", "end": "1970-01-11", "days": 10}
    json.dumps(d)  # plain Python values only


def test_many_distinct_values_get_quantiles() -> None:
    x = Interactions.from_raw(np.arange(101), np.zeros(101, int), ratings=np.arange(101.0),
                              feedback="count")
    ratings = describe(x)["ratings"]
    assert "histogram" not in ratings
    assert ratings["quantiles"]["p50"] == 50.0 and ratings["quantiles"]["p90"] == 90.0


def test_feature_coverage(tmp_path: Path) -> None:
    x = load_movielens("ml-100k", path=write_ml100k(tmp_path / "ml-100k"))
    d = describe(x)
    # 4 catalog items: two have genres, items 30/40 are "unknown"; item 40 has no year
    assert d["item_features"]["genres"]["coverage"] == 0.5
    assert d["item_features"]["year"]["coverage"] == 0.75
    assert d["item_features"]["genres"]["distinct_values"] == 3
    assert d["item_attributes"]["release_date"] == 0.75  # an empty field is not a value
    assert d["user_features"]["age"]["coverage"] == 1.0
    text = format_description(d)
    assert "item feature genres" in text and "coverage 50.0%" in text
    assert "1: 1  3: 1  4: 1  5: 1" in text


def test_empty_interactions_describe() -> None:
    x = Interactions.from_raw([1], [1], ratings=[2.0]).subset(np.zeros(1, bool))
    d = describe(x)
    assert d["interactions"] == 0 and d["per_user"]["max"] == 0
    assert "interactions" in format_description(d)


def _namespace(**values) -> argparse.Namespace:
    defaults = {"data_dir": None, "user_col": None, "item_col": None, "rating_col": None,
                "timestamp_col": None, "json": False}
    return argparse.Namespace(**{**defaults, **values})


def test_cli_describe_file_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("uid,iid,stars\n1,a,5\n2,a,3\n")
    assert run_describe(_namespace(source=str(path), user_col="uid", item_col="iid",
                                   rating_col="stars", json=True)) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["name"], d["interactions"], d["users"]) == ("mine", 2, 2)
    write_ml100k(tmp_path / "ml-100k")
    assert main(["data", "describe", "ml-100k", "--data-dir", str(tmp_path)]) == 0
    assert re.search(r"^interactions +4$", capsys.readouterr().out, re.MULTILINE)


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "describe", "ml-20m", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "dataset 'ml-20m' not found" in err and "recft data download ml-20m" in err
    with pytest.raises(DataError, match="unknown dataset"):
        run_download(argparse.Namespace(name="nope", data_dir=str(tmp_path), url=None,
                                        force=False, quiet=True))


def test_package_exports_resolve_to_functions() -> None:
    import importlib

    import recft.data

    for module in ("describe", "download", "registry", "tabular", "transforms"):
        importlib.import_module(f"recft.data.{module}")  # sets recft.data.<module> on import
    for name in ("describe", "download", "load", "dataset_names", "default_data_dir",
                 "read_interactions", "from_pandas", "load_movielens", "load_lastfm",
                 "binarize", "log1p_weights", "kcore_filter", "deduplicate"):
        assert callable(getattr(recft.data, name)), name
    assert "ml-100k" in recft.data.MOVIELENS_RELEASES
    assert "lastfm-2k" in recft.data.LASTFM_RELEASES

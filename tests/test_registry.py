"""registry.load: names, release folders, files, synthetic datasets, helpful errors."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
from release_files import write_lastfm2k, write_ml1m, write_ml10m, write_ml100k, write_ml_csv

from recft.data import registry
from recft.data.registry import dataset_names, default_data_dir, detect_release, load
from recft.errors import DataError, DatasetNotFoundError


def test_load_by_name_from_data_dir_and_env(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_ml100k(tmp_path / "ml-100k")
    assert len(load("ml-100k", data_dir=tmp_path)) == 4
    monkeypatch.setenv("RECFT_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert load("ml-100k").name == "ml-100k"
    monkeypatch.delenv("RECFT_DATA_DIR")
    assert default_data_dir() == Path(registry.__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize("writer, expected", [
    (write_ml100k, "ml-100k"), (write_ml1m, "ml-1m"), (write_ml10m, "ml-10m"),
    (write_ml_csv, "ml-latest"), (write_lastfm2k, "lastfm-2k"),
])
def test_folder_is_recognised_by_its_files(tmp_path: Path, writer, expected: str) -> None:
    folder = writer(tmp_path / "my copy")
    assert detect_release(folder) == expected
    assert load(str(folder)).name == expected


def test_file_source_with_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("who,what,when\n1,a,5\n2,b,6\n")
    x = load(str(path), user="who", item="what", timestamp="when")
    assert x.timestamps.tolist() == [5, 6] and x.num_users == 2


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load("movielens", data_dir=tmp_path)
    for name in ("ml-100k", "ml-latest-small", "lastfm-2k", "synthetic-music-target"):
        assert name in str(caught.value)
    with pytest.raises(DataError, match="file or folder not found"):
        load(str(tmp_path / "missing.csv"))


def test_missing_release_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        load("ml-25m", data_dir=tmp_path)
    assert str(tmp_path / "ml-25m") in str(caught.value)
    assert "recft data download ml-25m" in caught.value.hint


def test_column_options_are_for_files_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"column options \['user'\] apply to files"):
        load("ml-100k", data_dir=tmp_path, user="uid")


def test_dataset_names() -> None:
    names = dataset_names()
    assert names[:2] == ["ml-100k", "ml-1m"]
    assert {"lastfm-360k", "synthetic", "synthetic-target", "synthetic-music",
            "synthetic-music-target"} <= set(names)


@pytest.mark.parametrize("name, flavour, domain", [
    ("synthetic", "movies", "source"), ("synthetic-target", "movies", "target"),
    ("synthetic-music", "music", "source"), ("synthetic-music-target", "music", "target"),
])
def test_synthetic_names_call_the_generator(monkeypatch: pytest.MonkeyPatch, name: str,
                                            flavour: str, domain: str) -> None:
    calls = []

    def fake_synthetic(flavour: str, seed: int, size: str = "demo") -> types.SimpleNamespace:
        calls.append((flavour, seed))
        return types.SimpleNamespace(source=f"{flavour}-source", target=f"{flavour}-target")

    module = types.ModuleType("recft.data.synthetic")
    module.synthetic = fake_synthetic
    monkeypatch.setitem(sys.modules, "recft.data.synthetic", module)
    assert load(name) == f"{flavour}-{domain}"
    assert calls == [(flavour, 0)]


def test_synthetic_names_take_an_optional_size() -> None:
    from recft.data.registry import load

    tiny = load("synthetic-target:tiny")
    assert tiny.num_users == 150  # the "tiny" preset's target users
    assert load("synthetic:tiny").num_users == 300
    with pytest.raises(DataError, match="size must be one of"):
        load("synthetic:huge")


def _imported_modules(path: Path, package: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports anywhere (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in known else node.module)
    return (found & known) - {package}


def test_recft_data_has_no_import_cycle() -> None:
    root = Path(registry.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(("recft", "data", *(parts[:-1] if parts[-1] == "__init__" else parts)))
        modules[name] = path
    graph = {name: _imported_modules(path, name, set(modules)) for name, path in modules.items()}
    assert "recft.data.releases" in graph["recft.data.movielens"]  # the walk sees imports

    def cycle_from(start: str, trail: tuple[str, ...]) -> tuple[str, ...] | None:
        for follower in graph[start]:
            if follower in trail:
                return (*trail[trail.index(follower):], follower)
            if (found := cycle_from(follower, (*trail, follower))) is not None:
                return found
        return None

    for name in graph:
        assert cycle_from(name, (name,)) is None, name

"""One entry point for every named dataset or file: ``load(name_or_path)``.

Release metadata lives in ``recft.data.releases`` (re-exported here); this module imports
the loaders, and no loader imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

from recft.data.interactions import Interactions
from recft.data.lastfm import load_lastfm
from recft.data.movielens import load_movielens
from recft.data.releases import Release, default_data_dir, releases
from recft.data.tabular import read_interactions
from recft.errors import DataError

__all__ = ["SYNTHETIC", "Release", "dataset_names", "default_data_dir", "detect_release", "load",
           "releases"]

#: The embedded synthetic datasets: name -> (flavour, domain).
SYNTHETIC = {
    "synthetic": ("movies", "source"),
    "synthetic-target": ("movies", "target"),
    "synthetic-music": ("music", "source"),
    "synthetic-music-target": ("music", "target"),
}


def dataset_names() -> list[str]:
    """Names ``load`` accepts (besides paths): releases and the synthetic datasets."""
    return [*releases(), *SYNTHETIC]


def load(
    source: str | Path,
    data_dir: str | Path | None = None,
    *,
    user: str | None = None,
    item: str | None = None,
    rating: str | None = None,
    timestamp: str | None = None,
    weight: str | None = None,
) -> Interactions:
    """Load a named dataset or the user's own file or release folder.

    Args:
        source: a release name (``ml-100k``, ``lastfm-2k``, ... see ``dataset_names()``),
            a synthetic dataset name with an optional size (``synthetic-target:tiny``;
            sizes ``tiny``, ``small``, ``demo`` (default), ``large``), a CSV/TSV/Parquet
            file, or a folder holding a release's files.
        data_dir: the cache root for named releases (default ``default_data_dir()``).
        user, item, rating, timestamp, weight: column names, for files only.

    Example::

        x = load("ml-100k")                    # <data_dir>/ml-100k/u.data ...
        y = load("clicks.csv", user="uid")     # your own file
    """
    columns = {"user": user, "item": item, "rating": rating, "timestamp": timestamp,
               "weight": weight}
    name, _, size = str(source).partition(":")
    if size and name not in SYNTHETIC:
        name = str(source)  # a path may contain ':'
    if name in SYNTHETIC or name in releases():
        given = [k for k, v in columns.items() if v is not None]
        if given:
            raise DataError(f"column options {given} apply to files, not to dataset {name!r}")
        if name in SYNTHETIC:
            from recft.data.synthetic import synthetic

            flavour, domain = SYNTHETIC[name]
            return getattr(synthetic(flavour=flavour, seed=0, size=size or "demo"), domain)
        return _load_release(name, data_dir=data_dir)
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_release(detect_release(path), path=path)
    if path.is_file():
        return read_interactions(path, **{k: v for k, v in columns.items() if v is not None})
    if path.suffix or os.sep in name or "/" in name:
        raise DataError("file or folder not found", path=path)
    raise DataError(
        f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}, "
        "or a path to a CSV/TSV/Parquet file or a release folder"
    )


def _load_release(name: str, data_dir: str | Path | None = None,
                  path: str | Path | None = None) -> Interactions:
    if name.startswith("ml-"):
        return load_movielens(name, data_dir=data_dir, path=path)
    return load_lastfm(name, data_dir=data_dir, path=path)


def detect_release(folder: Path) -> str:
    """The release a folder holds, from its file names (``u.data`` -> ml-100k, ...)."""
    lowered = folder.name.lower()
    for release in releases().values():
        if lowered in (release.name, *(n.lower() for n in release.folder_names)):
            return release.name
    present = {p.name for p in folder.iterdir()}
    for release in releases().values():
        if set(release.files) <= present:
            # ml-1m and ml-10m share ratings.dat/movies.dat; only ml-1m has users.dat
            if release.name == "ml-1m" and "users.dat" not in present:
                continue
            # the CSV releases share one format; an unnamed copy loads as ml-latest
            return "ml-latest" if release.format == "ml-csv" else release.name
    raise DataError(
        f"cannot tell which dataset this folder holds (files: {sorted(present)[:8]}); "
        "expected a MovieLens or Last.fm release, or pass a CSV/TSV/Parquet file",
        path=folder,
    )

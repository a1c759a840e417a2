"""One entry point for every named dataset or file: ``load(name_or_path)``, release metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recft.data.interactions import Interactions
from recft.errors import DataError, DatasetNotFoundError

#: The embedded synthetic datasets: name -> (flavour, domain).
SYNTHETIC = {
    "synthetic": ("movies", "source"),
    "synthetic-target": ("movies", "target"),
    "synthetic-music": ("music", "source"),
    "synthetic-music-target": ("music", "target"),
}
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Release:
    """What recft knows about one public dataset release.

    Attributes:
        name: recft's name, also the cache folder name (``ml-100k``).
        url: the official archive.
        md5: the archive's MD5 as published by its host, or None when unknown.
        sha256: the archive's SHA-256, or None when unknown.
        files: files the loader needs (relative to the release folder).
        optional_files: files used when present (tags, user profiles).
        format: parser family: ``ml-100k``, ``ml-dat``, ``ml-csv``, ``lastfm-2k``,
            ``lastfm-1k``, ``lastfm-360k``.
        folder_names: other names the archive's top folder or a manual copy may have.
        file_md5: MD5 of individual files as published in the release's readme.
    """

    name: str
    url: str
    md5: str | None
    sha256: str | None
    files: tuple[str, ...]
    optional_files: tuple[str, ...] = ()
    format: str = ""
    folder_names: tuple[str, ...] = ()
    file_md5: tuple[tuple[str, str], ...] = ()


def default_data_dir() -> Path:
    """``$RECFT_DATA_DIR`` if set, else ``<repo>/data`` (one folder per dataset)."""
    env = os.environ.get("RECFT_DATA_DIR")
    return Path(env).expanduser() if env else _REPO_ROOT / "data"


def releases() -> dict[str, Release]:
    """Every downloadable release, MovieLens then Last.fm."""
    from recft.data.lastfm import LASTFM_RELEASES
    from recft.data.movielens import MOVIELENS_RELEASES

    return {**MOVIELENS_RELEASES, **LASTFM_RELEASES}


def dataset_names() -> list[str]:
    """Names ``load`` accepts (besides paths): releases and the synthetic datasets."""
    return [*releases(), *SYNTHETIC]


def release_dir(release: Release, data_dir: str | Path | None, path: str | Path | None) -> Path:
    """The folder holding ``release``'s files: ``path`` itself, or ``<data_dir>/<name>``.

    Raises:
        DatasetNotFoundError: the folder is absent (the hint says how to fetch it).
        DataError: the folder exists but lacks a required file.
    """
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DatasetNotFoundError(f"folder for {release.name} not found", path=folder)
    else:
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        candidates = [root / n for n in (release.name, *release.folder_names)]
        folder = next((c for c in candidates if c.is_dir()), candidates[0])
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"dataset {release.name!r} not found (no such folder)",
                path=folder,
                hint=f"run `recft data download {release.name}`, or set RECFT_DATA_DIR to "
                f"the folder that holds {release.name}/",
            )
    for name in release.files:
        if not (folder / name).is_file():
            raise DataError(
                f"missing file of {release.name} (needs {', '.join(release.files)})",
                path=folder / name,
                hint=f"re-fetch it: `recft data download {release.name} --force`",
            )
    return folder


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
        from recft.data.tabular import read_interactions

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
        from recft.data.movielens import load_movielens

        return load_movielens(name, data_dir=data_dir, path=path)
    from recft.data.lastfm import load_lastfm

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

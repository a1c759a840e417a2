"""What recft knows about the public releases: names, archives, checksums, files, folders.

Loaders (``movielens``, ``lastfm``) and ``download`` import this module; ``registry``
imports the loaders. Nothing here imports a loader, so ``recft.data`` has no import cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recft.errors import DataError, DatasetNotFoundError

_REPO_ROOT = Path(__file__).resolve().parents[2]
_GROUPLENS = "https://files.grouplens.org/datasets"
_MOVIELENS = f"{_GROUPLENS}/movielens"
_MTG = "http://mtg.upf.edu/static/datasets/last.fm"
_ML_CSV_FILES = ("ratings.csv", "movies.csv")
#: The one file of lastfm-1k's listening events and of lastfm-360k's play counts.
EVENTS_1K = "userid-timestamp-artid-artname-traid-traname.tsv"
PLAYS_360K = "usersha1-artmbid-artname-plays.tsv"


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


# MD5s are the ones GroupLens publishes next to each zip (<zip>.md5); ml-latest-small's
# SHA-256 was computed from a copy of the 2018-09-26 zip whose members match the release.
# ml-32m and ml-latest: not known here (ml-latest changes over time), so None.
MOVIELENS_RELEASES: dict[str, Release] = {
    "ml-100k": Release("ml-100k", f"{_MOVIELENS}/ml-100k.zip",
                       "0e33842e24a9c977be4e0107933c0723", None, ("u.data", "u.item"),
                       ("u.user", "u.genre"), "ml-100k"),
    "ml-1m": Release("ml-1m", f"{_MOVIELENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906",
                     None, ("ratings.dat", "movies.dat"), ("users.dat",), "ml-dat"),
    "ml-10m": Release("ml-10m", f"{_MOVIELENS}/ml-10m.zip", "ce571fd55effeba0271552578f2648bd",
                      None, ("ratings.dat", "movies.dat"), ("tags.dat",), "ml-dat",
                      folder_names=("ml-10M100K",)),
    "ml-20m": Release("ml-20m", f"{_MOVIELENS}/ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3",
                      None, _ML_CSV_FILES, ("tags.csv",), "ml-csv"),
    "ml-25m": Release("ml-25m", f"{_MOVIELENS}/ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada",
                      None, _ML_CSV_FILES, ("tags.csv",), "ml-csv"),
    "ml-32m": Release("ml-32m", f"{_MOVIELENS}/ml-32m.zip", None, None, _ML_CSV_FILES,
                      ("tags.csv",), "ml-csv"),
    "ml-latest-small": Release(
        "ml-latest-small", f"{_MOVIELENS}/ml-latest-small.zip",
        "31a303aabbc519bd33d025e44d6c2570",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", _ML_CSV_FILES,
        ("tags.csv",), "ml-csv"),
    "ml-latest": Release("ml-latest", f"{_MOVIELENS}/ml-latest.zip", None, None, _ML_CSV_FILES,
                         ("tags.csv",), "ml-csv"),
}

# lastfm-2k: MD5 as used by other public loaders (not published by GroupLens next to the
# zip). lastfm-1k/360k: archive checksums unknown; the 1K readme publishes file MD5s.
LASTFM_RELEASES: dict[str, Release] = {
    "lastfm-2k": Release(
        "lastfm-2k", f"{_GROUPLENS}/hetrec2011/hetrec2011-lastfm-2k.zip",
        "296d61afe4e8632b173fc2dd3be20ce2", None, ("user_artists.dat", "artists.dat"),
        ("tags.dat", "user_taggedartists.dat"), "lastfm-2k",
        folder_names=("hetrec2011-lastfm-2k",)),
    "lastfm-1k": Release(
        "lastfm-1k", f"{_MTG}/lastfm-dataset-1K.tar.gz", None, None, (EVENTS_1K,),
        ("userid-profile.tsv",), "lastfm-1k", folder_names=("lastfm-dataset-1K",),
        file_md5=((EVENTS_1K, "64747b21563e3d2aa95751e0ddc46b68"),
                  ("userid-profile.tsv", "c53608b6b445db201098c1489ea497df"))),
    "lastfm-360k": Release(
        "lastfm-360k", f"{_MTG}/lastfm-dataset-360K.tar.gz", None, None, (PLAYS_360K,),
        ("usersha1-profile.tsv",), "lastfm-360k", folder_names=("lastfm-dataset-360K",)),
}


def releases() -> dict[str, Release]:
    """Every downloadable release, MovieLens then Last.fm."""
    return {**MOVIELENS_RELEASES, **LASTFM_RELEASES}


def default_data_dir() -> Path:
    """``$RECFT_DATA_DIR`` if set, else ``<repo>/data`` (one folder per dataset)."""
    env = os.environ.get("RECFT_DATA_DIR")
    return Path(env).expanduser() if env else _REPO_ROOT / "data"


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

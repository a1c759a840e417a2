"""Fetch a release archive with checksum verification and safe, atomic extraction.

A download streams into ``<data_dir>/.downloads/<archive>.<random>.part`` and is
checked before anything is extracted; extraction goes to a hidden staging folder that is
renamed to ``<data_dir>/<name>/`` only when every expected file is there. So at no point
does a partial download or extraction look like a complete dataset folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from recft.data.releases import Release, default_data_dir, releases
from recft.errors import DataError
from recft.io import atomic_directory

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20
_IGNORED_TOP_LEVEL = {"__MACOSX"}  # resource forks that macOS zip tools add


def download(
    name: str,
    data_dir: str | Path | None = None,
    *,
    url: str | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download and extract release ``name`` into ``<data_dir>/<name>/``.

    Args:
        name: a release name (``ml-100k``, ``lastfm-2k``, ...; see ``releases.releases()``).
        data_dir: the cache root (default ``$RECFT_DATA_DIR`` or ``<repo>/data``).
        url: a mirror of the official archive (default: the release's URL).
        md5, sha256: the expected checksum; default the release's known checksum. Without
            any, the download is accepted and its SHA-256 is logged.
        force: download again even if the folder is already complete.
        progress: show a progress bar.

    Returns:
        The dataset folder, holding the release's files directly.

    Raises:
        DataError: unknown name, network failure, checksum mismatch, corrupt or truncated
            archive, an archive member that would escape the folder, missing files.
    """
    known = releases()
    if name not in known:
        raise DataError(f"unknown dataset {name!r}; downloadable: {', '.join(known)}")
    release = known[name]
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    target = root / name
    if not force and all((target / f).is_file() for f in release.files):
        logger.info("%s is already in %s", name, target)
        return target
    source = url or release.url
    expected = _expected_checksum(release, md5, sha256)
    archive = _fetch(source, root / ".downloads", expected, progress)
    try:
        with atomic_directory(target) as staging:
            _extract(archive, staging)
            _flatten_single_folder(staging)
            _check_contents(release, staging, archive)
    finally:
        with contextlib.suppress(FileNotFoundError):
            archive.unlink()
    logger.info("%s extracted to %s", name, target)
    return target


def _expected_checksum(release: Release, md5: str | None,
                       sha256: str | None) -> tuple[str, str] | None:
    if sha256:
        return ("sha256", sha256.lower())
    if md5:
        return ("md5", md5.lower())
    if release.sha256:
        return ("sha256", release.sha256)
    if release.md5:
        return ("md5", release.md5)
    return None


def _fetch(url: str, downloads: Path, expected: tuple[str, str] | None,
           progress: bool) -> Path:
    """Stream ``url`` to a .part file, verify it, then rename it to the archive name."""
    from tqdm.auto import tqdm

    downloads.mkdir(parents=True, exist_ok=True)
    archive_name = PurePosixPath(urllib.parse.urlparse(url).path).name or "archive"
    fd, part_name = tempfile.mkstemp(dir=downloads, prefix=f"{archive_name}.", suffix=".part")
    part = Path(part_name)
    digests = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=archive_name,
                      disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    for digest in digests.values():
                        digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DataError(f"download truncated: got {received:,} of {total:,} bytes", path=url)
        if expected is not None:
            algorithm, value = expected
            actual = digests[algorithm].hexdigest()
            if actual != value:
                raise DataError(
                    f"{algorithm} checksum mismatch: expected {value}, got {actual}", path=url,
                    hint="retry the download; if it persists the mirror serves another file")
        else:
            logger.warning("%s: no published checksum; sha256 of the download is %s", url,
                           digests["sha256"].hexdigest())
        archive = downloads / archive_name
        os.replace(part, archive)
        return archive
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"download failed: {error}", path=url,
                        hint="check the network, or pass a mirror with --url") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def _extract(archive: Path, destination: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, destination)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, destination)
        else:
            raise DataError("not a zip or tar archive (corrupt or truncated download?)",
                            path=archive)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as error:
        raise DataError(f"archive is corrupt or truncated: {error}", path=archive) from None


def _safe_member_path(name: str, destination: Path, archive: Path) -> Path:
    """Where a member goes; rejects absolute paths, drive letters and ``..`` components."""
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    if (normalised.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts):
        raise DataError(f"unsafe archive member {name!r} (would escape the folder)",
                        path=archive)
    resolved = (destination / normalised).resolve()
    if not resolved.is_relative_to(destination.resolve()):
        raise DataError(f"unsafe archive member {name!r} (would escape the folder)",
                        path=archive)
    return resolved


def _extract_zip(archive: Path, destination: Path) -> None:
    with zipfile.ZipFile(archive) as bundle:
        _write_members(
            [(m.filename, m.is_dir(), not stat.S_ISLNK(m.external_attr >> 16),
              lambda m=m: bundle.open(m)) for m in bundle.infolist()],
            destination, archive)


def _extract_tar(archive: Path, destination: Path) -> None:
    with tarfile.open(archive, "r:*") as bundle:
        _write_members(
            [(m.name, m.isdir(), m.isfile() or m.isdir(), lambda m=m: bundle.extractfile(m))
             for m in bundle.getmembers()],
            destination, archive)


def _write_members(members: list[tuple[str, bool, bool, Callable[[], Any]]], destination: Path,
                   archive: Path) -> None:
    """Write ``(name, is_dir, is_plain, open)`` members, checking all of them first."""
    for name, _, plain, _ in members:  # check everything before writing anything
        _safe_member_path(name, destination, archive)
        if not plain:
            raise DataError(f"archive member {name!r} is a symbolic link, hard link or device; "
                            "releases contain only files", path=archive)
    for name, is_dir, _, open_member in members:
        path = _safe_member_path(name, destination, archive)
        if is_dir:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as source, open(path, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)


def _flatten_single_folder(staging: Path) -> None:
    """``ml-10M100K/ratings.dat`` -> ``ratings.dat``: one layout whatever the zip's folder."""
    for ignored in _IGNORED_TOP_LEVEL:
        shutil.rmtree(staging / ignored, ignore_errors=True)
    entries = list(staging.iterdir())
    if len(entries) != 1 or not entries[0].is_dir():
        return
    inner = entries[0].rename(staging / ".recft-unpack")
    for child in inner.iterdir():
        child.rename(staging / child.name)
    inner.rmdir()


def _check_contents(release: Release, folder: Path, archive: Path) -> None:
    missing = [f for f in release.files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"archive lacks {missing} needed by {release.name}", path=archive)
    for name, expected in release.file_md5:
        path = folder / name
        if not path.is_file():
            continue
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise DataError(f"md5 {digest.hexdigest()} differs from the release's {expected}",
                            path=name)

"""Atomic file and directory writes: a crash never leaves a half-written artifact behind.

A directory ``NAME`` is built in a private sibling ``.NAME.<pid>@<host>.<random>.tmp`` and
then swapped in. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so ``NAME``
is a complete directory, old or new, at every instant. Where the kernel or filesystem lacks
it, the old directory is first renamed to ``.NAME.old-<pid>@<host>.<random>``; if the
process dies before the new one is renamed in, ``recover_directory`` (called by the next
save and by loaders) moves the old one back. Leftovers of interrupted saves are removed by
the next save once the process that wrote them is no longer running.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from recft.locks import host_name, owner_is_running

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# the kernel or filesystem cannot exchange: fall back to two renames
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a private staging directory; on success it replaces ``path`` atomically.

    ``path`` names a complete directory (the old one or the new one) at every instant, or,
    where directories cannot be exchanged atomically, the old one is restored by the next
    save or load (:func:`recover_directory`). An exception in the block leaves ``path``
    untouched. Leftovers of earlier interrupted saves whose writer has exited are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    remove_leftovers(path)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{_owner()}.",
                                    suffix=".tmp"))
    try:
        yield staging
        _install(staging, path)
    except BaseException:
        _remove(staging)
        raise


def recover_directory(path: str | Path) -> bool:
    """Move a directory back to ``path`` if a save that had moved it aside was killed.

    Only applies where ``path`` is missing and a ``.NAME.old-...`` sibling of a writer that
    is no longer running exists; the newest such copy is restored.

    Returns:
        Whether a directory was restored.
    """
    path = Path(path)
    if os.path.lexists(path) or not path.parent.is_dir():
        return False
    backups = [entry for entry, kind in _leftovers(path) if kind == "old"]
    for backup in sorted(backups, key=_mtime, reverse=True):
        try:
            os.rename(backup, path)
        except OSError:
            continue  # ``path`` reappeared or the copy went away: nothing to restore
        return True
    return False


def remove_leftovers(path: str | Path) -> list[Path]:
    """Delete staging and moved-aside copies of ``path`` left by saves that were killed.

    A leftover is removed only when the process that made it is no longer running (on
    this host: leftovers of other hosts are kept), so a save in progress is never touched.

    Returns:
        The removed paths.
    """
    path = Path(path)
    removed = []
    for entry, kind in _leftovers(path):
        if kind == "old" and not os.path.lexists(path):
            continue  # the only copy there is: recover_directory restores it, never delete
        removed.append(entry)
        if kind == "old":
            _discard(entry, path)
        else:
            _remove(entry)
    return removed


def _install(staging: Path, path: Path) -> None:
    if not os.path.lexists(path):
        try:
            os.rename(staging, path)
            return
        except OSError as error:  # another writer got there first: replace its directory
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if _exchange(staging, path):
        _remove(staging)  # now holds the old directory
        return
    backup = path.with_name(f".{path.name}.old-{_owner()}.{os.urandom(4).hex()}")
    os.rename(path, backup)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(backup, path)  # the new one could not go in: the old one goes back
        raise
    _discard(backup, path)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where that is unsupported."""
    rename = _renameat2()
    if rename is None:
        return False
    if rename(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
              _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(second))


_RENAMEAT2: list = []


def _renameat2():
    if not _RENAMEAT2:
        function = None
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                function = ctypes.CDLL(None, use_errno=True).renameat2
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
        _RENAMEAT2.append(function)
    return _RENAMEAT2[0]


def _owner() -> str:
    return f"{os.getpid()}@{host_name()}"


# .NAME.<pid>@<host>.<random>.tmp: staging, or an old directory being deleted;
# .NAME.old-<pid>[@<host>][.<random>]: moved aside (bare .old-<pid>: earlier recft versions)
_STAGING = r"(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp"
_OLD = r"old-(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9-]+))?(?:\.[^.]+)?"


def _leftovers(path: Path) -> list[tuple[Path, str]]:
    """(sibling, "tmp" | "old") for each leftover of ``path`` whose writer has exited."""
    prefix = f".{path.name}."
    patterns = {"tmp": re.compile(_STAGING), "old": re.compile(_OLD)}
    try:
        names = [name for name in os.listdir(path.parent) if name.startswith(prefix)]
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        for kind, pattern in patterns.items():
            match = pattern.fullmatch(name[len(prefix):])
            if match is None:
                continue
            entry = path.with_name(name)
            # a staging folder is younger than its writer, so a process that started after
            # it was last written is a reused pid; a moved-aside folder keeps its old times
            since = _mtime(entry) if kind == "tmp" else None
            if not owner_is_running(int(match["pid"]), match["host"], since=since):
                found.append((entry, kind))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def _discard(entry: Path, path: Path) -> None:
    """Delete a moved-aside copy under a staging-style name, so that a kill halfway leaves a
    folder the next save deletes, never a partial copy that recover_directory would restore."""
    trash = path.with_name(f".{path.name}.{_owner()}.{os.urandom(4).hex()}.tmp")
    try:
        os.rename(entry, trash)
    except OSError:
        return  # already deleted by another cleaner
    _remove(trash)

"""One writer per output: an advisory lock beside each output path, held while a command runs.

The lock is ``flock`` on ``.NAME.lock`` next to the output. The kernel releases it when its
holder exits, even by ``kill -9``, so a lock left behind by a dead process is simply taken
over; the file only records who holds it (pid, host, start time) for the error message.
Where ``flock`` is unavailable (some network filesystems) the record alone decides, as a
best effort (two writers starting within the same millisecond could both pass): a holder
whose process is gone is stale and its lock is broken.

Also here: whether the process that left a file behind is still running, which
``recft.io`` uses to clean up after interrupted saves.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from recft.errors import RecftError

try:
    import fcntl
except ImportError:  # Windows: the record-only fallback below
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# a process that started this long after a leftover was last written cannot have written it
# (/proc start times are exact to a tick, boot time to a second)
_START_SLACK_S = 2.0


class OutputLockedError(RecftError):
    """Another process is writing the same output (the message names its pid)."""


def host_name() -> str:
    """This machine's name, reduced to letters, digits and dashes (safe inside file names)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    # field 22 (starttime, clock ticks after boot) follows the parenthesised command name
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None


def owner_is_running(pid: int, host: str | None = None, since: float | None = None) -> bool:
    """Whether the process ``pid`` on ``host`` that was alive at time ``since`` still runs.

    A process on another host cannot be checked and counts as running. ``since`` guards
    against pid reuse: a process that started after it is a different one.
    """
    if host is not None and host != host_name():
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return True
    if since is not None:
        started = process_start_time(pid)
        if started is not None and started > since + _START_SLACK_S:
            return False
    return True


@contextlib.contextmanager
def output_lock(path: str | Path) -> Iterator[Path]:
    """Hold the lock of output ``path`` (``.NAME.lock`` beside it) for the ``with`` block.

    Raises:
        OutputLockedError: another process holds it; the message names its pid and host.
    """
    path = Path(path)
    lock_path = path.with_name(f".{path.name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _acquire(path, lock_path)
    try:
        yield lock_path
    finally:
        # unlink while still holding it: a waiter that opened this file then sees that the
        # path no longer names it, and retries on a fresh file (see _acquire)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(descriptor)


def locks_outputs(*flags: str, resume: bool = False) -> Callable[[Callable[..., Any]],
                                                                    Callable[..., Any]]:
    """Decorate a CLI handler: lock the paths of ``args.<flag>`` (and ``<out>.resume`` with
    ``resume``) for its whole run, so a second writer of the same output exits at once."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def locked(args: Any) -> Any:
            paths = [Path(value) for value in (getattr(args, flag) for flag in flags) if value]
            if resume:
                paths += [out.with_name(out.name + ".resume") for out in paths[:1]]
            with contextlib.ExitStack() as stack:
                for output in paths:
                    stack.enter_context(output_lock(output))
                return handler(args)

        return locked

    return decorate


def _acquire(path: Path, lock_path: Path) -> int:
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            held = _try_flock(descriptor)
            previous = _read_record(descriptor)
            if held is None:  # no flock here: the record decides
                held = previous is None or not _record_is_live(previous)
            if not held:
                raise OutputLockedError(_locked_message(path, previous))
            if not _names_same_file(descriptor, lock_path):
                os.close(descriptor)  # released and removed while we waited: take a fresh one
                continue
            if previous and previous.get("pid") != os.getpid():
                logger.info("%s: took over the lock left by pid %s on %s (no longer running)",
                            path, previous.get("pid"), previous.get("host"))
            _write_record(descriptor)
            return descriptor
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(descriptor)
            raise


def _try_flock(descriptor: int) -> bool | None:
    """True: locked; False: someone else holds it; None: flock unsupported here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise
    return True


def _names_same_file(descriptor: int, lock_path: Path) -> bool:
    try:
        on_disk = os.stat(lock_path)
    except FileNotFoundError:
        return False
    mine = os.fstat(descriptor)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read_record(descriptor: int) -> dict[str, Any] | None:
    try:
        text = os.pread(descriptor, 4096, 0).decode("utf-8")
        record = json.loads(text) if text.strip() else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _write_record(descriptor: int) -> None:
    record = {"pid": os.getpid(), "host": host_name(), "started": time.time(),
              "process_started": process_start_time(os.getpid())}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, (json.dumps(record) + "\n").encode("utf-8"), 0)
    os.fsync(descriptor)


def _record_is_live(record: dict[str, Any]) -> bool:
    since = record.get("started")
    return owner_is_running(record["pid"], record.get("host"),
                            float(since) if isinstance(since, (int, float)) else None)


def _locked_message(path: Path, record: dict[str, Any] | None) -> str:
    if record is None:
        holder = "another process (its record is not written yet)"
    else:
        started = record.get("started")
        when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started))
                if isinstance(started, (int, float)) else "")
        holder = f"pid {record['pid']} on {record.get('host', '?')}{when}"
    return (f"{path} is being written by {holder}; wait for it to finish, stop it, or "
            "write to another path (one writer per output)")

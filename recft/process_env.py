"""Environment variables set for a child process (a torchrun worker, a notebook kernel) and
put back afterwards, so a long-lived Python session is left as it was found."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator


@contextlib.contextmanager
def restored_environment(keys: Iterable[str]) -> Iterator[None]:
    """On exit, each of ``keys`` has its value from entry again, or is unset if it was."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

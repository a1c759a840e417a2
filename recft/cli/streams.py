"""What a ``recft`` command writes where: results on stdout, recft's messages on stderr,
and its libraries' chatter nowhere unless ``--verbose``.

Where the noise comes from (checked on fbgemm-gpu-cpu 1.8.0, torchrec 1.8.0, torch 2.13):
fbgemm_gpu logs ``Successfully loaded: '<lib>.so'`` once per native library (14 at
import) and ``[TBE=<uuid>] ...`` for every embedding kernel it builds, all through
``logging.info`` on the *root* logger, so they appeared as soon as the CLI set the root
logger to INFO. torch, torchrec and fbgemm also raise Python warnings. Importing them with
logging unconfigured writes nothing to file descriptor 2, so no file-descriptor
redirection is needed: the logging and warnings machinery filters all of it, and
``--verbose`` shows it again (root logger at DEBUG, warnings untouched).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

# A warning attributed to any module outside the recft package (regex on the module name).
_NOT_RECFT = r"(?!recft(\.|$))"

_result_streams: list[TextIO] = []


@contextlib.contextmanager
def command_streams(*, verbose: bool, quiet: bool, json_stdout: bool) -> Iterator[None]:
    """Configure logging and warnings for one command, and restore them afterwards (tests
    call ``main`` many times in one process).

    recft's loggers log at INFO (DEBUG with ``verbose``, WARNING with ``quiet``); every other
    logger only at ERROR unless ``verbose``. Warnings raised outside recft are ignored unless
    ``verbose`` or the user chose warning filters (``-W``, ``PYTHONWARNINGS``). With
    ``json_stdout``, stdout carries the JSON result alone (see ``result_stream``).
    """
    root, recft_logger = logging.getLogger(), logging.getLogger("recft")
    saved_levels = root.level, recft_logger.level
    handler = None
    if not root.handlers:  # as logging.basicConfig: an embedding program's handlers win
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.ERROR)
    recft_logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    try:
        with warnings.catch_warnings():
            if not verbose and not sys.warnoptions:
                warnings.filterwarnings("ignore", module=_NOT_RECFT)
            with results_only_on_stdout() if json_stdout else contextlib.nullcontext():
                yield
    finally:
        root.setLevel(saved_levels[0])
        recft_logger.setLevel(saved_levels[1])
        if handler is not None:
            root.removeHandler(handler)


@contextlib.contextmanager
def results_only_on_stdout() -> Iterator[None]:
    """Send everything printed to stdout to stderr, except what goes to ``result_stream()``:
    a per-epoch line or a parameter table printed by library code cannot corrupt the
    JSON a script parses."""
    _result_streams.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _result_streams.pop()


def result_stream() -> TextIO:
    """Where a command's result goes: the real stdout, even inside ``results_only_on_stdout``."""
    return _result_streams[-1] if _result_streams else sys.stdout

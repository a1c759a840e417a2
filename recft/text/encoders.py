"""The TextEncoder interface, the named encoders, and the batching both implementations share.

An encoder turns strings into L2-normalised float32 rows. An empty (or all-blank) string is
"no text": it always encodes to the zero vector, so a dot product with it is 0 and a model
can tell it apart from any real text (every real text has norm 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from recft.errors import RecftError

#: Names accepted by ``text_encoder``; aliases map to the canonical name.
PRETRAINED_NAME = "all-MiniLM-L6-v2"
TFIDF_NAME = "tfidf"
_ALIASES = {"minilm": PRETRAINED_NAME, PRETRAINED_NAME.lower(): PRETRAINED_NAME,
            TFIDF_NAME: TFIDF_NAME, "tfidf-svd": TFIDF_NAME}


class EncoderNotAvailableError(RecftError, ImportError):
    """A text encoder's package or weights are not installed (the message says how)."""


@runtime_checkable
class TextEncoder(Protocol):
    """What every text encoder offers.

    Attributes:
        name: the encoder's stable name (``"all-MiniLM-L6-v2"``, ``"tfidf"``).
        version: changes whenever the same text could encode differently (weights
            release, fitted vocabulary); caches and checkpoints key on ``name`` + ``version``.
        dim: width of every vector ``encode`` returns.
    """

    name: str
    version: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 rows of norm 1, or 0 for an empty text."""
        ...


def has_text(texts: Sequence[str]) -> np.ndarray:
    """(N,) bool: which texts are not empty or blank (the others encode to zero)."""
    return np.fromiter((bool(t and t.strip()) for t in texts), dtype=bool, count=len(texts))


def encode_in_batches(texts: Sequence[str], encode_batch: Callable[[list[str]], np.ndarray],
                      dim: int, batch_size: int, progress: bool, desc: str) -> np.ndarray:
    """Encode the non-empty texts in batches of similar length; empty texts get zero rows.

    Sorting by length first means a batch pads to about its own length instead of the
    longest text's (a transformer's cost grows with the padded length). The order of
    the returned rows is the order of ``texts``.
    """
    if batch_size < 1:
        raise RecftError(f"batch_size must be at least 1, got {batch_size}")
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows = np.flatnonzero(has_text(texts))
    rows = rows[np.argsort([len(texts[r]) for r in rows], kind="stable")]
    from tqdm.auto import tqdm

    with tqdm(total=len(rows), desc=desc, unit="text", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            vectors = np.asarray(encode_batch([texts[r] for r in batch]), dtype=np.float32)
            out[batch] = normalize_rows(vectors)
            bar.update(len(batch))
    return out


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1; an all-zero row (no known word) stays zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def text_encoder(name: str, fit_texts: Sequence[str] | None = None,
                 **options: object) -> TextEncoder:
    """The encoder called ``name``.

    Args:
        name: ``"all-MiniLM-L6-v2"`` (alias ``"minilm"``): the pretrained sentence encoder;
            ``"tfidf"``: TF-IDF + truncated SVD, fitted on ``fit_texts``.
        fit_texts: the catalog's texts (required by ``"tfidf"``, ignored otherwise).
        options: passed to the encoder (``dim``/``seed`` for tfidf, ``device`` for minilm).

    Raises:
        EncoderNotAvailableError: the encoder's package or weights are not installed.
        RecftError: unknown name, or ``"tfidf"`` without ``fit_texts``.
    """
    canonical = _ALIASES.get(name.lower())
    if canonical is None:
        raise RecftError(f"unknown text encoder {name!r}; valid: {PRETRAINED_NAME}, "
                         f"{TFIDF_NAME} (aliases: minilm, tfidf-svd)")
    if canonical == TFIDF_NAME:
        if fit_texts is None:
            raise RecftError("the tfidf text encoder is fitted on the catalog: pass fit_texts")
        from recft.text.tfidf import TfidfEncoder

        return TfidfEncoder.fit(fit_texts, **options)  # type: ignore[arg-type]
    from recft.text.pretrained import SentenceEncoder

    return SentenceEncoder(**options)  # type: ignore[arg-type]

"""Encode texts once: vectors cached on disk, keyed by the encoder and a checksum of the texts.

A cache file is ``<cache dir>/<encoder name>-<key>.safetensors`` holding one float32
tensor ``vectors`` and, as metadata, the encoder's name and version and the texts'
checksum. The key hashes all three, so a new encoder release, a refitted TF-IDF or one
changed text is a miss; a hit skips the encoder (and never even loads its weights).
Files are written atomically; an unreadable or inconsistent file is re-encoded and
replaced, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from recft.io import atomic_write_bytes
from recft.text.encoders import TextEncoder
from recft.text.item_text import ItemTexts

CACHE_DIR_ENV = "RECFT_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$RECFT_CACHE_DIR/text``, else ``$XDG_CACHE_HOME/recft/text`` (``~/.cache``)."""
    root = os.environ.get(CACHE_DIR_ENV)
    if root:
        return Path(root) / "text"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "recft" / "text"


def texts_checksum(texts: Sequence[str]) -> str:
    """sha256 of the texts in order (a JSON list, so no two lists share a checksum)."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def cache_path(encoder: TextEncoder, texts: Sequence[str],
               cache_dir: str | Path | None = None) -> Path:
    """Where ``encode_cached`` keeps the vectors of ``texts`` under ``encoder``."""
    key = hashlib.sha256(
        f"{encoder.name}\n{encoder.version}\n{texts_checksum(texts)}".encode()).hexdigest()
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder.name)
    return Path(cache_dir or default_cache_dir()) / f"{safe_name}-{key[:24]}.safetensors"


def encode_cached(encoder: TextEncoder, texts: ItemTexts | Sequence[str],
                  cache_dir: str | Path | None = None, batch_size: int = 64,
                  progress: bool = True) -> np.ndarray:
    """``encoder.encode(texts)``, read from the cache when these exact texts were encoded.

    Args:
        encoder: any TextEncoder.
        texts: ItemTexts or strings; empty texts give zero rows.
        cache_dir: folder of cache files (default ``default_cache_dir()``).
        batch_size, progress: passed to the encoder on a miss.

    Returns:
        (len(texts), encoder.dim) float32 vectors.
    """
    texts = list(texts.texts) if isinstance(texts, ItemTexts) else list(texts)
    path = cache_path(encoder, texts, cache_dir)
    if path.is_file():
        cached = _read(path, encoder, texts)
        if cached is not None:
            return cached
    vectors = np.ascontiguousarray(
        encoder.encode(texts, batch_size=batch_size, progress=progress), dtype=np.float32)
    metadata = {"encoder": encoder.name, "version": encoder.version,
                "texts_sha256": texts_checksum(texts), "count": str(len(texts))}
    atomic_write_bytes(path, save_tensors({"vectors": vectors}, metadata=metadata))
    return vectors


def _read(path: Path, encoder: TextEncoder, texts: list[str]) -> np.ndarray | None:
    """The cached vectors, or None (with a warning) when the file cannot be trusted."""
    try:
        data = path.read_bytes()
        vectors = load_tensors(data)["vectors"]
        metadata = _metadata(data)
        expected = {"encoder": encoder.name, "version": encoder.version,
                    "texts_sha256": texts_checksum(texts)}
        wrong = [k for k, v in expected.items() if metadata.get(k) != v]
        if wrong:
            raise ValueError(f"metadata {wrong} do not match")
        if vectors.dtype != np.float32 or vectors.shape != (len(texts), encoder.dim):
            raise ValueError(f"{vectors.dtype} {vectors.shape}, expected float32 "
                             f"{(len(texts), encoder.dim)}")
        if not np.isfinite(vectors).all():
            raise ValueError("non-finite values")
    except Exception as error:  # any unreadable file is recomputed, never trusted
        warnings.warn(f"{path}: corrupt text-encoding cache ({type(error).__name__}: "
                      f"{error}); encoding again", stacklevel=3)
        return None
    return vectors


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file: an 8-byte length, then a JSON header."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    return dict(header.get("__metadata__") or {})

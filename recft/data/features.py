"""Side features of users or items: multi-valued categorical features and display attributes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recft.data.vocabulary import Vocabulary
from recft.errors import DataError


@dataclass(frozen=True, eq=False)
class CategoricalFeature:
    """A multi-valued categorical feature in jagged (CSR) form, one list per entity row.

    Entity ``r`` has values ``values[offsets[r]:offsets[r + 1]]``, which are rows into
    ``vocab`` (e.g. genre names). Single-valued features (artist, year bucket) are lists of
    length one. This is exactly what a torchrec ``KeyedJaggedTensor`` wants.

    Example::

        genres = CategoricalFeature.from_lists([["Drama"], [], ["Comedy", "Drama"]])
        assert genres.lengths().tolist() == [1, 0, 2]
    """

    offsets: np.ndarray
    values: np.ndarray
    vocab: Vocabulary
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
            raise DataError("feature offsets must be 1-D and start at 0")
        if self.offsets[-1] != len(self.values) or np.any(np.diff(self.offsets) < 0):
            raise DataError("feature offsets must be non-decreasing and end at len(values)")
        if len(self.values) and (self.values.min() < 0 or self.values.max() >= len(self.vocab)):
            raise DataError("feature values out of the feature vocabulary's range")
        if self.weights is not None and len(self.weights) != len(self.values):
            raise DataError("feature weights must align with values")

    @classmethod
    def from_lists(
        cls,
        lists: Sequence[Sequence[Any]],
        vocab: Vocabulary | None = None,
        weights: Sequence[Sequence[float]] | None = None,
        name: str = "feature",
    ) -> CategoricalFeature:
        lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [v for values in lists for v in values]
        if vocab is None:
            vocab = Vocabulary.from_values(flat, name=name)
        rows = vocab.encode(flat) if flat else np.zeros(0, dtype=np.int64)
        flat_weights = None
        if weights is not None:
            flat_weights = np.asarray([w for ws in weights for w in ws], dtype=np.float32)
        return cls(offsets, rows, vocab, flat_weights)

    @property
    def num_entities(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Vectorised lookup for a batch of entity rows: ``(lengths, values, weights)``."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        total = int(lengths.sum())
        # position of every output element inside the flat values array
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        index = np.repeat(starts, lengths) + within
        weights = self.weights[index] if self.weights is not None else None
        return lengths, self.values[index], weights

    def as_lists(self, rows: np.ndarray | None = None) -> list[list[Any]]:
        rows = np.arange(self.num_entities) if rows is None else np.asarray(rows)
        return [
            self.vocab.decode(self.values[self.offsets[r] : self.offsets[r + 1]]).tolist()
            for r in rows
        ]

    def coverage(self) -> float:
        """Share of entities with at least one value."""
        return float((self.lengths() > 0).mean()) if self.num_entities else 0.0

    def take(self, rows: np.ndarray) -> CategoricalFeature:
        """The feature for a reordered or grown set of entity rows (row -1 gets no values)."""
        rows = np.asarray(rows, dtype=np.int64)
        safe = np.where(rows < 0, 0, rows)
        gathered_lengths, values, weights = self.gather(safe)
        keep = np.repeat(rows >= 0, gathered_lengths)
        lengths = np.where(rows < 0, 0, gathered_lengths)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return CategoricalFeature(
            offsets, values[keep], self.vocab, None if weights is None else weights[keep]
        )


@dataclass(frozen=True, eq=False)
class EntityFeatures:
    """All side information of one entity type (users or items), aligned to vocabulary rows.

    Attributes:
        categorical: model-ready multi-valued features (genres, tags, artist, year bucket).
        attributes: display columns (title, year, name), one row per vocabulary row.
    """

    categorical: dict[str, CategoricalFeature] = field(default_factory=dict)
    attributes: pd.DataFrame | None = None

    def num_entities(self) -> int | None:
        for feature in self.categorical.values():
            return feature.num_entities
        return None if self.attributes is None else len(self.attributes)

    def check_size(self, size: int, what: str) -> None:
        for name, feature in self.categorical.items():
            if feature.num_entities != size:
                raise DataError(
                    f"{what} feature {name!r} has {feature.num_entities} rows, "
                    f"the {what} vocabulary has {size}"
                )
        if self.attributes is not None and len(self.attributes) != size:
            raise DataError(
                f"{what} attributes have {len(self.attributes)} rows, vocabulary has {size}"
            )

    def take(self, rows: np.ndarray) -> EntityFeatures:
        """Features for another row order (e.g. a grown vocabulary; -1 = no features)."""
        rows = np.asarray(rows, dtype=np.int64)
        attributes = None
        if self.attributes is not None:
            attributes = self.attributes.iloc[np.where(rows < 0, 0, rows)].reset_index(drop=True)
            if (rows < 0).any():  # pandas upcasts ints even for an all-False mask
                attributes.loc[rows < 0, :] = None
        return EntityFeatures(
            {name: f.take(rows) for name, f in self.categorical.items()}, attributes
        )

    def describe(self) -> str:
        parts = [f"{n}({len(f.vocab)})" for n, f in self.categorical.items()]
        if self.attributes is not None:
            parts += [c for c in self.attributes.columns if c not in self.categorical]
        return ", ".join(parts)

"""Interactions: the one data type every recft stage speaks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recft.data._time import iso_date
from recft.data.features import EntityFeatures
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

FEEDBACK_KINDS = ("explicit", "count", "implicit")


@dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions with optional ratings, weights, timestamps and side features.

    Ids are stored as rows of ``user_vocab`` / ``item_vocab``; the vocabularies are the
    catalogs (an item with metadata but no rating still has a row), shared by every split
    of the same dataset so rows mean the same thing in train, valid and test.

    Attributes:
        user_ids: (N,) int64 rows into ``user_vocab``.
        item_ids: (N,) int64 rows into ``item_vocab``.
        ratings: (N,) float32 observed value (star rating or play count), or None.
        weights: (N,) float32 sample weights for training, or None (all ones).
        timestamps: (N,) int64 Unix seconds, or None.
        feedback: ``"explicit"`` (ratings), ``"count"`` (play counts) or ``"implicit"``.

    Example::

        x = Interactions.from_raw(["u1", "u1", "u2"], [10, 20, 10], ratings=[5, 3, 4])
        assert (len(x), x.num_users, x.num_items) == (3, 2, 2)
        x.to_csr().toarray()   # 2 x 2 user-item matrix
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    ratings: np.ndarray | None = None
    weights: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    item_features: EntityFeatures | None = None
    user_features: EntityFeatures | None = None
    feedback: str = "implicit"
    name: str = ""

    def __post_init__(self) -> None:
        n = len(self.user_ids)
        if len(self.item_ids) != n:
            raise DataError(f"user_ids has {n} entries but item_ids has {len(self.item_ids)}")
        for label, column in (("ratings", self.ratings), ("weights", self.weights),
                              ("timestamps", self.timestamps)):
            if column is not None and len(column) != n:
                raise DataError(f"{label} has {len(column)} entries, expected {n}", field=label)
        for label, column in (("ratings", self.ratings), ("weights", self.weights)):
            if column is not None and column.size and not np.all(np.isfinite(column)):
                bad = int(np.flatnonzero(~np.isfinite(column))[0])
                raise DataError(f"NaN or infinite value at interaction {bad}", field=label)
        for label, rows, vocab in (("user_ids", self.user_ids, self.user_vocab),
                                   ("item_ids", self.item_ids, self.item_vocab)):
            if n and (rows.min() < 0 or rows.max() >= len(vocab)):
                raise DataError(f"rows outside the vocabulary [0, {len(vocab)})", field=label)
        if self.feedback not in FEEDBACK_KINDS:
            raise DataError(f"feedback must be one of {FEEDBACK_KINDS}, got {self.feedback!r}")
        if self.item_features is not None:
            self.item_features.check_size(len(self.item_vocab), "item")
        if self.user_features is not None:
            self.user_features.check_size(len(self.user_vocab), "user")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_raw(
        cls,
        users: Sequence[Any] | np.ndarray,
        items: Sequence[Any] | np.ndarray,
        ratings: Sequence[float] | np.ndarray | None = None,
        timestamps: Sequence[int] | np.ndarray | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        *,
        user_vocab: Vocabulary | None = None,
        item_vocab: Vocabulary | None = None,
        item_features: EntityFeatures | None = None,
        user_features: EntityFeatures | None = None,
        feedback: str | None = None,
        name: str = "",
    ) -> Interactions:
        """Build from raw ids; vocabularies are created (sorted) unless given.

        A given vocabulary is a catalog: raw ids not in it raise a DataError naming them.
        """
        users = np.asarray(users)
        items = np.asarray(items)
        user_vocab = user_vocab or Vocabulary.from_values(users, name="user")
        item_vocab = item_vocab or Vocabulary.from_values(items, name="item")
        if feedback is None:
            feedback = "explicit" if ratings is not None else "implicit"
        return cls(
            user_ids=user_vocab.encode(users),
            item_ids=item_vocab.encode(items),
            user_vocab=user_vocab,
            item_vocab=item_vocab,
            ratings=None if ratings is None else np.asarray(ratings, dtype=np.float32),
            weights=None if weights is None else np.asarray(weights, dtype=np.float32),
            timestamps=None if timestamps is None else np.asarray(timestamps, dtype=np.int64),
            item_features=item_features,
            user_features=user_features,
            feedback=feedback,
            name=name,
        )

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def num_users(self) -> int:
        """Distinct users that occur in these interactions."""
        return int(np.count_nonzero(self.user_activity()))  # O(N), no sort

    @property
    def num_items(self) -> int:
        """Distinct items that occur in these interactions (``catalog_size`` counts all)."""
        return int(np.count_nonzero(self.item_popularity()))

    @property
    def catalog_size(self) -> int:
        """Items in the item vocabulary, including those nobody interacted with."""
        return len(self.item_vocab)

    @property
    def user_vocab_size(self) -> int:
        return len(self.user_vocab)

    @property
    def density(self) -> float:
        cells = self.num_users * self.num_items
        return len(self) / cells if cells else 0.0

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        parts = [
            f"{len(self):,} interactions",
            f"{self.num_users:,} users",
            f"{self.num_items:,} items (catalog {self.catalog_size:,})",
            f"feedback={self.feedback}",
        ]
        if self.ratings is not None and len(self):
            parts.append(f"ratings {self.ratings.min():g}..{self.ratings.max():g}")
        if self.timestamps is not None and len(self):
            start, end = iso_date(self.timestamps.min()), iso_date(self.timestamps.max())
            parts.append(f"time {start}..{end}")
        if self.item_features is not None and self.item_features.describe():
            parts.append(f"item features: {self.item_features.describe()}")
        if self.user_features is not None and self.user_features.describe():
            parts.append(f"user features: {self.user_features.describe()}")
        return f"<Interactions{label}: " + "; ".join(parts) + ">"

    # ------------------------------------------------------------------ derived views
    def subset(self, index: np.ndarray) -> Interactions:
        """The interactions at ``index`` (bool mask or positions); vocabularies are shared."""
        index = np.asarray(index)
        if index.dtype == bool and len(index) != len(self):
            raise DataError(f"mask has {len(index)} entries, expected {len(self)}")

        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[index]

        return dataclasses.replace(
            self,
            user_ids=self.user_ids[index],
            item_ids=self.item_ids[index],
            ratings=pick(self.ratings),
            weights=pick(self.weights),
            timestamps=pick(self.timestamps),
        )

    def replace(self, **changes: Any) -> Interactions:
        return dataclasses.replace(self, **changes)

    def concat(self, *others: Interactions) -> Interactions:
        """Append interactions that share this object's vocabularies."""
        parts = [self, *others]
        for other in others:
            if other.user_vocab is not self.user_vocab and other.user_vocab != self.user_vocab:
                raise DataError("cannot concatenate interactions with different user vocabularies")
            if other.item_vocab is not self.item_vocab and other.item_vocab != self.item_vocab:
                raise DataError("cannot concatenate interactions with different item vocabularies")

        def join(attr: str) -> np.ndarray | None:
            columns = [getattr(p, attr) for p in parts]
            if all(c is None for c in columns):
                return None
            if any(c is None for c in columns):
                raise DataError(f"cannot concatenate: {attr} present in some parts only")
            return np.concatenate(columns)

        return dataclasses.replace(
            self,
            user_ids=np.concatenate([p.user_ids for p in parts]),
            item_ids=np.concatenate([p.item_ids for p in parts]),
            ratings=join("ratings"),
            weights=join("weights"),
            timestamps=join("timestamps"),
        )

    def sample_weights(self) -> np.ndarray:
        return self.weights if self.weights is not None else np.ones(len(self), np.float32)

    def item_popularity(self) -> np.ndarray:
        """(catalog_size,) interaction counts per item row."""
        return np.bincount(self.item_ids, minlength=self.catalog_size)

    def user_activity(self) -> np.ndarray:
        """(user_vocab_size,) interaction counts per user row."""
        return np.bincount(self.user_ids, minlength=self.user_vocab_size)

    # ------------------------------------------------------------------ conversions
    def to_pandas(self, raw_ids: bool = True) -> pd.DataFrame:
        """Columns ``user_id``, ``item_id`` (raw ids unless ``raw_ids=False``), and
        ``rating``, ``weight``, ``timestamp`` where present."""
        frame = pd.DataFrame(
            {
                "user_id": self.user_vocab.decode(self.user_ids) if raw_ids else self.user_ids,
                "item_id": self.item_vocab.decode(self.item_ids) if raw_ids else self.item_ids,
            }
        )
        if self.ratings is not None:
            frame["rating"] = self.ratings
        if self.weights is not None:
            frame["weight"] = self.weights
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return frame

    def to_csr(self, values: str = "ones") -> sp.csr_matrix:
        """The (user_vocab_size x catalog_size) matrix; duplicate pairs are summed.

        Args:
            values: ``"ones"`` (binary-ish counts), ``"rating"`` or ``"weight"``.
        """
        if values == "ones":
            data = np.ones(len(self), dtype=np.float32)
        elif values == "rating":
            if self.ratings is None:
                raise DataError(f"{self.name or 'interactions'} have no ratings", field="rating")
            data = self.ratings
        elif values == "weight":
            data = self.sample_weights()
        else:
            raise ValueError(f"values must be 'ones', 'rating' or 'weight', got {values!r}")
        matrix = sp.csr_matrix(
            (data, (self.user_ids, self.item_ids)),
            shape=(self.user_vocab_size, self.catalog_size),
        )
        matrix.sum_duplicates()
        return matrix

    def user_item_sets(self) -> sp.csr_matrix:
        """Binary user x item matrix of who interacted with what (for seen-item exclusion)."""
        matrix = self.to_csr("ones")
        matrix.data[:] = 1.0
        return matrix

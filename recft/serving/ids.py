"""Raw ids at the serving boundary: type coercion, unknown-id warnings, item allow-lists."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any, Union

import numpy as np

from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

ItemFilter = Union[Iterable[Any], Callable[[np.ndarray], Any]]
"""An allow-list of raw item ids, or a callable ``(raw item ids (I,)) -> bool mask (I,)``."""


class ServingWarning(UserWarning):
    """Something was served in a degraded way (unknown items ignored, fallback lists)."""


def coerce_ids(values: Any, vocab: Vocabulary) -> np.ndarray:
    """Raw ids cast to ``vocab``'s id type (``"42"`` from a CSV -> 42 for an integer vocabulary).

    Ids that cannot be cast stay as they are: they are then simply unknown to ``vocab``.
    """
    array = np.asarray(values if isinstance(values, np.ndarray) else list(values))
    if vocab.is_integer:
        if array.dtype.kind in "iu":
            return array.astype(np.int64)
        try:
            return array.astype(np.int64)
        except (ValueError, TypeError, OverflowError):
            return np.asarray([str(v) for v in array.tolist()], dtype=object)
    return np.asarray([str(v) for v in array.tolist()], dtype=object)


def known_items(items: Iterable[Any], vocab: Vocabulary,
                label: str) -> tuple[np.ndarray, np.ndarray]:
    """``(raw ids, rows)`` of the ``items`` that ``vocab`` knows; the others are dropped
    with one ``ServingWarning`` naming up to five of them."""
    if isinstance(items, (str, bytes, int, np.integer)):
        items = [items]
    ids = coerce_ids(items, vocab)
    rows = vocab.encode(ids, unknown="mark")
    if (rows < 0).any():
        warnings.warn(f"{label}: {int((rows < 0).sum()):,} item id(s) unknown to the model "
                      f"were ignored, e.g. {ids[rows < 0][:5].tolist()}", ServingWarning,
                      stacklevel=3)
    return ids[rows >= 0], rows[rows >= 0]


def allowed_mask(filter_items: ItemFilter | None, vocab: Vocabulary) -> np.ndarray | None:
    """(I,) bool mask of the catalog items ``filter_items`` allows; None allows all.

    Example::

        allowed_mask(["i1", "i3"], item_vocab)            # allow-list
        allowed_mask(lambda ids: ids != "i2", item_vocab)   # any rule over raw ids
    """
    if filter_items is None:
        return None
    catalog = vocab.ids
    if callable(filter_items):
        mask = np.asarray(filter_items(catalog), dtype=bool)
        if mask.shape != (len(catalog),):
            raise DataError(f"filter_items returned shape {mask.shape}, expected "
                            f"({len(catalog)},): one bool per catalog item")
        return mask
    _, rows = known_items(filter_items, vocab, "filter_items")
    mask = np.zeros(len(catalog), dtype=bool)
    mask[rows] = True
    return mask

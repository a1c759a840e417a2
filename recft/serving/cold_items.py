"""Cold items at serving time: items never trained on, ranked from their text.

A model with a text path (``TwoTowerConfig(item_text="id+text" | "text")``) reads each
item's frozen text vector. ``add_items`` encodes new items' texts with the encoder the
model's vectors came from and appends the items to its catalog (zero id row, no feature
values), so ``Recommender.recommend``, ``similar_items``, ``embed_items`` and ``export``
treat them like every other item.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recft.errors import DataError
from recft.serving.ids import ServingWarning, coerce_ids

if TYPE_CHECKING:
    from recft.serving.recommender import Recommender


def add_items(rec: Recommender, items: Mapping[Any, str] | Iterable[Any],
              texts: Sequence[str] | None = None, *, encoder: Any = None) -> np.ndarray:
    """Make ``items`` servable from their text; ids already in the catalog get a new text.

    An item without text (an empty string) gets the zero text vector: a new one is then
    scored as the model's generic item (all such items tie); one ``ServingWarning`` counts
    them.

    Args:
        rec: the Recommender whose model is grown in place.
        items: ``{raw id: text}``, or raw ids with ``texts`` in the same order.
        texts: the texts when ``items`` is a list of ids.
        encoder: the encoder, when it cannot be looked up by name (a fitted TF-IDF encoder
            after loading from disk); it must be the model's (name and version).

    Returns:
        The items' rows (``item_vocab`` positions), in the order given.

    Raises:
        DataError: the model has no text path, ids repeat, or ids and texts differ in number.
        EncoderNotAvailableError: the model's encoder is not installed (named, with version).
    """
    from recft.models.growth import append_items
    from recft.models.text_path import encode_texts
    from recft.text import has_text

    model = rec.model
    if getattr(model, "item_text", None) is None:
        raise DataError("the model has no text path (item_text='none'): it can only score "
                        "items it was trained on; pretrain with "
                        "TwoTowerConfig(item_text='id+text') to serve cold items")
    ids, texts = _pairs(items, texts)
    ids = coerce_ids(ids, rec.item_vocab)
    repeated = pd.Index(ids).duplicated()
    if repeated.any():
        raise DataError(f"add_items: repeated item ids, e.g. {ids[repeated][:5].tolist()}")
    vectors = encode_texts(model, texts, encoder=encoder)
    rows = rec.item_vocab.encode(ids, unknown="mark")
    known = rows >= 0
    if known.any():
        model.item_text.set_rows(rows[known], vectors[known])
    if (~known).any():
        rows[~known] = append_items(model, ids[~known], vectors[~known])
    without_text = int((~has_text(texts)).sum())
    if without_text:
        warnings.warn(f"add_items: {without_text:,} item(s) without text get the zero text "
                      "vector (a new one is scored as the model's generic item)",
                      ServingWarning, stacklevel=3)
    rec.added_items.update(zip(ids.tolist(), texts))
    return rows


def _pairs(items: Mapping[Any, str] | Iterable[Any],
           texts: Sequence[str] | None) -> tuple[list[Any], list[str]]:
    """``(ids, texts)`` from a mapping, or from ids and texts given apart."""
    if isinstance(items, Mapping):
        if texts is not None:
            raise DataError("give texts either in the mapping or as texts=, not both")
        return list(items.keys()), ["" if t is None else str(t) for t in items.values()]
    ids = [items] if isinstance(items, (str, bytes, int, np.integer)) else list(items)
    if texts is None or isinstance(texts, str) or len(texts) != len(ids):
        count = "no" if texts is None else (1 if isinstance(texts, str) else len(texts))
        raise DataError(f"{len(ids)} item ids but {count} texts")
    return ids, ["" if t is None else str(t) for t in texts]

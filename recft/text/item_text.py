"""One short text per catalog item, built from what the dataset has, or from the user's file.

From a dataset's item features (``Interactions.item_features``):

- MovieLens: ``"The Shawshank Redemption (1994). Genres: Crime, Drama. Tags: prison, ..."``
  (title with its trailing article moved to the front, year, genres, top tags);
- lastfm-2k: ``"Madonna. Tags: pop, dance, 80s, ..."`` (artist name, most used tags first);
- synthetic music: ``"Synthetic Track 7 by Synthetic Artist 1. Tags: rock, indie"``.

An item with none of these gets the empty text: it is flagged in ``ItemTexts.missing``,
and every encoder turns it into the zero vector (see recft.text.encoders).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recft.data.features import EntityFeatures
from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.text.encoders import has_text

#: MovieLens writes "Shawshank Redemption, The (1994)"; a language model reads the usual order.
_TRAILING_ARTICLE = re.compile(r"^(?P<title>.+), (?P<article>The|A|An)(?P<rest>\s*\(.*)?$")
_NAME_COLUMNS = ("title", "name")


@dataclass(frozen=True)
class ItemTexts:
    """Texts aligned with an item vocabulary's rows.

    Attributes:
        texts: one text per row (``""`` when the item has none).
        fields: what the texts were built from (``("title", "genres", "tag")``, ``("file",)``).
    """

    texts: tuple[str, ...]
    fields: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def missing(self) -> np.ndarray:
        """(N,) bool: items without text (they encode to the zero vector)."""
        return ~has_text(self.texts)

    def coverage(self) -> float:
        """Share of items with a text."""
        return float(1.0 - self.missing.mean()) if self.texts else 0.0


def item_texts(data: Interactions | EntityFeatures | None, max_tags: int = 10) -> ItemTexts:
    """Item texts from a dataset's item features, one per item-vocabulary row.

    Args:
        data: the dataset (or its ``item_features``).
        max_tags: keep this many tags per item (loaders put the most used first).

    Returns:
        ItemTexts; items without any title, name, artist, genre or tag get ``""``.
    """
    features = data.item_features if isinstance(data, Interactions) else data
    size = len(data.item_vocab) if isinstance(data, Interactions) else None
    if features is None:
        return ItemTexts(("",) * (size or 0), ())
    size = size if size is not None else features.num_entities() or 0
    attributes = features.attributes if features.attributes is not None else pd.DataFrame()
    categorical = features.categorical
    name_column = next((c for c in _NAME_COLUMNS if c in attributes.columns), None)
    names = _column(attributes, name_column, size)
    years = _column(attributes, "year", size)
    artists = _column(attributes, "artist", size)
    if "artist" in categorical and "artist" not in attributes.columns:
        artists = [", ".join(values) for values in _lists(categorical["artist"], None)]
    genres = _lists(categorical["genres"], None) if "genres" in categorical else None
    tags = _lists(categorical["tag"], max_tags) if "tag" in categorical else None
    texts = []
    for row in range(size):
        parts = []
        head = _head(names[row], years[row], artists[row])
        if head:
            parts.append(head)
        if genres is not None and genres[row]:
            parts.append("Genres: " + ", ".join(genres[row]))
        if tags is not None and tags[row]:
            parts.append("Tags: " + ", ".join(tags[row]))
        texts.append(". ".join(parts))
    used = {name_column: name_column is not None, "year": "year" in attributes.columns,
            "artist": any(artists), "genres": genres is not None, "tag": tags is not None}
    return ItemTexts(tuple(texts), tuple(str(f) for f, present in used.items() if present))


def texts_for_vocabulary(texts: Mapping[Any, str], item_vocab: Vocabulary) -> ItemTexts:
    """Align ``{raw item id: text}`` with ``item_vocab``'s rows.

    Items of the vocabulary absent from ``texts`` get ``""`` (flagged as missing); ids in
    ``texts`` that the vocabulary lacks are not rows and are left out (a later cold-item
    step encodes them on their own). ``"42"`` and ``42`` are the same id, as everywhere.
    """
    out = [""] * len(item_vocab)
    if texts:
        ids = list(texts.keys())
        rows = item_vocab.encode(np.asarray(ids, dtype=object), unknown="mark")
        for raw, row in zip(ids, rows):
            if row >= 0:
                out[row] = _clean(texts[raw])
    return ItemTexts(tuple(out), ("file",))


def _head(name: str, year: str, artist: str) -> str:
    """``"The Title (1995)"`` or ``"Track by Artist"``: the item's name with what it lacks."""
    title = _TRAILING_ARTICLE.sub(lambda m: f"{m['article']} {m['title']}{m['rest'] or ''}",
                                  name)
    if year and title and f"({year})" not in title:
        title = f"{title} ({year})"
    if artist and artist != title:
        title = f"{title} by {artist}" if title else artist
    return title


def _column(attributes: pd.DataFrame, column: str | None, size: int) -> list[str]:
    """A display column as clean strings; missing values (None, NaN, NA) become ``""``."""
    if column is None or column not in attributes.columns:
        return [""] * size
    values = attributes[column]
    known = values.notna().to_numpy()
    return [_clean(v) if k else "" for v, k in zip(values.tolist(), known)]


def _lists(feature: Any, limit: int | None) -> list[list[str]]:
    return [[_clean(v) for v in values[:limit]] for values in feature.as_lists()]


def _clean(text: object) -> str:
    """One line: texts come from files with tabs and line breaks; encoders want plain text.
    A missing value (None, NaN, NA) is no text."""
    if text is None or (not isinstance(text, str) and bool(pd.isna(text))):
        return ""
    return " ".join(str(text).split())


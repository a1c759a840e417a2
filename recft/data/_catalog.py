"""Catalog vocabularies and side features built from release files, vectorised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recft.data._parsing import factorize_sorted
from recft.data.features import CategoricalFeature
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

_YEAR_IN_TITLE = r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$"


def catalog_vocabulary(ids: pd.Series | np.ndarray, path: Path, first_line: int, field: str,
                       name: str) -> Vocabulary:
    """The sorted vocabulary of a catalog file's id column; a repeated id is an error."""
    values = pd.Series(np.asarray(ids))
    repeated = values.duplicated().to_numpy()
    if repeated.any():
        row = int(np.argmax(repeated))
        raise DataError(f"id {values.iloc[row]!r} appears twice in the catalog",
                        path=path, line=first_line + row, field=field)
    return Vocabulary.from_values(values.to_numpy(), name=name)


def encode_in_catalog(vocab: Vocabulary, ids: pd.Series | np.ndarray, path: Path,
                      first_line: int, field: str, catalog: Path | str) -> np.ndarray:
    """Rows of ``ids`` in ``vocab``; an id missing from the catalog file names its line."""
    rows = vocab.encode(np.asarray(ids), unknown="mark")
    missing = rows < 0
    if missing.any():
        row = int(np.argmax(missing))
        raise DataError(
            f"{vocab.name} {np.asarray(ids)[row]!r} is not in {Path(catalog).name} "
            f"({int(missing.sum()):,} such rows)",
            path=path, line=first_line + row, field=field,
        )
    return rows


def jagged_feature(entity_rows: np.ndarray, values: np.ndarray, num_entities: int, *,
                   name: str, weights: np.ndarray | None = None,
                   order: np.ndarray | None = None) -> CategoricalFeature:
    """A CategoricalFeature from parallel ``(entity row, value[, weight])`` arrays.

    Args:
        entity_rows: (E,) row of the entity each value belongs to.
        values: (E,) raw values (genre names, tag strings, years).
        num_entities: rows of the entity vocabulary (entities without values get none).
        name: the feature vocabulary's name.
        weights: (E,) optional per-value weights (tag counts).
        order: (E,) optional sort key within an entity (smaller first); default: by value.
    """
    entity_rows = np.asarray(entity_rows, dtype=np.int64)
    codes, uniques = factorize_sorted(values) if len(values) else (
        np.zeros(0, np.int64), np.zeros(0, np.int64))
    vocab = Vocabulary(uniques, name=name)
    within = codes if order is None else np.asarray(order)
    sort = np.lexsort((codes, within, entity_rows))
    offsets = np.zeros(num_entities + 1, dtype=np.int64)
    np.cumsum(np.bincount(entity_rows, minlength=num_entities), out=offsets[1:])
    return CategoricalFeature(
        offsets, codes[sort], vocab,
        None if weights is None else np.asarray(weights, dtype=np.float32)[sort],
    )


def split_multi_valued(texts: pd.Series, sep: str = "|",
                       none: tuple[str, ...] = ("", "(no genres listed)")
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(position, value)`` pairs of ``"A|B"`` strings; ``none`` markers give no value."""
    exploded = texts.reset_index(drop=True).astype(str).str.split(sep, regex=False).explode()
    keep = ~exploded.isin(none).to_numpy()
    return exploded.index.to_numpy()[keep].astype(np.int64), exploded.to_numpy()[keep]


def years_from_titles(titles: pd.Series) -> pd.Series:
    """Release year from a MovieLens title ``"Heat (1995)"`` as nullable Int64 (NA if none)."""
    found = titles.astype(str).str.extract(_YEAR_IN_TITLE, expand=False)
    return pd.to_numeric(found, errors="coerce").astype("Int64").reset_index(drop=True)


def year_feature(years: pd.Series) -> CategoricalFeature:
    """Single-valued categorical ``year`` feature; items without a year get no value."""
    known = years.notna().to_numpy()
    rows = np.flatnonzero(known)
    return jagged_feature(rows, years.to_numpy()[known].astype(np.int64), len(years), name="year")


def tag_feature(entity_rows: np.ndarray, tags: pd.Series, num_entities: int,
                name: str = "tag") -> CategoricalFeature:
    """Tags lower-cased and stripped, one value per (entity, tag), weighted by its count.

    Within an entity the most frequent tags come first, so a truncated view keeps the
    most characteristic ones.
    """
    text = tags.astype(str).str.strip().str.lower().to_numpy()
    entity_rows = np.asarray(entity_rows, dtype=np.int64)
    keep = text != ""
    frame = pd.DataFrame({"entity": entity_rows[keep], "tag": text[keep]})
    counts = frame.groupby(["entity", "tag"], sort=False).size().reset_index(name="count")
    return jagged_feature(
        counts["entity"].to_numpy(), counts["tag"].to_numpy(), num_entities, name=name,
        weights=counts["count"].to_numpy(), order=-counts["count"].to_numpy(),
    )

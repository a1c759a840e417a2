"""Synthetic item catalogs: movies (genres, year) and music (tags, artist), with item factors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recft.data.features import CategoricalFeature, EntityFeatures
from recft.data.synthetic.latent import (
    direction_vectors,
    smooth_directions,
    unit_rows,
)
from recft.data.synthetic.sampling import YEAR

MOVIE_GENRES = (
    "Drama", "Comedy", "Thriller", "Action", "Romance", "Adventure", "Crime", "Sci-Fi",
    "Horror", "Children", "Fantasy", "Mystery", "Animation", "War", "Documentary", "Musical",
    "Western", "Film-Noir",
)
MUSIC_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance",
    "80s", "hip-hop", "metal", "jazz", "soul", "classic rock", "folk", "punk", "ambient",
    "hard rock", "experimental", "singer-songwriter", "british", "instrumental", "rnb",
    "acoustic", "chillout", "blues", "country", "reggae", "classical", "synthpop", "trip-hop",
    "post-rock", "industrial", "90s", "new wave", "emo", "funk", "techno", "house",
    "progressive rock", "soundtrack",
)
ITEM_NOISE = 0.2  # per-coordinate noise: with K=16 features explain roughly 60% of a factor
ERA_WEIGHT = 0.35  # how much a movie's decade colours its factor


@dataclass(frozen=True, eq=False)
class Catalog:
    """Items of the universe (every item of either domain) with their planted factors.

    Attributes:
        factors: (I, K) unit item factors.
        features: item features aligned with the universe rows.
        directions: (D, K) genre or tag directions user tastes are mixed from.
        prior: (D,) how common each direction is in tastes (frequency-based).
    """

    factors: np.ndarray
    features: EntityFeatures
    directions: np.ndarray
    prior: np.ndarray


def _pick_labels(count: int, frequency: np.ndarray, how_many: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """(count, L) label indices, distinct per row, drawn by frequency; row r uses the
    first ``how_many[r]`` columns (Gumbel top-k, so no loop over entities)."""
    perturbed = np.log(frequency)[None, :] + rng.gumbel(size=(count, len(frequency)))
    return np.argsort(-perturbed, axis=1)[:, : int(how_many.max())]


def _membership(labels: np.ndarray, how_many: np.ndarray, num_labels: int) -> np.ndarray:
    """(N, D) 0/1 matrix of each row's first ``how_many`` labels."""
    matrix = np.zeros((len(labels), num_labels))
    used = np.arange(labels.shape[1])[None, :] < how_many[:, None]
    rows = np.repeat(np.arange(len(labels)), how_many)
    matrix[rows, labels[used]] = 1.0
    return matrix


def _zipf_frequency(count: int, exponent: float = 0.9) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return weights / weights.sum()


def movie_catalog(release: np.ndarray, num_topics: int, rng: np.random.Generator) -> Catalog:
    """Movies: 1-3 genres (Drama and Comedy most common) and a release year per item.

    Back-catalogue items (``release`` = -inf) get years skewed towards the recent past;
    items released during the simulated period get that year.
    """
    count = len(release)
    genre_frequency = _zipf_frequency(len(MOVIE_GENRES))
    how_many = 1 + rng.binomial(2, 0.35, count)
    labels = _pick_labels(count, genre_frequency, how_many, rng)
    membership = _membership(labels, how_many, len(MOVIE_GENRES))
    released = np.isfinite(release)
    old_years = 2014 - np.floor(rng.exponential(12.0, count))
    release_years = 1970 + np.floor(np.where(released, release, 0) / YEAR)
    years = np.where(released, release_years, np.maximum(old_years, 1925)).astype(np.int64)
    genre_directions = direction_vectors(len(MOVIE_GENRES), num_topics, rng)
    decades = smooth_directions((2030 - 1920) // 10, num_topics, rng)
    taste = unit_rows(membership @ genre_directions)
    era = decades[(years - 1920) // 10]
    factors = unit_rows(taste + ERA_WEIGHT * era
                        + ITEM_NOISE * rng.standard_normal((count, num_topics)))
    genre_lists = [[MOVIE_GENRES[g] for g in row[:k]] for row, k in zip(labels, how_many)]
    titles = [f"Synthetic Movie {index} ({year})" for index, year in enumerate(years)]
    features = EntityFeatures(
        {"genres": CategoricalFeature.from_lists(genre_lists, name="genre"),
         "year": CategoricalFeature.from_lists([[int(y)] for y in years], name="year")},
        pd.DataFrame({"title": titles, "year": years}),
    )
    prior = np.sqrt(genre_frequency) / np.sqrt(genre_frequency).sum()
    return Catalog(factors, features, genre_directions, prior)


def music_catalog(release: np.ndarray, num_topics: int, rng: np.random.Generator) -> Catalog:
    """Music: tracks by artists (a few artists own many tracks), tags inherited from the
    artist with play-like counts; a track's factor sits close to its artist's."""
    count = len(release)
    num_artists = max(5, count // 6)
    tag_frequency = _zipf_frequency(len(MUSIC_TAGS))
    how_many = 1 + rng.binomial(3, 0.4, num_artists)
    labels = _pick_labels(num_artists, tag_frequency, how_many, rng)
    membership = _membership(labels, how_many, len(MUSIC_TAGS))
    tag_directions = direction_vectors(len(MUSIC_TAGS), num_topics, rng)
    artist_factors = unit_rows(unit_rows(membership @ tag_directions)
                               + 0.15 * rng.standard_normal((num_artists, num_topics)))
    artist_of = rng.choice(num_artists, size=count, p=_zipf_frequency(num_artists, 0.8))
    factors = unit_rows(artist_factors[artist_of]
                        + 0.6 * ITEM_NOISE * rng.standard_normal((count, num_topics)))
    # tag counts: the artist's first tag is the most used one
    tag_counts = np.sort(rng.integers(1, 60, labels.shape), axis=1)[:, ::-1]
    tag_lists, weight_lists = [], []
    for artist in artist_of:
        k = how_many[artist]
        tag_lists.append([MUSIC_TAGS[t] for t in labels[artist, :k]])
        weight_lists.append(tag_counts[artist, :k].astype(float).tolist())
    artist_names = np.asarray([f"Synthetic Artist {a}" for a in range(num_artists)], dtype=object)
    features = EntityFeatures(
        {"tag": CategoricalFeature.from_lists(tag_lists, weights=weight_lists, name="tag"),
         "artist": CategoricalFeature.from_lists([[n] for n in artist_names[artist_of]],
                                                 name="artist")},
        pd.DataFrame({"title": [f"Synthetic Track {index}" for index in range(count)],
                      "artist": artist_names[artist_of]}),
    )
    prior = np.sqrt(tag_frequency) / np.sqrt(tag_frequency).sum()
    return Catalog(factors, features, tag_directions, prior)

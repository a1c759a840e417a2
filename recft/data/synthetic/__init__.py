"""The embedded default data: a source domain and a shifted target domain with planted structure.

Both domains are drawn from one latent space of ``num_topics`` dimensions. Every item has
a unit factor mixed from its genres (movies) or its artist's tags (music) plus noise, so
item features carry signal without carrying all of it. A user's taste is a sparse mix of
genre/tag directions; the chance that user u picks item i grows with
``preference_scale * <taste_u, factor_i> + popularity_i`` (Zipf-like popularity), and
users pick without replacement while they are active and the item is out.

The target domain is shifted: other users (ids ``t00042`` instead of ``u00042``), other
taste priors, half of the latent space rotated for its users, a reshuffled and flatter
popularity curve, sparser histories, a later period, 5% of the source catalog gone and
about 10% new items (released after the source period ended, ids after the source's).
Pretraining on ``source`` should therefore help on ``target`` but not solve it.

Example::

    pair = synthetic("movies", seed=0)
    pair.source, pair.target            # Interactions with item features
    pair.truth.scores("target")        # (users, items) planted scores: the oracle
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recft.data.features import EntityFeatures
from recft.data.interactions import Interactions
from recft.data.synthetic.catalogs import Catalog, movie_catalog, music_catalog
from recft.data.synthetic.latent import (
    activity_counts,
    partial_rotation,
    reranked_bias,
    shifted_prior,
    user_factors,
    zipf_bias,
)
from recft.data.synthetic.sampling import (
    DAY,
    SOURCE_PERIOD,
    TARGET_PERIOD,
    activity_windows,
    play_counts,
    sample_interactions,
    star_ratings,
)
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

FLAVOURS = ("movies", "music")
#: Preset sizes. "demo" pretrains a small two-tower on 2 CPU cores in under a minute.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"num_users": 300, "num_target_users": 150, "num_items": 200},
    "small": {"num_users": 1000, "num_target_users": 400, "num_items": 600},
    "demo": {"num_users": 3000, "num_target_users": 1000, "num_items": 1500},
    "large": {"num_users": 30000, "num_target_users": 10000, "num_items": 8000},
}
BACK_CATALOGUE_SHARE = 0.7  # items available from the start; the rest are released later
NEW_RELEASE_BOOST = 1.0  # target-only items are promoted (log-popularity) as fresh releases


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """The planted factors behind a DomainPair, aligned with each domain's vocabulary rows.

    Attributes:
        source_user_factors: (source users, K) unit tastes.
        target_user_factors: (target users, K) unit tastes (already rotated).
        source_item_factors: (source catalog, K) unit item factors.
        target_item_factors: (target catalog, K); equal rows for items both catalogs hold.
        source_item_bias: (source catalog,) log-popularity in the source domain.
        target_item_bias: (target catalog,) log-popularity in the target domain.
        preference_scale: weight of taste against popularity in the planted score.
        rotation: (K, K) rotation applied to the target users' tastes.
    """

    source_user_factors: np.ndarray
    target_user_factors: np.ndarray
    source_item_factors: np.ndarray
    target_item_factors: np.ndarray
    source_item_bias: np.ndarray
    target_item_bias: np.ndarray
    preference_scale: float
    rotation: np.ndarray

    def scores(self, domain: str = "target", users: np.ndarray | None = None) -> np.ndarray:
        """(B, I) planted scores of ``users`` (user rows; all by default) for every item of
        ``domain``'s catalog: the oracle ranking, before availability in time."""
        if domain not in ("source", "target"):
            raise ValueError(f"domain must be 'source' or 'target', got {domain!r}")
        people = getattr(self, f"{domain}_user_factors")
        people = people if users is None else people[np.asarray(users)]
        items = getattr(self, f"{domain}_item_factors")
        return self.preference_scale * (people @ items.T) + getattr(self, f"{domain}_item_bias")


@dataclass(frozen=True, eq=False)
class DomainPair:
    """A source domain to pretrain on and a shifted target domain to fine-tune on.

    Attributes:
        source: rich interactions over the source catalog.
        target: sparser interactions of other users; shares most items with ``source``.
        truth: the planted factors (for tests and oracle baselines).
        flavour: ``"movies"`` or ``"music"``.
    """

    source: Interactions
    target: Interactions
    truth: SyntheticTruth
    flavour: str

    def new_items(self) -> np.ndarray:
        """Raw ids of target-catalog items the source catalog lacks."""
        ids = self.target.item_vocab.ids
        return ids[self.source.item_vocab.encode(ids, unknown="mark") < 0]


def synthetic(
    flavour: str = "movies",
    num_users: int | None = None,
    num_items: int | None = None,
    seed: int = 0,
    *,
    num_target_users: int | None = None,
    size: str = "demo",
    num_topics: int = 16,
    mean_activity: float = 40.0,
    target_mean_activity: float = 15.0,
    new_item_share: float = 0.1,
    dropped_item_share: float = 0.05,
    popularity_exponent: float = 1.15,
    target_popularity_exponent: float = 0.8,
    preference_scale: float = 10.0,
    shift: float = 0.5,
) -> DomainPair:
    """Generate a source/target DomainPair from ``seed`` (numpy only, no files).

    Args:
        flavour: ``"movies"`` (1-5 stars, genres + year) or ``"music"`` (play counts,
            tags + artist).
        num_users: source users; ``None`` takes it from ``size``.
        num_items: source catalog size; ``None`` takes it from ``size``.
        seed: everything is a function of the arguments and this seed.
        num_target_users: target users; ``None`` takes it from ``size``.
        size: a preset of ``SIZES`` for the sizes not given ("demo" by default).
        num_topics: dimensions K of the latent space.
        mean_activity: mean interactions per source user (log-normal, long-tailed).
        target_mean_activity: mean interactions per target user.
        new_item_share: target-only items, as a share of the source catalog.
        dropped_item_share: share of the source catalog absent from the target's.
        popularity_exponent: steepness of the source's Zipf popularity.
        target_popularity_exponent: steepness of the target's (reshuffled) popularity.
        preference_scale: weight of taste against popularity; larger = more personal.
        shift: 0 = the target's users behave like the source's; 1 = strongly shifted.

    Returns:
        A DomainPair whose Interactions carry timestamps, ratings (stars or play counts)
        and item features; each domain's item vocabulary is its own catalog.
    """
    if flavour not in FLAVOURS:
        raise DataError(f"flavour must be one of {FLAVOURS}, got {flavour!r}", field="flavour")
    if size not in SIZES:
        raise DataError(f"size must be one of {tuple(SIZES)}, got {size!r}", field="size")
    preset = SIZES[size]
    num_users = preset["num_users"] if num_users is None else num_users
    num_items = preset["num_items"] if num_items is None else num_items
    num_target_users = preset["num_target_users"] if num_target_users is None else num_target_users
    if min(num_users, num_target_users) < 1 or num_items < 20:
        raise DataError("synthetic needs at least 1 user per domain and 20 items")
    if not (0 <= new_item_share <= 1 and 0 <= dropped_item_share < 1 and shift >= 0):
        raise DataError("item shares must be in [0, 1) and shift must be >= 0")
    rng = np.random.default_rng(seed)

    # the universe: source items first, then target-only items released after the source
    num_new = int(round(new_item_share * num_items))
    release = np.full(num_items + num_new, -np.inf)
    later = rng.random(num_items) >= BACK_CATALOGUE_SHARE
    source_start, source_end = SOURCE_PERIOD
    release[:num_items][later] = rng.uniform(source_start, source_end - 30 * DAY, later.sum())
    release[num_items:] = rng.uniform(source_end, TARGET_PERIOD[1] - 90 * DAY, num_new)
    builder = movie_catalog if flavour == "movies" else music_catalog
    catalog = builder(release, num_topics, rng)
    dropped = rng.choice(num_items, int(round(dropped_item_share * num_items)), replace=False)
    source_items = np.arange(num_items)
    target_items = np.setdiff1d(np.arange(num_items + num_new), dropped)

    source_bias = zipf_bias(num_items + num_new, popularity_exponent, rng)
    target_bias = reranked_bias(source_bias, target_popularity_exponent, shift, rng)
    target_bias[num_items:] += NEW_RELEASE_BOOST
    rotation = partial_rotation(num_topics, shift, rng)
    source_users = user_factors(num_users, catalog.prior, catalog.directions, rng)
    target_prior = shifted_prior(catalog.prior, shift, rng)
    target_users = user_factors(num_target_users, target_prior, catalog.directions, rng)
    target_users = target_users @ rotation.T

    def draw(users: np.ndarray, items: np.ndarray, bias: np.ndarray, mean: float,
             minimum: int, period: tuple[int, int], prefix: str, label: str) -> Interactions:
        activity = activity_counts(len(users), mean, minimum, max(minimum, len(items) // 3), rng)
        window = activity_windows(len(users), period, rng)
        user_index, item_rows, moments = sample_interactions(
            users, catalog.factors[items], bias[items], preference_scale, activity,
            release[items], window, rng,
        )
        affinity = np.einsum("nk,nk->n", users[user_index], catalog.factors[items][item_rows])
        values = star_ratings(affinity, rng) if flavour == "movies" else play_counts(affinity, rng)
        width = max(5, len(str(max(len(users), num_items + num_new) - 1)))
        user_vocab = Vocabulary([f"{prefix}{u:0{width}d}" for u in range(len(users))], "user")
        item_vocab = Vocabulary([f"i{i:0{width}d}" for i in items], "item")
        return Interactions(
            user_ids=user_index, item_ids=item_rows, user_vocab=user_vocab,
            item_vocab=item_vocab, ratings=values.astype(np.float32), timestamps=moments,
            item_features=_catalog_features(catalog, items),
            feedback="explicit" if flavour == "movies" else "count",
            name=f"synthetic-{flavour}-{label}",
        )

    source = draw(source_users, source_items, source_bias, mean_activity, 5, SOURCE_PERIOD,
                  "u", "source")
    target = draw(target_users, target_items, target_bias, target_mean_activity, 3,
                  TARGET_PERIOD, "t", "target")
    truth = SyntheticTruth(
        source_user_factors=source_users, target_user_factors=target_users,
        source_item_factors=catalog.factors[source_items],
        target_item_factors=catalog.factors[target_items],
        source_item_bias=source_bias[source_items], target_item_bias=target_bias[target_items],
        preference_scale=preference_scale, rotation=rotation,
    )
    return DomainPair(source, target, truth, flavour)


def _catalog_features(catalog: Catalog, items: np.ndarray) -> EntityFeatures:
    """The universe's item features for one domain's catalog rows (all rows exist, so
    attribute dtypes such as the integer year are kept)."""
    features = catalog.features
    attributes = None
    if features.attributes is not None:
        attributes = features.attributes.iloc[items].reset_index(drop=True)
    return EntityFeatures({n: f.take(items) for n, f in features.categorical.items()}, attributes)


__all__ = ["FLAVOURS", "SIZES", "Catalog", "DomainPair", "SyntheticTruth", "synthetic"]

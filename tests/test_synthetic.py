"""Synthetic domains: determinism, shape of the data, features, the shift, planted structure."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recft.data import DomainPair, Interactions, synthetic
from recft.data.splits import split
from recft.data.synthetic.diagnostics import cosine_similarity, planted_structure
from recft.data.synthetic.sampling import SOURCE_PERIOD, TARGET_PERIOD
from recft.errors import DataError


# ---------------------------------------------------------------------- determinism, sizes
def test_same_seed_same_data_other_seed_other_data() -> None:
    first = synthetic("movies", size="tiny", seed=3)
    again = synthetic("movies", size="tiny", seed=3)
    other = synthetic("movies", size="tiny", seed=4)
    for domain in ("source", "target"):
        a, b, c = (getattr(p, domain) for p in (first, again, other))
        for column in ("user_ids", "item_ids", "ratings", "timestamps"):
            assert np.array_equal(getattr(a, column), getattr(b, column))
        assert a.item_features.categorical["genres"].as_lists() == \
            b.item_features.categorical["genres"].as_lists()
        assert not np.array_equal(a.item_ids[:50], c.item_ids[:50])
    assert np.array_equal(first.truth.scores("target"), again.truth.scores("target"))


@pytest.mark.parametrize("fixture", ["synthetic_pair", "synthetic_music_pair"])
def test_sizes_activity_and_catalogs(fixture: str, request: pytest.FixtureRequest) -> None:
    pair = request.getfixturevalue(fixture)
    source, target = pair.source, pair.target
    assert (source.user_vocab_size, target.user_vocab_size, source.catalog_size) == (1000, 400, 600)
    assert target.catalog_size == 600 - 30 + 60  # 5% of the source catalog dropped, 10% new
    for x, mean, minimum in ((source, 40, 5), (target, 15, 3)):
        activity = x.user_activity()
        assert activity.min() >= minimum and abs(activity.mean() - mean) < 0.2 * mean
        assert activity.max() > 3 * activity.mean()  # long-tailed
        pairs = x.user_ids * x.catalog_size + x.item_ids
        assert len(np.unique(pairs)) == len(x)  # no repeated (user, item)
    assert source.feedback == ("explicit" if pair.flavour == "movies" else "count")


@pytest.mark.parametrize("fixture", ["synthetic_pair", "synthetic_music_pair"])
def test_popularity_follows_a_power_law(fixture: str, request: pytest.FixtureRequest) -> None:
    for x in (request.getfixturevalue(fixture).source, request.getfixturevalue(fixture).target):
        counts = np.sort(x.item_popularity())[::-1]
        top_share = counts[: len(counts) // 10].sum() / counts.sum()
        assert 0.3 < top_share < 0.8  # ~0.43 in MovieLens-100k
        assert counts[0] > 10 * np.median(counts)


# ---------------------------------------------------------------------- features and ids
def test_movie_features_and_attributes(synthetic_pair: DomainPair) -> None:
    features = synthetic_pair.target.item_features
    genres, years = features.categorical["genres"], features.categorical["year"]
    assert genres.coverage() == 1.0 and years.coverage() == 1.0
    assert set(genres.lengths()) <= {1, 2, 3} and set(years.lengths()) == {1}
    attributes = features.attributes
    assert len(attributes) == synthetic_pair.target.catalog_size
    assert years.as_lists()[:5] == [[int(y)] for y in attributes["year"][:5]]
    for title, year in zip(attributes["title"][:20], attributes["year"][:20]):
        assert re.fullmatch(rf"Synthetic Movie \d+ \({year}\)", title)
    ratings = synthetic_pair.source.ratings
    assert set(np.unique(ratings)) <= {1, 2, 3, 4, 5} and 3.0 < ratings.mean() < 4.2


def test_music_features_and_play_counts(synthetic_music_pair: DomainPair) -> None:
    features = synthetic_music_pair.source.item_features
    tags, artists = features.categorical["tag"], features.categorical["artist"]
    assert tags.coverage() == 1.0 and set(artists.lengths()) == {1}
    assert tags.weights is not None and (tags.weights > 0).all()
    assert [[name] for name in features.attributes["artist"][:10]] == artists.as_lists()[:10]
    plays = synthetic_music_pair.source.ratings
    assert plays.min() >= 1 and np.all(plays == np.round(plays))
    assert plays.max() > 10 * np.median(plays)  # long-tailed, as Last.fm play counts are


def test_item_features_carry_signal(synthetic_pair: DomainPair) -> None:
    # items sharing a genre set have closer planted factors than random pairs
    factors = synthetic_pair.truth.source_item_factors
    genre_lists = synthetic_pair.source.item_features.categorical["genres"].as_lists()
    keys = np.asarray(["|".join(sorted(g)) for g in genre_lists])
    same = keys[:, None] == keys[None, :]
    np.fill_diagonal(same, False)
    cosine = factors @ factors.T
    assert cosine[same].mean() > cosine[~same].mean() + 0.3


def test_target_has_new_users_and_about_ten_percent_new_items(synthetic_pair: DomainPair) -> None:
    source, target = synthetic_pair.source, synthetic_pair.target
    assert all(u.startswith("u") for u in source.user_vocab.ids)
    assert all(u.startswith("t") for u in target.user_vocab.ids)
    assert all(re.fullmatch(r"i\d{5}", i) for i in target.item_vocab.ids)
    new = synthetic_pair.new_items()
    assert len(new) == 60 and abs(len(new) / target.catalog_size - 0.1) < 0.02
    assert (source.item_vocab.encode(new, unknown="mark") < 0).all()
    new_rows = target.item_vocab.encode(new)
    used = np.isin(target.item_ids, new_rows)
    assert 0.02 < used.mean() < 0.3  # new items are interacted with, not just listed
    # they were released after the source period: only late target interactions touch them
    assert target.timestamps[used].min() >= SOURCE_PERIOD[1] > source.timestamps.max()
    assert target.timestamps.min() >= TARGET_PERIOD[0]
    shared = target.item_vocab.encode(source.item_vocab.ids, unknown="mark")
    assert (shared >= 0).mean() == pytest.approx(0.95)
    truth = synthetic_pair.truth
    assert np.array_equal(truth.target_item_factors[shared[shared >= 0]],
                          truth.source_item_factors[shared >= 0])


def test_splits_work_on_the_synthetic_domains(synthetic_pair: DomainPair) -> None:
    parts = split(synthetic_pair.target, "leave-last-out")
    assert len(parts.test) == synthetic_pair.target.user_vocab_size  # every user has >= 3
    assert isinstance(parts.train, Interactions)


def test_invalid_arguments_name_the_valid_options() -> None:
    with pytest.raises(DataError, match="movies"):
        synthetic("books")
    with pytest.raises(DataError, match="demo"):
        synthetic(size="huge")


# ---------------------------------------------------------------------- planted structure
@pytest.mark.parametrize("fixture", ["synthetic_pair", "synthetic_music_pair"])
def test_planted_structure_is_recoverable_and_transfers(fixture: str,
                                                        request: pytest.FixtureRequest) -> None:
    figures = planted_structure(request.getfixturevalue(fixture))
    # the planted scores explain the target far better than popularity
    assert figures["oracle"] > 2.0 * figures["popularity"]
    assert figures["popularity"] > 3 * figures["random"]
    # co-occurrence learned on the source alone helps on the target (the transfer proxy) ...
    assert figures["knn_source"] > 1.2 * figures["popularity"]
    # ... more than the same method learned from a quarter of the target's own data
    assert figures["knn_source"] > 2.0 * figures["knn_target_quarter"]
    # and the domains are shifted: source popularity is a worse guide than the target's own
    assert figures["source_popularity"] < figures["popularity"]


def test_observed_interactions_have_higher_planted_scores(synthetic_pair: DomainPair) -> None:
    target = synthetic_pair.target
    scores = synthetic_pair.truth.scores("target")
    observed = scores[target.user_ids, target.item_ids].mean()
    assert observed > scores.mean() + 1.0
    stars = target.ratings
    affinity = (synthetic_pair.truth.target_user_factors[target.user_ids]
                * synthetic_pair.truth.target_item_factors[target.item_ids]).sum(axis=1)
    assert np.corrcoef(affinity, stars)[0, 1] > 0.3


def test_no_shift_means_no_rotation() -> None:
    flat = synthetic("movies", size="tiny", shift=0.0)
    assert np.allclose(flat.truth.rotation, np.eye(16))
    shifted = synthetic("movies", size="tiny", shift=1.0)
    assert not np.allclose(shifted.truth.rotation, np.eye(16))


def test_checkerboard_fixture_has_its_documented_answer(checkerboard: Interactions) -> None:
    seen = checkerboard.user_item_sets()
    scores = seen @ cosine_similarity(seen)
    scores[seen.nonzero()] = -np.inf
    rows = np.arange(checkerboard.user_vocab_size)
    assert np.array_equal(np.argmax(scores, axis=1), checkerboard.item_vocab.encode(
        checkerboard.user_vocab.decode(rows)))


def test_reference_scorers_on_hand_computed_cases() -> None:
    import scipy.sparse as sp

    from recft.data.synthetic.diagnostics import recall_at_k

    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    held_out = sp.csr_matrix(np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]))
    scores = np.array([[9.0, 5.0, 1.0, 3.0], [4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    # user 0: item 0 is seen, top-2 of the rest = {1, 3}: 1 of 2 found; user 1: 0 of 1;
    # user 2 has nothing held out and does not count
    assert recall_at_k(scores, seen, held_out, k=2) == pytest.approx((0.5 + 0.0) / 2)
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]]))
    expected = np.array([[0, 1 / np.sqrt(2), 0], [1 / np.sqrt(2), 0, 0], [0, 0, 0]])
    assert np.allclose(cosine_similarity(matrix), expected)

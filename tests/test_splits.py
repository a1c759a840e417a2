"""Splits: spec parsing, exact partitions, no leakage, and each kind's defining property."""

from __future__ import annotations

import numpy as np
import pytest

from recft.data import Interactions
from recft.data.grouping import group_order, positions_within_groups, rank_at_least, ratio_counts
from recft.data.splits import (
    VALID_FORMS,
    Split,
    SplitSpec,
    cold_item_split,
    cold_user_split,
    leave_last_out,
    parse_split,
    random_split,
    split,
    temporal_split,
)
from recft.errors import DataError

ALL_SPECS = ["random:0.8,0.1,0.1", "random:0.7,0.3", "temporal:0.8,0.1,0.1", "temporal:0.5,0.5",
             "leave-last-out", "cold-user:0.1,0.1", "cold-user:0.2", "cold-item:0.1",
             "cold-item:0.1,0.1"]


def tagged(num_users: int = 60, seed: int = 0) -> Interactions:
    """Random interactions whose weight is the row number, so parts can be traced back.

    Activity ranges over 1..40 per user and timestamps take few distinct values (ties).
    """
    rng = np.random.default_rng(seed)
    activity = rng.integers(1, 41, num_users)
    activity[:3] = [1, 2, 3]  # the edge cases of the per-user rules
    users = np.repeat(np.arange(num_users), activity)
    rng.shuffle(users)
    n = len(users)
    return Interactions.from_raw(
        users, rng.integers(0, 200, n), timestamps=rng.integers(0, 50, n) * 1000,
        weights=np.arange(n, dtype=np.float32),
    )


def rows(part: Interactions | None) -> np.ndarray:
    return np.zeros(0, np.int64) if part is None else part.weights.astype(np.int64)


def all_parts(s: Split) -> list[Interactions]:
    parts = [s.train, s.valid, s.test]
    if s.kind == "cold-user":
        parts += [s.test_history, s.valid_history]
    return [p for p in parts if p is not None]


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("text", "kind", "fractions"),
    [("random:0.8,0.1,0.1", "random", (0.8, 0.1, 0.1)), ("random:0.8,0.2", "random", (0.8, 0.2)),
     (" Random : 0.8 , 0.0 , 0.2 ", "random", (0.8, 0.2)), ("random", "random", (0.8, 0.1, 0.1)),
     ("temporal:0.9,0.1", "temporal", (0.9, 0.1)), ("leave-last-out", "leave-last-out", ()),
     ("cold-user:0.1,0.1", "cold-user", (0.1, 0.1)), ("cold-item:0.2", "cold-item", (0.2,))],
)
def test_parse_split_accepts_valid_forms(text: str, kind: str, fractions: tuple) -> None:
    spec = parse_split(text)
    assert (spec.kind, spec.fractions) == (kind, fractions)
    assert parse_split(str(spec)) == spec  # the canonical string round-trips


@pytest.mark.parametrize(
    "text",
    ["shuffle:0.8,0.2", "random:0.8,0.1", "random:0.8,0.1,0.1,0.0", "random:a,b",
     "random:1.2,-0.2", "random:0,1", "leave-last-out:0.1", "cold-user:0.6,0.5",
     "cold-user:0", "cold-item:0.1,0.1,0.1", ""],
)
def test_parse_split_rejects_invalid_forms_listing_the_valid_ones(text: str) -> None:
    with pytest.raises(DataError) as error:
        parse_split(text)
    message = str(error.value)
    assert repr(text) in message and all(form in message for form in VALID_FORMS)


# ---------------------------------------------------------------------- every kind
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_parts_partition_the_original_rows_and_share_vocabularies(spec: str) -> None:
    x = tagged()
    s = split(x, spec, seed=3)
    joined = np.concatenate([rows(p) for p in all_parts(s)])
    assert np.array_equal(np.sort(joined), np.arange(len(x)))  # disjoint and complete
    for part in all_parts(s):
        assert part.user_vocab is x.user_vocab and part.item_vocab is x.item_vocab
        tagged_rows = rows(part)
        assert np.array_equal(part.user_ids, x.user_ids[tagged_rows])
        assert np.array_equal(part.item_ids, x.item_ids[tagged_rows])
    without_valid = {"random:0.7,0.3", "temporal:0.5,0.5", "cold-user:0.2", "cold-item:0.1"}
    assert (s.valid is None) == (spec in without_valid)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_split_is_deterministic_by_seed(spec: str) -> None:
    x = tagged()
    first, again = split(x, spec, seed=5), split(x, spec, seed=5)
    for a, b in zip(all_parts(first), all_parts(again)):
        assert np.array_equal(rows(a), rows(b))
    if not spec.startswith(("temporal", "leave-last-out")):
        other = split(x, spec, seed=6)
        assert not np.array_equal(np.sort(rows(first.test)), np.sort(rows(other.test)))


def test_protocol_stamps_spec_seed_kind_and_sizes() -> None:
    x = tagged()
    s = split(x, "random:0.8,0.1,0.1", seed=7)
    protocol = s.protocol()
    assert (protocol["spec"], protocol["seed"], protocol["kind"]) == ("random:0.8,0.1,0.1", 7,
                                                                       "random")
    assert protocol["sizes"] == {"train": len(s.train), "valid": len(s.valid),
                                 "test": len(s.test)}
    assert sum(protocol["sizes"].values()) == len(x)
    assert s.test_history is s.train and s.valid_history is s.train


# ---------------------------------------------------------------------- random
def test_random_split_follows_the_per_user_rounding_rule() -> None:
    x = tagged()
    s = random_split(x, (0.8, 0.1, 0.1), seed=0)
    activity = x.user_activity()
    counts = np.stack([p.user_activity() for p in (s.train, s.valid, s.test)], axis=1)
    expected = {1: [1, 0, 0], 2: [1, 0, 1], 3: [1, 1, 1], 10: [8, 1, 1], 20: [16, 2, 2],
                25: [21, 2, 2], 39: [33, 3, 3]}
    for user, size in enumerate(activity):
        if size in expected:
            assert counts[user].tolist() == expected[size], (user, size)
        assert counts[user].sum() == size
        if size >= 3:
            assert (counts[user] > 0).all()


def test_random_split_within_user_choice_is_random_not_row_order() -> None:
    x = tagged()
    test_rows = rows(random_split(x, (0.5, 0.5), seed=1).test)
    # the first half of each user's rows would all be train under a row-order cut
    position, _ = positions_within_groups(x.user_ids, group_order(x.user_ids, np.arange(len(x))))
    share_late = (position[test_rows] >= x.user_activity()[x.user_ids[test_rows]] / 2).mean()
    assert 0.3 < share_late < 0.7


# ---------------------------------------------------------------------- temporal
def test_temporal_split_cuts_time_with_exact_sizes_even_with_ties() -> None:
    x = tagged()
    s = temporal_split(x, (0.6, 0.2, 0.2))
    assert [len(s.train), len(s.valid), len(s.test)] == list(
        np.diff(np.round(np.array([0, 0.6, 0.8, 1.0]) * len(x))).astype(int))
    assert s.train.timestamps.max() <= s.valid.timestamps.min()
    assert s.valid.timestamps.max() <= s.test.timestamps.min()
    # reference: rank by (timestamp, row) with a full stable sort
    rank = np.empty(len(x), np.int64)
    rank[np.argsort(x.timestamps, kind="stable")] = np.arange(len(x))
    assert np.array_equal(np.sort(rows(s.train)), np.flatnonzero(rank < len(s.train)))


# ---------------------------------------------------------------------- leave-last-out
def test_leave_last_out_holds_out_each_users_latest_interactions() -> None:
    x = tagged()
    s = leave_last_out(x)
    activity = x.user_activity()
    eligible = np.flatnonzero(activity >= 3)
    assert np.array_equal(np.sort(s.test.user_ids), eligible)
    assert np.array_equal(np.sort(s.valid.user_ids), eligible)
    assert set(np.flatnonzero((activity > 0) & (activity < 3))) <= set(s.train.user_ids)
    latest = np.full(x.user_vocab_size, -1)
    np.maximum.at(latest, s.train.user_ids, s.train.timestamps)
    np.maximum.at(latest, s.valid.user_ids, s.valid.timestamps)
    # ties: the held-out row is the latest by (timestamp, row)
    assert (s.test.timestamps >= latest[s.test.user_ids]).all()
    train_latest = np.full(x.user_vocab_size, -1)
    np.maximum.at(train_latest, s.train.user_ids, s.train.timestamps)
    order = np.argsort(s.valid.user_ids)
    assert (s.valid.timestamps[order] >= train_latest[s.valid.user_ids[order]]).all()


def test_time_based_splits_need_timestamps() -> None:
    x = Interactions.from_raw([1, 1, 1], [1, 2, 3])
    for spec in ("temporal", "leave-last-out"):
        with pytest.raises(DataError, match="timestamps"):
            split(x, spec)


# ---------------------------------------------------------------------- cold splits
def test_cold_user_split_never_trains_on_held_out_users() -> None:
    x = tagged(num_users=100)
    s = cold_user_split(x, 0.1, 0.1, seed=2, history_fraction=0.5)
    train_users = set(s.train.user_ids.tolist())
    test_users = set(s.test.user_ids.tolist()) | set(s.test_history.user_ids.tolist())
    valid_users = set(s.valid.user_ids.tolist()) | set(s.valid_history.user_ids.tolist())
    assert len(test_users) == len(valid_users) == 10
    assert not (train_users & test_users) and not (train_users & valid_users)
    assert not (test_users & valid_users)
    for history, target in ((s.test_history, s.test), (s.valid_history, s.valid)):
        for user in set(target.user_ids.tolist()) | set(history.user_ids.tolist()):
            seen = history.timestamps[history.user_ids == user]
            later = target.timestamps[target.user_ids == user]
            size = len(seen) + len(later)
            expected = 0 if size == 1 else min(max(size // 2, 1), size - 1)
            assert len(seen) == expected
            if len(seen) and len(later):
                assert seen.max() <= later.min()  # history is the earliest part


def test_cold_user_split_without_timestamps_picks_history_at_random() -> None:
    x = tagged(num_users=100).replace(timestamps=None)
    s = cold_user_split(x, 0.2, seed=0, history_fraction=0.25)
    assert s.valid is None and s.valid_history is None
    assert len(s.test_history) + len(s.test) == np.isin(
        x.user_ids, np.unique(s.test.user_ids)).sum()
    assert 0.15 < len(s.test_history) / (len(s.test_history) + len(s.test)) < 0.3
    history, target = s.test_history.user_activity(), s.test.user_activity()
    several = history + target >= 2
    assert several.any() and (history[several] >= 1).all() and (target[several] >= 1).all()


def test_cold_item_split_keeps_held_out_items_out_of_train() -> None:
    x = tagged()
    s = cold_item_split(x, 0.1, seed=4, valid_share=0.1)
    present = np.unique(x.item_ids)
    held_test, held_valid = np.unique(s.test.item_ids), np.unique(s.valid.item_ids)
    assert len(held_test) == round(0.1 * len(present)) == len(held_valid)
    assert not np.isin(s.train.item_ids, np.r_[held_test, held_valid]).any()
    assert np.isin(x.item_ids[np.isin(x.item_ids, held_test)], s.test.item_ids).all()
    assert s.test_history is s.train


def test_cold_split_refuses_to_hold_out_everything() -> None:
    x = Interactions.from_raw([1, 2], [1, 1])
    with pytest.raises(DataError, match="hold out"):
        split(x, "cold-user:0.5,0.4")


def test_split_accepts_a_parsed_spec_and_validates_it() -> None:
    x = tagged()
    assert split(x, SplitSpec("random", (0.5, 0.5))).spec == "random:0.5,0.5"
    with pytest.raises(DataError):
        random_split(x, (0.5, 0.6))


def test_group_order_matches_lexsort_reference() -> None:
    rng = np.random.default_rng(0)
    groups, keys = rng.integers(0, 30, 500), rng.integers(-5, 5, 500)
    assert np.array_equal(group_order(groups, keys), np.lexsort((np.arange(500), keys, groups)))
    wide = keys.astype(np.int64) * 2**58  # too wide to pack: the lexsort fallback
    assert np.array_equal(group_order(groups, wide),
                          np.lexsort((np.arange(500), keys, groups)))
    position, size = positions_within_groups(groups, group_order(groups, keys))
    assert np.array_equal(size, np.bincount(groups)[groups])
    assert all(sorted(position[groups == g]) == list(range((groups == g).sum())) for g in range(30))


def test_ratio_counts_and_rank_at_least_on_known_cases() -> None:
    counts = ratio_counts(np.array([1, 2, 3, 10, 0]), (0.8, 0.1, 0.1))
    assert counts.tolist() == [[1, 0, 0], [1, 0, 1], [1, 1, 1], [8, 1, 1], [0, 0, 0]]
    times = np.array([5, 1, 5, 3, 5, 1])  # order by (time, row): rows 1, 5, 3, 0, 2, 4
    assert rank_at_least(times, 3).tolist() == [True, False, True, False, True, False]
    assert rank_at_least(times, 4).tolist() == [False, False, True, False, True, False]
    assert not rank_at_least(times, 6).any() and rank_at_least(times, 0).all()


@pytest.mark.realdata
def test_every_split_on_movielens_100k() -> None:
    import os
    from pathlib import Path

    data_dir = os.environ.get("RECFT_DATA_DIR")
    if not data_dir or not (Path(data_dir) / "ml-100k" / "u.data").is_file():
        pytest.skip("set RECFT_DATA_DIR to a folder holding ml-100k/u.data")
    from recft.data import load_movielens

    x = load_movielens("ml-100k", data_dir=data_dir)
    loo = split(x, "leave-last-out")
    assert len(loo.test) == len(loo.valid) == 943  # every ml-100k user rated >= 20 movies
    temporal = split(x, "temporal:0.8,0.1,0.1")
    assert (len(temporal.train), len(temporal.valid), len(temporal.test)) == (80_000, 10_000,
                                                                               10_000)
    assert temporal.train.timestamps.max() <= temporal.test.timestamps.min()
    random = split(x, "random:0.8,0.1,0.1", seed=0)
    assert random.test.num_users == random.valid.num_users == 943
    cold = split(x, "cold-user:0.1,0.1", seed=0)
    assert not np.isin(cold.test.user_ids, cold.train.user_ids).any()
    assert cold.test.num_users == round(0.1 * 943)


def test_known_interactions_per_part() -> None:
    from recft.data import Interactions, split

    users = np.repeat(np.arange(40), 10)
    items = np.tile(np.arange(10), 40)
    x = Interactions.from_raw(users, items, timestamps=np.arange(400))
    warm = split(x, "random:0.8,0.1,0.1", seed=1)
    assert len(warm.known("valid")) == len(warm.train)
    assert len(warm.known("test")) == len(warm.train) + len(warm.valid)
    cold = split(x, "cold-user:0.25,0.25", seed=1)
    known = cold.known("test")
    parts = (cold.train, cold.valid, cold.test_history, cold.valid_history)
    assert len(known) == sum(len(p) for p in parts)
    assert len(cold.known("valid")) == len(cold.train) + len(cold.valid_history)
    assert set(np.unique(cold.test.user_ids)) <= set(np.unique(known.user_ids))

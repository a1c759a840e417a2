"""Training batches: histories, target masking, logQ, negatives, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recft.data import CategoricalFeature, EntityFeatures, Interactions
from recft.models.inputs import ITEM_HISTORY, ITEM_ID, USER_ID, UserHistories
from recft.train.batches import BatchBuilder


def _rows(kjt, key: str) -> list[list[int]]:
    """The per-example lists of one KJT key."""
    jagged = kjt[key]
    values = jagged.values().tolist()
    out, start = [], 0
    for length in jagged.lengths().tolist():
        out.append(values[start : start + length])
        start += length
    return out


@pytest.fixture
def timeline() -> Interactions:
    # user "a" saw items 10..15 in time order (timestamps shuffled in storage); "b" saw two
    users = ["a"] * 6 + ["b", "b"]
    items = [12, 10, 15, 11, 14, 13, 10, 11]
    times = [3, 1, 6, 2, 5, 4, 7, 8]
    return Interactions.from_raw(users, items, timestamps=times)


def test_histories_are_time_ordered_and_capped(timeline):
    histories = UserHistories.from_interactions(timeline)
    a, b = timeline.user_vocab.encode(["a", "b"])
    decode = timeline.item_vocab.decode
    lengths, values = histories.gather(np.array([a, b, -1]), max_length=3)
    assert lengths.tolist() == [3, 2, 0]
    assert decode(values).tolist() == [13, 14, 15, 10, 11]


def test_gather_drops_the_target_position_and_keeps_the_window_full(timeline):
    histories = UserHistories.from_interactions(timeline)
    a = timeline.user_vocab.encode(["a"])[0]
    decode = timeline.item_vocab.decode
    # interaction 5 is (a, 13), inside the 3 most recent: dropped, one older item joins
    position = histories.position[5]
    lengths, values = histories.gather(np.array([a]), 3, drop_position=np.array([position]))
    assert decode(values).tolist() == [12, 14, 15]
    # interaction 1 is (a, 10), older than the window: the window is just the 3 newest
    position = histories.position[1]
    lengths, values = histories.gather(np.array([a]), 3, drop_position=np.array([position]))
    assert decode(values).tolist() == [13, 14, 15]


def _brute_force_history(x: Interactions, example: int, max_length: int) -> list[int]:
    """The history an example should see: the user's other items, newest last, no target."""
    user, item = x.user_ids[example], x.item_ids[example]
    rows = [j for j in np.flatnonzero(x.user_ids == user) if j != example]
    rows.sort(key=lambda j: (x.timestamps[j], j))
    items = [int(x.item_ids[j]) for j in rows[-max_length:] if x.item_ids[j] != item]
    return items


def test_target_never_in_its_own_history_and_history_is_exact():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 12, 300)
    items = rng.integers(0, 25, 300)  # repeats of (user, item) pairs happen
    x = Interactions.from_raw(users, items, timestamps=rng.permutation(300))
    builder = BatchBuilder(x, batch_size=64, max_history=7)
    seen = []
    for batch in builder.batches(epoch=0, seed=0):
        targets = batch.item_ids.tolist()
        assert _rows(batch.item_features, ITEM_ID) == [[t] for t in targets]
        for target, history in zip(targets, _rows(batch.item_features, ITEM_HISTORY)):
            assert target not in history
        seen.append(batch)
    order = builder.epoch_order(0, 0)
    histories = [h for batch in seen for h in _rows(batch.item_features, ITEM_HISTORY)]
    duplicates = 0
    for example, history in zip(order, histories):
        expected = _brute_force_history(x, example, 7)
        duplicates += len(expected) < min(7, int((x.user_ids == x.user_ids[example]).sum()) - 1)
        assert history == expected
    assert duplicates > 0  # the fixture exercises repeat interactions with the target


def test_item_features_and_log_q():
    genres = CategoricalFeature.from_lists([["x"], ["x", "y"], []])
    x = Interactions.from_raw([0, 0, 1, 1, 1], [5, 6, 5, 7, 6],
                              item_features=EntityFeatures({"genres": genres}))
    builder = BatchBuilder(x, batch_size=5, max_history=10, item_features={"genres": genres})
    batch = next(builder.batches(0, 0))
    items = batch.item_ids.numpy()
    expected_genres = [genres.values[genres.offsets[i] : genres.offsets[i + 1]].tolist()
                       for i in items]
    assert _rows(batch.item_features, "genres") == expected_genres
    counts = np.bincount(x.item_ids, minlength=3)
    expected_log_q = np.log(5 * counts[items] / 5)
    np.testing.assert_allclose(batch.log_q.numpy(), expected_log_q, rtol=1e-6)


def test_negatives_ids_dropout_and_determinism():
    rng = np.random.default_rng(0)
    x = Interactions.from_raw(rng.integers(0, 30, 400), rng.integers(0, 50, 400))
    builder = BatchBuilder(x, batch_size=100, max_history=5, num_negatives=16,
                           user_id_dropout=1.0)
    first = list(builder.batches(epoch=2, seed=7))
    again = list(builder.batches(epoch=2, seed=7, start_step=1))
    assert len(first) == builder.num_batches == 4
    batch = first[1]
    assert batch.negative_ids.shape == (16,)
    assert 0 <= batch.negative_ids.min() and batch.negative_ids.max() < x.catalog_size
    assert _rows(batch.negative_features, ITEM_ID) == [[i] for i in batch.negative_ids.tolist()]
    assert batch.negative_log_q.tolist() == pytest.approx([math.log(16 / 50)] * 16)
    # dropout 1.0: every user id bag is empty (the history-only path)
    assert batch.user_features[USER_ID].lengths().sum().item() == 0
    # a resumed iterator sees exactly the same batches
    for a, b in zip(first[1:], again):
        assert torch.equal(a.item_ids, b.item_ids)
        assert torch.equal(a.negative_ids, b.negative_ids)
        assert torch.equal(a.item_features.values(), b.item_features.values())
    other_epoch = next(builder.batches(epoch=3, seed=7))
    assert not torch.equal(other_epoch.item_ids, first[0].item_ids)
    moved = batch.to("cpu")
    assert len(moved) == 100 and torch.equal(moved.user_ids, batch.user_ids)


def test_history_dropout_hides_a_subset_of_each_history():
    rng = np.random.default_rng(1)
    x = Interactions.from_raw(rng.integers(0, 10, 500), rng.integers(0, 60, 500),
                              timestamps=np.arange(500))
    full = BatchBuilder(x, batch_size=500, max_history=30)
    half = BatchBuilder(x, batch_size=500, max_history=30, history_dropout=0.5)
    everything = BatchBuilder(x, batch_size=500, max_history=30, history_dropout=1.0)
    complete = _rows(next(full.batches(0, 0)).item_features, ITEM_HISTORY)
    partial = _rows(next(half.batches(0, 0)).item_features, ITEM_HISTORY)
    for whole, kept in zip(complete, partial):
        assert set(kept) <= set(whole)
    kept_share = sum(map(len, partial)) / sum(map(len, complete))
    assert 0.4 < kept_share < 0.6
    assert next(everything.batches(0, 0)).item_features[ITEM_HISTORY].values().numel() == 0

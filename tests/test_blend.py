"""Blend: each end of the weight range ranks like its component, the mix is blind to each
component's scale, and tuning on valid picks the component that ranks the held-out item."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recft.data import Interactions
from recft.evaluate import Scorer, evaluate
from recft.models.baselines import EASE
from recft.models.blend import WEIGHTS, Blend, tune_weight
from tests.tiny_models import tiny_two_tower


class FixedScores:
    """A Scorer returning rows of a fixed (users x items) matrix."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = torch.as_tensor(matrix, dtype=torch.float32)

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        return self.matrix[torch.as_tensor(users)].clone()


def held_out_split(num_users: int = 6, num_items: int = 8) -> tuple[Interactions, Interactions]:
    """User u has seen items u and u+1 (mod catalog); item u+2 is held out for valid."""
    users = np.repeat(np.arange(num_users), 3)
    items = (users + np.tile([0, 1, 2], num_users)) % num_items
    data = Interactions.from_raw(users, items)
    held_out = np.tile([False, False, True], num_users)
    return data.subset(~held_out), data.subset(held_out)


def rows_of(raw_items: np.ndarray, data: Interactions) -> np.ndarray:
    return data.item_vocab.encode(raw_items)


def right_and_wrong(train: Interactions, valid: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Score matrices: ``right`` puts each user's valid item above every other unseen item,
    ``wrong`` puts it below all of them; both on very different scales."""
    rng = np.random.default_rng(0)
    users = np.arange(train.user_vocab_size)
    right = rng.random((users.size, train.catalog_size))
    wrong = rng.random((users.size, train.catalog_size)) * 1000.0
    for user, item in zip(valid.user_ids, valid.item_ids):
        right[user, item] = 2.0
        wrong[user, item] = -1.0
    return right, wrong


def test_weight_zero_and_one_rank_like_each_component(checkerboard: Interactions) -> None:
    model = tiny_two_tower(checkerboard, seed=3)
    ease = EASE(l2=1.0).fit(checkerboard)
    users = np.arange(checkerboard.user_vocab_size)
    for weight, component in ((0.0, model), (1.0, ease)):
        blended = Blend(model, ease, weight).score_users(users, checkerboard)
        alone = component.score_users(users, checkerboard)
        assert torch.equal(blended.argsort(dim=1, stable=True),
                           alone.float().argsort(dim=1, stable=True))


def test_weight_zero_evaluates_like_the_two_tower() -> None:
    train, valid = held_out_split(num_users=10, num_items=12)
    model = tiny_two_tower(train, seed=1)
    blend = Blend(model, EASE(l2=1.0).fit(train), 0.0)
    assert isinstance(blend, Scorer)
    alone = evaluate(model, valid, exclude=train, ks=(5,), metrics=["ndcg", "recall"])
    mixed = evaluate(blend, valid, exclude=train, ks=(5,), metrics=["ndcg", "recall"])
    assert mixed["ndcg@5"] == pytest.approx(alone["ndcg@5"])
    assert mixed["recall@5"] == pytest.approx(alone["recall@5"])


def test_mix_ignores_each_components_scale() -> None:
    train, _ = held_out_split()
    right, wrong = right_and_wrong(train, held_out_split()[1])
    users = np.arange(train.user_vocab_size)
    small = Blend(FixedScores(right), FixedScores(wrong / 1000.0), 0.4).score_users(users, train)
    large = Blend(FixedScores(right * 50.0), FixedScores(wrong), 0.4).score_users(users, train)
    assert torch.allclose(small, large, atol=1e-4)


def test_standardises_over_unseen_items_only() -> None:
    """A seen item's extreme score must not squash the unseen items' spread."""
    train, _ = held_out_split()
    users = np.arange(train.user_vocab_size)
    scores = np.tile(np.arange(train.catalog_size, dtype=np.float64), (users.size, 1))
    seen = train.user_item_sets().toarray() > 0
    with_outliers = np.where(seen, 1e6, scores)
    plain = Blend(FixedScores(scores), FixedScores(scores), 1.0).score_users(users, train)
    spiked = Blend(FixedScores(scores), FixedScores(with_outliers), 1.0).score_users(users, train)
    unseen = torch.from_numpy(~seen)
    assert torch.allclose(plain[unseen], spiked[unseen], atol=1e-5)


@pytest.mark.parametrize("right_first", [True, False])
def test_tuning_picks_the_component_that_ranks_valid_items(right_first: bool) -> None:
    train, valid = held_out_split()
    right, wrong = right_and_wrong(train, valid)
    first, second = (right, wrong) if right_first else (wrong, right)
    tuning = tune_weight(FixedScores(first), FixedScores(second), valid, exclude=train)
    assert list(tuning) == list(WEIGHTS)
    best_end = 0.0 if right_first else 1.0
    assert tuning[best_end] == pytest.approx(1.0)  # the valid item ranked first for everyone
    assert tuning[1.0 - best_end] < 0.5
    blend = Blend.tuned(FixedScores(first), FixedScores(second), valid, exclude=train)
    assert blend.tuning == tuning
    # of the weights that score best, the one with the least item-item share is kept
    assert blend.weight == min(w for w, value in tuning.items() if value == max(tuning.values()))
    assert (blend.weight == 0.0) == right_first


def test_tuning_matches_evaluate_at_every_weight() -> None:
    train, valid = held_out_split(num_users=10, num_items=12)
    right, wrong = right_and_wrong(train, valid)
    rng = np.random.default_rng(1)
    noisy = right + rng.normal(0, 0.5, right.shape)
    tuning = tune_weight(FixedScores(noisy), FixedScores(wrong), valid, exclude=train,
                         weights=(0.0, 0.3, 0.7), batch_size=3)
    for weight, value in tuning.items():
        blend = Blend(FixedScores(noisy), FixedScores(wrong), weight)
        assert evaluate(blend, valid, exclude=train, ks=(10,))["ndcg@10"] == pytest.approx(value)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_weight_outside_zero_one_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="weight must be in"):
        Blend(FixedScores(np.zeros((1, 1))), FixedScores(np.zeros((1, 1))), weight)

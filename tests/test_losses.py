"""Losses against hand-computed values: sampled softmax (logQ, accidental hits), BPR, MSE, BCE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recft.train.losses import bce_loss, bpr_loss, mse_loss, sampled_softmax_loss


def _manual_softmax_loss(logits: np.ndarray) -> float:
    """Mean over rows of -log softmax(row)[row index]; -inf entries drop out."""
    losses = []
    for row, values in enumerate(logits):
        finite = values[np.isfinite(values)]
        losses.append(math.log(np.exp(finite).sum()) - values[row])
    return float(np.mean(losses))


@pytest.fixture
def embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    item = torch.tensor([[0.9, 0.1], [0.2, 0.8], [-0.3, 0.4]])
    return user, item


def test_in_batch_softmax_matches_hand_computation(embeddings):
    user, item = embeddings
    logits = (user @ item.T).numpy() / 0.5
    expected = _manual_softmax_loss(logits)
    got = sampled_softmax_loss(user, item, temperature=0.5).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_logq_subtracts_log_expected_count_from_every_column(embeddings):
    user, item = embeddings
    log_q = torch.tensor([math.log(0.5), math.log(0.1), math.log(0.4)])
    logits = (user @ item.T).numpy() - log_q.numpy()[None, :]
    expected = _manual_softmax_loss(logits)
    got = sampled_softmax_loss(user, item, log_q=log_q).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # a more popular negative (larger q) is pushed down less: raising item 2's log q lowers
    # the loss of row 0, for which item 2 is only a negative
    only_row_0 = torch.tensor([1.0, 0.0, 0.0])
    raised = log_q.clone()
    raised[2] += 2.0
    before = sampled_softmax_loss(user, item, log_q=log_q, weights=only_row_0).item()
    after = sampled_softmax_loss(user, item, log_q=raised, weights=only_row_0).item()
    assert after < before


def test_constant_logq_shift_changes_nothing(embeddings):
    user, item = embeddings
    shifted = sampled_softmax_loss(user, item, log_q=torch.full((3,), 3.7)).item()
    assert shifted == pytest.approx(sampled_softmax_loss(user, item).item(), rel=1e-6)


def test_accidental_hits_are_masked(embeddings):
    user, item = embeddings
    # rows 0 and 2 share item 7: neither may treat the other's copy as a negative
    ids = torch.tensor([7, 8, 7])
    logits = (user @ item.T).numpy()
    logits[0, 2] = -np.inf
    logits[2, 0] = -np.inf
    expected = _manual_softmax_loss(logits)
    got = sampled_softmax_loss(user, item, item_ids=ids).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert sampled_softmax_loss(user, item).item() != pytest.approx(expected, rel=1e-3)


def test_extra_negatives_join_the_softmax_and_hits_are_masked(embeddings):
    user, item = embeddings
    extra = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    extra_log_q = torch.tensor([math.log(0.2), math.log(0.2)])
    ids = torch.tensor([1, 2, 3])
    extra_ids = torch.tensor([2, 9])  # extra 0 is row 1's own positive
    in_batch = (user @ item.T).numpy()
    extras = (user @ extra.T).numpy() - extra_log_q.numpy()[None, :]
    extras[1, 0] = -np.inf
    expected = _manual_softmax_loss(np.concatenate([in_batch, extras], axis=1))
    got = sampled_softmax_loss(user, item, extra_negatives=extra, extra_log_q=extra_log_q,
                               item_ids=ids, extra_item_ids=extra_ids).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_weights_average_rows(embeddings):
    user, item = embeddings
    logits = (user @ item.T).numpy()
    per_row = [math.log(np.exp(logits[r]).sum()) - logits[r, r] for r in range(3)]
    weights = torch.tensor([1.0, 0.0, 3.0])
    expected = (per_row[0] + 3 * per_row[2]) / 4
    got = sampled_softmax_loss(user, item, weights=weights).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_softmax_gradient_pulls_positive_closer(embeddings):
    user, item = embeddings
    user = user.clone().requires_grad_(True)
    loss = sampled_softmax_loss(user, item, temperature=0.1)
    loss.backward()
    step = user - 0.01 * user.grad
    assert sampled_softmax_loss(step, item, temperature=0.1).item() < loss.item()


def test_bpr_hand_values():
    positive = torch.tensor([2.0, 0.0])
    negative = torch.tensor([0.0, 1.0])
    expected = (-math.log(1 / (1 + math.exp(-2.0))) - math.log(1 / (1 + math.exp(1.0)))) / 2
    assert bpr_loss(positive, negative).item() == pytest.approx(expected, rel=1e-6)
    # (B, K) negatives with a mask dropping a pair
    negatives = torch.tensor([[0.0, 5.0], [1.0, 1.0]])
    mask = torch.tensor([[True, False], [True, True]])
    pair = lambda p, n: -math.log(1 / (1 + math.exp(-(p - n))))  # noqa: E731
    expected = (pair(2, 0) + pair(0, 1) + pair(0, 1)) / 3
    assert bpr_loss(positive, negatives, mask=mask).item() == pytest.approx(expected, rel=1e-6)


def test_mse_and_bce_hand_values():
    prediction = torch.tensor([1.0, 3.0])
    target = torch.tensor([2.0, 3.0])
    assert mse_loss(prediction, target).item() == pytest.approx(0.5)
    only_exact = torch.tensor([0.0, 1.0])
    assert mse_loss(prediction, target, weights=only_exact).item() == pytest.approx(0.0)
    logits = torch.tensor([0.0, 2.0])
    labels = torch.tensor([1.0, 0.0])
    expected = (math.log(2.0) + math.log(1 + math.exp(2.0))) / 2
    assert bce_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)

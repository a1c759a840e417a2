"""Training losses as pure functions: sampled softmax (in-batch, logQ), BPR, MSE, BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    weights = weights.to(values.dtype)
    while weights.dim() < values.dim():
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


def sampled_softmax_loss(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    temperature: float = 1.0,
    log_q: torch.Tensor | None = None,
    extra_negatives: torch.Tensor | None = None,
    extra_log_q: torch.Tensor | None = None,
    item_ids: torch.Tensor | None = None,
    extra_item_ids: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax over in-batch candidates (and optional extra negatives) per user.

    Row ``b`` scores its own positive ``item_emb[b]`` against every other positive in the
    batch and every extra negative. Popular items are over-represented among in-batch
    negatives, so with ``log_q`` each candidate's logit is lowered by the log of its
    expected count in the sample (Yi et al., 2019), which makes the loss estimate the
    full softmax instead of pushing popular items down.

    Args:
        user_emb: (B, D) user embeddings.
        item_emb: (B, D) embeddings of each user's positive item.
        temperature: logits are ``dot / temperature``.
        log_q: (B,) log expected count of each positive as an in-batch candidate.
        extra_negatives: (M, D) extra negative embeddings shared by the batch.
        extra_log_q: (M,) log expected count of each extra negative.
        item_ids: (B,) item ids of the positives: an item appearing in two rows is not a
            negative for either (accidental hit), it is masked out.
        extra_item_ids: (M,) ids of the extra negatives, masked where they equal a row's
            positive (needs ``item_ids``).
        weights: (B,) per-example weights.

    Returns:
        Scalar mean (weighted) cross-entropy.
    """
    candidates, offsets = item_emb, log_q
    if extra_negatives is not None:
        candidates = torch.cat([item_emb, extra_negatives])
        if log_q is not None or extra_log_q is not None:
            zeros = user_emb.new_zeros
            offsets = torch.cat([log_q if log_q is not None else zeros(len(item_emb)),
                                 extra_log_q if extra_log_q is not None
                                 else zeros(len(extra_negatives))])
    if offsets is None:
        logits = user_emb @ candidates.T / temperature
    else:
        # one fused op: the (B, B + M) logits are the loss's biggest tensor
        logits = torch.addmm(-offsets.unsqueeze(0), user_emb, candidates.T, alpha=1 / temperature)
    if item_ids is not None:
        rows, cols = _accidental_hits(item_ids, extra_item_ids)
        if len(rows):
            # in place on addmm's / div's output, which their backward does not need
            logits.index_put_((rows, cols), logits.new_tensor(float("-inf")))
    targets = torch.arange(len(user_emb), device=user_emb.device)
    return _weighted_mean(F.cross_entropy(logits, targets, reduction="none"), weights)


def _accidental_hits(
    item_ids: torch.Tensor, extra_item_ids: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of candidates equal to a row's own positive, other than the diagonal.

    Only ids that repeat are compared pairwise, so a batch from a large catalog (few
    repeats) never builds a (B, B) mask.
    """
    sorted_ids, order = item_ids.sort()
    repeat = sorted_ids[1:] == sorted_ids[:-1]
    in_group = torch.zeros_like(item_ids, dtype=torch.bool)
    in_group[1:] |= repeat
    in_group[:-1] |= repeat
    members = order[in_group]
    same = item_ids[members].unsqueeze(1) == item_ids[members].unsqueeze(0)
    same.fill_diagonal_(False)
    a, b = same.nonzero(as_tuple=True)
    rows, cols = members[a], members[b]
    if extra_item_ids is not None:
        extra_rows, extra_cols = (item_ids.unsqueeze(1) == extra_item_ids.unsqueeze(0)).nonzero(
            as_tuple=True)
        rows = torch.cat([rows, extra_rows])
        cols = torch.cat([cols, extra_cols + len(item_ids)])
    return rows, cols


def bpr_loss(
    positive: torch.Tensor,
    negative: torch.Tensor,
    weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bayesian personalised ranking: ``-log sigmoid(positive - negative)``, averaged.

    Args:
        positive: (B,) scores of the positives.
        negative: (B,) or (B, K) scores of negatives for each row.
        weights: (B,) per-example weights.
        mask: like ``negative``, False where a pair must not count (a "negative" that is
            the row's own positive).
    """
    if negative.dim() == 2:
        positive = positive.unsqueeze(1)
    losses = -F.logsigmoid(positive - negative)
    if mask is not None:
        weights_2d = mask.to(losses.dtype)
        if weights is not None:
            weights_2d = weights_2d * (weights.unsqueeze(1) if negative.dim() == 2 else weights)
        return (losses * weights_2d).sum() / weights_2d.sum().clamp_min(1.0)
    return _weighted_mean(losses, weights)


def mse_loss(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error for rating heads. ``prediction``/``target``: (B,)."""
    return _weighted_mean((prediction - target.to(prediction.dtype)) ** 2, weights)


def bce_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy on logits for click/like heads. ``logits``/``labels``: (B,)."""
    losses = F.binary_cross_entropy_with_logits(
        logits, labels.to(logits.dtype), reduction="none"
    )
    return _weighted_mean(losses, weights)

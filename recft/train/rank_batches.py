"""RankBatches: each rank's slice of every global batch, in the single-process order.

Rank ``r`` of ``W`` builds the same global batch a single process would (same seed, epoch,
step, same random draws for negatives and dropout) and keeps its contiguous slice, so a
sharded run sees exactly the examples, in exactly the order, of one process whose batch is
the global one. Building the whole batch on every rank costs ``W`` times the (vectorised,
numpy) batch assembly, a small share of a step.

In-batch negatives are per rank: an example is contrasted with the other positives of its
rank's slice (``B / W`` candidates), not of the global batch. The logQ correction is
recomputed for the slice, so the loss is the single-process sampled softmax of a batch of
``B / W``; BPR and extra uniform negatives (shared by the whole global batch) do not
depend on the split at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torchrec.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

from recft.train.batches import Batch, BatchBuilder


class RankBatches:
    """``BatchBuilder``'s interface, yielding this rank's slice of each global batch.

    Attributes:
        loss_scale: for the batch last yielded, ``W * (this slice's share of the global
            batch's weight)``: with every rank's loss scaled by it, and gradients averaged
            over ranks (DDP's and torchrec's convention), the gradient is exactly that of
            the global batch's weighted mean loss, even for an uneven last batch.
        global_size: size of the global batch last yielded.
    """

    def __init__(self, builder: BatchBuilder, rank: int, world_size: int) -> None:
        self.builder, self.rank, self.world_size = builder, rank, world_size
        self.loss_scale = 1.0
        self.global_size = 0

    @property
    def num_batches(self) -> int:
        return self.builder.num_batches

    @property
    def smallest_slice(self) -> int:
        """The smallest rank's share of the global batch last yielded (the same on every
        rank, so every rank skips or trains the same steps)."""
        return self.global_size // self.world_size

    def batches(self, epoch: int, seed: int, start_step: int = 0) -> Iterator[Batch]:
        for batch in self.builder.batches(epoch, seed, start_step):
            start, stop = rank_slice(len(batch), self.rank, self.world_size)
            self.global_size = len(batch)
            self.loss_scale = self.world_size * _weight_share(batch, start, stop)
            yield slice_batch(batch, start, stop)


def rank_slice(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of ``rank``'s contiguous share of ``size`` examples (sizes differ by
    at most one, the first ranks taking the extra ones)."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _weight_share(batch: Batch, start: int, stop: int) -> float:
    if len(batch) == 0:
        return 0.0
    if batch.weights is None:
        return (stop - start) / len(batch)
    total = float(batch.weights.double().sum())
    return float(batch.weights[start:stop].double().sum()) / total if total > 0 else 0.0


def slice_batch(batch: Batch, start: int, stop: int) -> Batch:
    """Examples ``[start, stop)`` of ``batch``; shared extra negatives are kept whole."""
    def rows(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor[start:stop]

    log_q = rows(batch.log_q)
    if log_q is not None and stop > start:
        # the expected count among this slice's candidates, not the global batch's
        log_q = log_q + math.log((stop - start) / len(batch))
    return Batch(
        user_features=slice_kjt(batch.user_features, start, stop),
        item_features=slice_kjt(batch.item_features, start, stop),
        user_ids=batch.user_ids[start:stop], item_ids=batch.item_ids[start:stop],
        weights=rows(batch.weights), log_q=log_q,
        negative_features=batch.negative_features, negative_ids=batch.negative_ids,
        negative_log_q=batch.negative_log_q, examples=rows(batch.examples),
    )


def slice_kjt(features: KeyedJaggedTensor, start: int, stop: int) -> KeyedJaggedTensor:
    """Rows ``[start, stop)`` of every key of a (non-weighted) KeyedJaggedTensor."""
    sliced = {}
    for key, jagged in features.to_dict().items():
        offsets = jagged.offsets()
        values = jagged.values()[int(offsets[start]):int(offsets[stop])]
        sliced[key] = JaggedTensor(values=values, lengths=jagged.lengths()[start:stop])
    return KeyedJaggedTensor.from_jt_dict(sliced)


def split_evenly(count: int, rank: int, world_size: int) -> np.ndarray:
    """Positions of ``rank``'s contiguous share of ``count`` items (users to score...)."""
    start, stop = rank_slice(count, rank, world_size)
    return np.arange(start, stop)


__all__ = ["RankBatches", "rank_slice", "slice_batch", "slice_kjt", "split_evenly"]

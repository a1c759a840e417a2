"""Training batches: (user, positive item) examples -> KeyedJaggedTensors, vectorised."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft.data.features import CategoricalFeature
from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.models.inputs import UserHistories, item_features_kjt, user_features_kjt
from recft.models.two_tower import TwoTower


@dataclass
class Batch:
    """B training examples and M negatives shared by the batch.

    Attributes:
        user_features: KJT, stride B: ``user_id`` (empty bag when dropped) + user features.
        item_features: KJT, stride B: positives' ``item_id`` + item features, and each
            user's ``item_history`` (never containing that example's positive).
        user_ids: (B,) user rows (before id dropout).
        item_ids: (B,) positive item rows.
        weights: (B,) float32 sample weights, or None.
        log_q: (B,) log expected count of each positive among the batch's candidates.
        negative_features: KJT, stride M, of uniformly sampled negatives, or None.
        negative_ids: (M,) negative item rows, or None.
        negative_log_q: (M,) log expected count of each negative, or None.
        examples: (B,) positions of the examples in the training interactions (for
            per-example labels such as ratings), or None.
    """

    user_features: KeyedJaggedTensor
    item_features: KeyedJaggedTensor
    user_ids: torch.Tensor
    item_ids: torch.Tensor
    weights: torch.Tensor | None = None
    log_q: torch.Tensor | None = None
    negative_features: KeyedJaggedTensor | None = None
    negative_ids: torch.Tensor | None = None
    negative_log_q: torch.Tensor | None = None
    examples: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """This batch with every tensor and KJT on ``device``."""
        moved = {
            f.name: None if (value := getattr(self, f.name)) is None
            else value.to(device, non_blocking=non_blocking)
            for f in dataclasses.fields(self)
        }
        return Batch(**moved)


class BatchBuilder:
    """Turns the interactions of a training set into shuffled ``Batch``es.

    Histories are built once as CSR. For example (u, i) the history is u's most recent
    ``max_history`` items with that interaction left out (and any repeat of i), so the
    model never learns to find the target in its own input. Everything is numpy index
    arithmetic over the whole batch: no Python loop per example.

    Randomness is a function of ``(seed, epoch, step)`` only, so a run resumed at any
    step sees exactly the batches an uninterrupted run would have seen.

    Example::

        builder = BatchBuilder.for_model(model, train, batch_size=1024)
        for batch in builder.batches(epoch=0, seed=0):
            user_emb, item_emb = model(batch.user_features, batch.item_features)
    """

    def __init__(
        self,
        train: Interactions,
        *,
        batch_size: int,
        max_history: int,
        use_history: bool = True,
        item_features: Mapping[str, CategoricalFeature] | None = None,
        user_features: Mapping[str, CategoricalFeature] | None = None,
        num_negatives: int = 0,
        logq_correction: bool = True,
        user_id_dropout: float = 0.0,
        history_dropout: float = 0.0,
    ) -> None:
        if len(train) == 0:
            raise DataError(f"{train.name or 'training data'} has no interactions")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.train = train
        self.batch_size = batch_size
        self.max_history = max_history
        self.use_history = use_history
        self.item_features = dict(item_features or {})
        self.user_features = dict(user_features or {})
        self.num_negatives = num_negatives
        self.logq_correction = logq_correction
        self.user_id_dropout = user_id_dropout
        self.history_dropout = history_dropout
        self.catalog_size = train.catalog_size
        self.histories = UserHistories.from_interactions(train)
        popularity = train.item_popularity().astype(np.float64)
        # probability that a random training example's positive is each item
        self.log_popularity = np.log(np.maximum(popularity, 1.0) / len(train))
        self.weights = train.weights

    @classmethod
    def for_model(cls, model: TwoTower, train: Interactions, **options: object) -> BatchBuilder:
        """A builder whose inputs match ``model``'s features and history settings."""
        for what, ours, theirs in (("user", train.user_vocab, model.user_vocab),
                                   ("item", train.item_vocab, model.item_vocab)):
            if ours is not theirs and ours != theirs:
                raise DataError(f"training data and model have different {what} vocabularies; "
                                "align the data to the model's vocabulary first")
        return cls(train, max_history=model.config.max_history,
                   use_history=model.config.use_history, item_features=model.item_features,
                   user_features=model.user_features, **options)  # type: ignore[arg-type]

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.train) / self.batch_size)

    def epoch_order(self, epoch: int, seed: int) -> np.ndarray:
        """(N,) the example order of ``epoch``."""
        return np.random.default_rng([seed, epoch]).permutation(len(self.train))

    def batches(self, epoch: int, seed: int, start_step: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` from ``start_step`` on."""
        order = self.epoch_order(epoch, seed)
        for step in range(start_step, self.num_batches):
            examples = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.build(examples, np.random.default_rng([seed, epoch, step, 1]))

    def build(self, examples: np.ndarray, rng: np.random.Generator) -> Batch:
        """The batch of training interactions at positions ``examples``."""
        users = self.train.user_ids[examples]
        items = self.train.item_ids[examples]
        size = len(examples)
        history = None
        if self.use_history:
            history = self.histories.gather(
                users, self.max_history,
                drop_position=self.histories.position[examples], drop_item=items,
            )
            if self.history_dropout > 0:
                history = _drop_items(history, self.history_dropout, rng)
        id_rows = users
        if self.user_id_dropout > 0:
            # train the id-less path that serves users known only by their history
            id_rows = np.where(rng.random(size) < self.user_id_dropout, -1, users)
        batch = Batch(
            user_features=user_features_kjt(id_rows, self.user_features),
            item_features=item_features_kjt(items, self.item_features, history),
            user_ids=torch.from_numpy(users),
            item_ids=torch.from_numpy(items),
            weights=None if self.weights is None else torch.from_numpy(self.weights[examples]),
            examples=torch.from_numpy(np.asarray(examples, dtype=np.int64)),
        )
        if self.logq_correction:
            expected = self.log_popularity[items] + math.log(size)
            batch.log_q = torch.from_numpy(expected.astype(np.float32))
        if self.num_negatives > 0:
            negatives = rng.integers(0, self.catalog_size, self.num_negatives)
            batch.negative_ids = torch.from_numpy(negatives)
            batch.negative_features = item_features_kjt(negatives, self.item_features)
            if self.logq_correction:
                uniform = math.log(self.num_negatives / self.catalog_size)
                batch.negative_log_q = torch.full((self.num_negatives,), uniform)
        return batch


def _drop_items(
    history: tuple[np.ndarray, np.ndarray], rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each history item independently left out with probability ``rate``: the user tower
    learns from partial histories, as a cold user's or a denoising autoencoder's input."""
    lengths, values = history
    keep = rng.random(len(values)) >= rate
    rows = np.repeat(np.arange(len(lengths)), lengths)
    return np.bincount(rows[keep], minlength=len(lengths)).astype(np.int64), values[keep]

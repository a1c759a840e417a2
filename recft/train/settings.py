"""PretrainConfig: what a pretraining run is asked to do (``History`` says what it did)."""

from __future__ import annotations

from dataclasses import dataclass

from recft.config import ConfigError, ConfigMixin
from recft.train.history import History
from recft.train.optimizers import DENSE_OPTIMIZERS, EMBEDDING_OPTIMIZERS

LOSSES = ("softmax", "bpr")
ITEM_INITS = ("random", "cooccurrence")  # how item_id rows start (recft.models.item_init)


@dataclass
class PretrainConfig(ConfigMixin):
    """How to pretrain: schedule, optimizers, loss, negatives, early stopping, seed.

    Example::

        model, history = pretrain(train, valid=valid,
                                  pretrain_config=PretrainConfig(epochs=5, seed=1))
    """

    epochs: int = 60  # with patience 6: early stopping, not the cap, ends a run (explore_ml100k)
    batch_size: int = 256
    embedding_optimizer: str = "rowwise_adagrad"  # fused in backward; or "sparse_adam", ...
    embedding_lr: float = 0.05
    dense_optimizer: str = "adam"  # towers
    lr: float = 1e-3  # dense layers
    weight_decay: float = 0.0  # dense layers
    loss: str = "softmax"  # "softmax" (in-batch + extra negatives) or "bpr"
    num_negatives: int = 0  # uniform negatives shared by a batch (bpr needs >= 1)
    logq_correction: bool = True  # subtract log popularity from in-batch logits
    temperature: float | None = None  # None: the model's config.temperature
    user_id_dropout: float = 0.0  # share of examples trained without their user id
    history_dropout: float = 0.5  # share of history items hidden from each example
    item_init: str = "random"  # or "cooccurrence": item rows from a PMI SVD (models.item_init)
    early_stopping_metric: str = "ndcg@10"
    patience: int = 6  # epochs without improvement before stopping (needs valid)
    seed: int = 0
    checkpoint_every: int = 0  # steps between resume checkpoints (0: by time and epoch only)
    checkpoint_seconds: float = 600.0  # seconds between resume checkpoints inside an epoch
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("epochs must be >= 1 and batch_size >= 2")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss == "bpr" and self.num_negatives < 1:
            raise ConfigError("loss 'bpr' needs num_negatives >= 1")
        if self.embedding_optimizer not in EMBEDDING_OPTIMIZERS:
            raise ConfigError(f"embedding_optimizer must be one of {EMBEDDING_OPTIMIZERS}")
        if self.dense_optimizer not in DENSE_OPTIMIZERS:
            raise ConfigError(f"dense_optimizer must be one of {DENSE_OPTIMIZERS}")
        if self.item_init not in ITEM_INITS:
            raise ConfigError(f"item_init must be one of {ITEM_INITS}, got {self.item_init!r}")
        if "@" not in self.early_stopping_metric:
            raise ConfigError("early_stopping_metric must look like 'ndcg@10'")
        for name in ("user_id_dropout", "history_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")


__all__ = ["History", "LOSSES", "PretrainConfig"]

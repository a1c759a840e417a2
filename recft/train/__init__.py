"""recft.train: the one training engine (pretraining and every fine-tuning stage).

Modules:
    fit          fit(): the only epoch loop: progress, loss guard, validation, early
                 stopping, best weights, resumable state, device placement
    optimizers   Optimizers: fused / sparse tables, dense layers, per-row LR scales,
                 warm-up, frozen parameters without state
    fused_tables FusedTables: a collection whose trainable tables update in backward
    objectives   the retrieval loss of a batch (sampled softmax with logQ, or BPR)
    history      History: what a run did, epoch by epoch
    pretrain     pretrain(): a TwoTower from scratch, as a setup over fit
    settings     PretrainConfig
    batches      Batch, BatchBuilder: interactions -> KeyedJaggedTensor batches, negatives
    losses       sampled softmax (in-batch, logQ), BPR, MSE, BCE (pure functions)
    rng          every RNG's state, for resuming
    state        save_training_state / load_training_state (atomic, safetensors)
"""

from __future__ import annotations

# Imported eagerly: the function ``pretrain`` shares its name with its module, and only a
# binding made here, after the submodule is loaded, keeps ``recft.train.pretrain`` the function.
from recft.train.batches import Batch, BatchBuilder
from recft.train.fit import FitSettings, LoopState, fit
from recft.train.history import History
from recft.train.losses import bce_loss, bpr_loss, mse_loss, sampled_softmax_loss
from recft.train.optimizers import OptimizerSettings, Optimizers
from recft.train.pretrain import pretrain
from recft.train.settings import PretrainConfig

__all__ = [
    "Batch",
    "BatchBuilder",
    "FitSettings",
    "History",
    "LoopState",
    "OptimizerSettings",
    "Optimizers",
    "PretrainConfig",
    "bce_loss",
    "bpr_loss",
    "fit",
    "mse_loss",
    "pretrain",
    "sampled_softmax_loss",
]

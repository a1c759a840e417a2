"""recft.train: pretraining loop, losses, batches and optimizers.

Modules:
    pretrain  pretrain(): the loop with validation, early stopping, determinism and
              resumable state
    settings  PretrainConfig (what to do) and History (what happened)
    batches   Batch, BatchBuilder: interactions -> KeyedJaggedTensor batches, negatives
    losses    sampled softmax (in-batch, logQ), BPR, MSE, BCE
    optim     TrainingOptimizers: fused / sparse table updates, dense optimizers
    state     save_training_state / load_training_state (atomic, safetensors)
"""

from __future__ import annotations

# Imported eagerly: the function ``pretrain`` shares its name with its module, and only a
# binding made here, after the submodule is loaded, keeps ``recft.train.pretrain`` the function.
from recft.train.batches import Batch, BatchBuilder
from recft.train.losses import bce_loss, bpr_loss, mse_loss, sampled_softmax_loss
from recft.train.optim import TrainingOptimizers
from recft.train.pretrain import pretrain
from recft.train.settings import History, PretrainConfig

__all__ = [
    "Batch",
    "BatchBuilder",
    "History",
    "PretrainConfig",
    "TrainingOptimizers",
    "bce_loss",
    "bpr_loss",
    "mse_loss",
    "pretrain",
    "sampled_softmax_loss",
]

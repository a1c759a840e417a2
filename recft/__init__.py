"""recft: fine-tune pretrained torchrec recommenders.

Subpackages:
    recft.data       Interactions, loaders (MovieLens, Last.fm, your files), splits, synthetic data
    recft.models     TwoTower (torchrec EBC + MLP towers), fine-tuned models, heads,
                     adapters, checkpoints, baselines
    recft.train      the one training engine (fit, optimizers), pretraining, losses, batches
    recft.finetune   recipes: frozen -> full stages, new ids, adapter deltas, comparisons
    recft.text       item texts and text encoders (MiniLM, TF-IDF), cached vectors
    recft.evaluate   full-ranking metrics, segments, evaluation
    recft.notebooks  papermill runs that produce reports/
    recft.serving    Recommender facade, batch scoring, export
    recft.cli        the ``recft`` command

Heavy imports (torch, torchrec) happen on first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from recft._version import __version__

_LAZY = {
    "Interactions": "recft.data",
    "Vocabulary": "recft.data",
    "TwoTower": "recft.models",
    "TwoTowerConfig": "recft.models",
    "PretrainConfig": "recft.train",
    "pretrain": "recft.train",
    "evaluate": "recft.evaluate",
    "finetune": "recft.finetune",
    "Recipe": "recft.finetune",
    "compare": "recft.finetune",
    "Recommender": "recft.serving",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "evaluate":  # the subpackage itself is callable: recft.evaluate(model, test, ...)
        return importlib.import_module("recft.evaluate")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recft' has no attribute {name!r}")

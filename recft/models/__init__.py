"""recft.models: the TwoTower retrieval model, its inputs, and checkpoints.

Modules:
    two_tower     TwoTower (torchrec EBC + MLP towers, score, encode)
    architecture  TwoTowerConfig: architecture and table sizes, checked against the data
    inputs        UserHistories (CSR) and the KeyedJaggedTensors the towers read
    checkpoint    save_pretrained / from_pretrained

Heavy imports (torch, torchrec) happen on first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TwoTower": "two_tower",
    "TwoTowerConfig": "architecture",
    "UserHistories": "inputs",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"recft.models.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'recft.models' has no attribute {name!r}")

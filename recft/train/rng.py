"""Every random-number generator a training run draws from, captured without pickle."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch, numpy (global) and Python RNG states as tensors plus JSON-ready metadata.

    Dropout draws from torch's; the other two are kept so that user code relying on them
    resumes the same way too. Batches do not use them (their randomness is a function of
    seed, epoch and step).
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {"rng/torch": torch.get_rng_state(),
               "rng/numpy": torch.from_numpy(keys.astype(np.int64))}
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(tensors["rng/torch"])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


__all__ = ["rng_state", "set_rng_state"]

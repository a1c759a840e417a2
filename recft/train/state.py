"""Resumable training state: weights, optimizer state, RNG and progress, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from recft.errors import CheckpointError
from recft.io import atomic_directory

STATE_DIR = "state"
TENSORS_NAME = "state.safetensors"
META_NAME = "state.json"


def save_training_state(
    resume_dir: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``resume_dir/state/`` (tensors as safetensors, the rest as JSON) in one rename,
    so a kill at any instant leaves the previous complete state or this one.

    Returns:
        The state directory.
    """
    target = Path(resume_dir) / STATE_DIR
    # safetensors refuses views that share storage (fused tables are views of one buffer)
    flat = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    with atomic_directory(target) as staging:
        save_file(flat, str(staging / TENSORS_NAME))
        (staging / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return target


def load_training_state(
    resume_dir: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The state saved in ``resume_dir``, or None when there is none yet."""
    target = Path(resume_dir) / STATE_DIR
    if not target.is_dir():
        return None
    try:
        meta = json.loads((target / META_NAME).read_text(encoding="utf-8"))
        tensors = load_file(str(target / TENSORS_NAME))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{target}: unreadable training state: {error}") from None
    return tensors, meta


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` with the prefix removed."""
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}

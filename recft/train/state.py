"""Resumable training state: weights, optimizer state, RNG and progress, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recft.errors import CheckpointError
from recft.io import atomic_directory, recover_directory
from recft.models import checkpoint_checks as checks
from recft.models import checkpoint_io as cio

STATE_DIR = "state"
TENSORS_NAME = "state.safetensors"
META_NAME = "state.json"


def save_training_state(
    resume_dir: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``resume_dir/state/`` (tensors as safetensors, the rest as JSON, and
    ``checksums.json`` last) in one atomic swap, so a kill at any instant leaves the
    previous complete state or this one.

    Returns:
        The state directory.
    """
    target = Path(resume_dir) / STATE_DIR
    # safetensors refuses views that share storage (fused tables are views of one buffer)
    flat = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    with atomic_directory(target) as staging:
        save_file(flat, str(staging / TENSORS_NAME))
        (staging / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        cio.write_checksums(staging)
    return target


def load_training_state(
    resume_dir: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The state saved in ``resume_dir``, or None when there is none yet.

    Raises:
        CheckpointError: the state is incomplete, altered or unreadable (checksums, JSON and
            safetensors are all checked); the message says to delete ``resume_dir``.
    """
    target = Path(resume_dir) / STATE_DIR
    recover_directory(target)
    if not target.is_dir():
        return None
    if not (target / cio.CHECKSUMS_NAME).is_file():
        raise CheckpointError(f"resume state {target} lacks {cio.CHECKSUMS_NAME} (written "
                              "last; a state saved by recft before it was recorded has none): "
                              f"delete {resume_dir} to start this run from the beginning")
    try:
        checksums = checks.read_checksums(target, (TENSORS_NAME, META_NAME))
        checks.verify_checksums(target, checksums)
        meta = cio.read_json(target / META_NAME, target)
        tensors = _read_tensors(target / TENSORS_NAME, target)
    except CheckpointError as error:
        raise CheckpointError(
            f"resume state {error} (delete {resume_dir} to start this run from the beginning, "
            "or write the run to another output)"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"resume state {target}: {META_NAME} is not a JSON object (delete "
                              f"{resume_dir} to start this run from the beginning)")
    return tensors, meta


def _read_tensors(path: Path, target: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{target}: {path.name} is corrupt or truncated and cannot be "
                              f"read ({error})") from None


def optimizer_state_tensors(
    optimizers: list[tuple[str, torch.optim.Optimizer]],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Plain torch optimizers' state as flat named tensors (``label/index/key``) plus
    JSON-ready metadata (param groups and non-tensor state), so no pickle is needed.

    Args:
        optimizers: ``(label, optimizer)`` pairs; labels must be unique and contain no "/".
    """
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for label, optimizer in optimizers:
        state = optimizer.state_dict()
        scalars: dict[str, Any] = {}
        for index, values in state["state"].items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{label}/{index}/{key}"] = value.detach().clone()
                else:
                    # Python numbers stay Python numbers (SparseAdam's step is an int: as a
                    # float32 tensor its bias correction would round differently)
                    scalars[f"{index}/{key}"] = value
        meta[label] = {"param_groups": state["param_groups"], "scalars": scalars}
    return tensors, meta


def load_optimizer_state_tensors(
    optimizers: list[tuple[str, torch.optim.Optimizer]],
    tensors: dict[str, torch.Tensor], meta: dict[str, Any],
) -> None:
    """Restore what ``optimizer_state_tensors`` returned into optimizers built the same way."""
    for label, optimizer in optimizers:
        if label not in meta:
            raise CheckpointError(f"saved optimizer state has no optimizer {label!r}")
        state: dict[int, dict[str, Any]] = {}
        entries = split_prefix(tensors, f"{label}/")
        entries.update(meta[label]["scalars"])
        for key, value in entries.items():
            index, name = key.split("/", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta[label]["param_groups"]})


def as_json(values: Any) -> Any:
    """``values`` as read back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(values))


def data_fingerprint(train: Any) -> dict[str, int]:
    """Cheap identity of an ``Interactions``: a resumed run must see the same examples."""
    return {"interactions": len(train), "users": train.user_vocab_size,
            "items": train.catalog_size,
            "checksum": int((train.user_ids * 1_000_003 + train.item_ids).sum() % (2**61 - 1))}


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` with the prefix removed."""
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}

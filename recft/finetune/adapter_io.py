"""Save a fine-tuning delta (adapters, heads, new rows) alone; load it onto its base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recft._version import __version__
from recft.data.features import EntityFeatures
from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError
from recft.finetune.recipe import Recipe
from recft.finetune.vocab_transfer import align_vocabulary
from recft.io import atomic_directory
from recft.models import checkpoint_io as cio
from recft.models.adapters import LowRankEmbeddingBag, adapter_modules, attach_adapters
from recft.models.finetuned import attach_heads
from recft.models.roles import ADAPTER_MARK, ParameterRoles

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FEATURES_STEM = "item_features"
FORMAT = "recft-adapter"
_INDEX = "@index"  # suffix of the row indices of a sparsely stored table tensor
FORMAT_VERSION = 1


def save_adapter(model: nn.Module, directory: str | Path, base_dir: str | Path,
                 roles: ParameterRoles, *, recipe: Recipe | None = None) -> Path:
    """Write the delta of a fine-tuned model against the checkpoint at ``base_dir``.

    ``adapter.safetensors`` holds the adapter factors (``*.lora_*``), the parameters of
    attached heads, and the rows appended to tables for new ids (``<table>@new_rows``);
    table-shaped tensors keep only their non-zero rows (``<key>@index`` lists them).
    ``adapter_config.json`` holds the adapter layout, the heads, the new raw ids, and the
    base checkpoint's path and sha256 of its weights, checked when loading.

    Args:
        roles: the base's parameters and the grown tables' first new rows
            (``FineTuneResult.roles``): everything else is the delta.

    Returns:
        The adapter directory.
    """
    base_dir = Path(base_dir)
    base_weights = base_dir / "model.safetensors"
    if not base_weights.is_file():
        raise CheckpointError(f"{base_dir}: not a checkpoint (model.safetensors missing)")
    pretrained = roles.pretrained
    tensors: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if name.endswith(f"{ADAPTER_MARK}rows"):
            tensors.update(_sparse_rows(name, param.detach(), 0))
        elif name not in pretrained:  # adapters and heads
            tensors[name] = param.detach().cpu().contiguous().clone()
    grown = roles.first_new_rows
    params = dict(model.named_parameters())
    for name, first in grown.items():
        tensors.update(_sparse_rows(f"{name}@new_rows", params[name].detach(), first))
    modules = {name: ("table" if isinstance(m, LowRankEmbeddingBag) else "linear")
               for name, m in adapter_modules(model).items()}
    first_module = next(iter(adapter_modules(model).values()), None)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "recft_version": __version__,
        "base": {"path": str(base_dir), "sha256": cio.sha256_file(base_weights)},
        "rank": getattr(first_module, "rank", None),
        "scale": getattr(first_module, "scale", None),
        "modules": modules,
        "heads": dict(getattr(model.config, "heads", {}) or {}),
        "new_ids": _new_ids(model, base_dir),
        "recipe": None if recipe is None else recipe.to_dict(),
    }
    directory = Path(directory)
    with atomic_directory(directory) as staging:
        cio.save_tensors(tensors, staging / ADAPTER_WEIGHTS)
        if model.item_features and config["new_ids"]["items"]:
            cio.write_features(model.item_features, staging / ADAPTER_FEATURES_STEM)
        cio.write_json(staging / ADAPTER_CONFIG, config)
    return directory


def load_adapter(base_dir: str | Path, adapter_dir: str | Path, *, merge: bool = False,
                 verify_base: bool = True) -> nn.Module:
    """Load the base checkpoint and apply a delta written by ``save_adapter``.

    Args:
        merge: fold the adapters into the base weights (plain layers afterwards).
        verify_base: refuse a base whose weights' sha256 differs from the recorded one.

    Returns:
        The fine-tuned model in eval mode.
    """
    from recft.models.adapters import merge_adapters
    from recft.models.checkpoint import load_pretrained

    base_dir, adapter_dir = Path(base_dir), Path(adapter_dir)
    config = cio.read_json(adapter_dir / ADAPTER_CONFIG, adapter_dir)
    if config.get("format") != FORMAT or config.get("format_version", 99) > FORMAT_VERSION:
        raise CheckpointError(f"{adapter_dir}: not a recft adapter of format <= "
                              f"{FORMAT_VERSION} ({ADAPTER_CONFIG})")
    recorded = config["base"]["sha256"]
    if verify_base and cio.sha256_file(base_dir / "model.safetensors") != recorded:
        raise CheckpointError(
            f"{adapter_dir}: was trained on base {config['base']['path']} (sha256 "
            f"{recorded[:12]}...), but {base_dir}/model.safetensors differs; pass the same "
            "base checkpoint (or verify_base=False)"
        )
    tensors = cio.load_tensors(adapter_dir / ADAPTER_WEIGHTS, adapter_dir)
    model = load_pretrained(base_dir)
    roles = ParameterRoles.of(model)
    new_ids = config["new_ids"]
    if new_ids["users"] or new_ids["items"]:
        _grow_for(model, new_ids, adapter_dir)
    model = attach_heads(model, config["heads"])
    tables = [n for n, kind in config["modules"].items() if kind == "table"]
    linears = [n for n, kind in config["modules"].items() if kind == "linear"]
    if config["modules"]:
        targets = (["tables"] if tables else []) + (["towers"] if linears else [])
        wrapped = attach_adapters(model, config["rank"], targets,
                                  alpha=config["scale"] * config["rank"], roles=roles)
        if sorted(wrapped) != sorted(config["modules"]):
            raise CheckpointError(f"{adapter_dir}: adapter layout {sorted(config['modules'])} "
                                  f"does not fit the base model ({sorted(wrapped)})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in tensors.items():
            if key.endswith(_INDEX):
                continue
            name = key.partition("@")[0]
            if name not in params:
                raise CheckpointError(f"{adapter_dir}: tensor {key!r} has no place in the model")
            target = params[name]
            if f"{key}{_INDEX}" in tensors:
                index = tensors[f"{key}{_INDEX}"]
                if len(index) and int(index.max()) >= len(target):
                    raise CheckpointError(f"{adapter_dir}: rows of {key!r} exceed the table")
                target = target[index]  # a copy: written back below
            if tuple(target.shape) != tuple(value.shape):
                raise CheckpointError(f"{adapter_dir}: tensor {key!r} has shape "
                                      f"{tuple(value.shape)}, the model {tuple(target.shape)}")
            if f"{key}{_INDEX}" in tensors:
                params[name][tensors[f"{key}{_INDEX}"]] = value
            else:
                params[name].copy_(value)
    if merge:
        merge_adapters(model)
    return model.eval()


def delta_size(base_dir: str | Path, adapter_dir: str | Path) -> dict[str, Any]:
    """Bytes of the adapter weights vs the base weights, and their ratio."""
    base = (Path(base_dir) / "model.safetensors").stat().st_size
    delta = (Path(adapter_dir) / ADAPTER_WEIGHTS).stat().st_size
    return {"base_bytes": base, "adapter_bytes": delta, "ratio": delta / base}


def _sparse_rows(key: str, table: torch.Tensor, first: int) -> dict[str, torch.Tensor]:
    """Rows >= ``first`` of a table that are not all zero, with their row indices: a new
    user who never trained, or a low-rank row factor never looked up, costs nothing."""
    rows = table[first:]
    keep = torch.nonzero(rows.abs().sum(dim=1) != 0).flatten()
    return {key: rows[keep].cpu().contiguous().clone(),
            f"{key}{_INDEX}": (keep + first).to(torch.int64).cpu()}


def _new_ids(model: nn.Module, base_dir: Path) -> dict[str, list[Any]]:
    meta = cio.read_json(base_dir / "config.json", base_dir)
    users = meta.get("sizes", {}).get("num_users", len(model.user_vocab))
    items = meta.get("sizes", {}).get("num_items", len(model.item_vocab))
    return {"users": model.user_vocab.ids[users:].tolist(),
            "items": model.item_vocab.ids[items:].tolist()}


def _grow_for(model: nn.Module, new_ids: dict[str, list[Any]], adapter_dir: Path) -> None:
    """Grow the base model's vocabularies and tables exactly as fine-tuning did."""
    users = Vocabulary(np.asarray(new_ids["users"], dtype=model.user_vocab.ids.dtype)
                       if new_ids["users"] else model.user_vocab.ids[:0], name="user")
    items = Vocabulary(np.asarray(new_ids["items"], dtype=model.item_vocab.ids.dtype)
                       if new_ids["items"] else model.item_vocab.ids[:0], name="item")
    features = None
    stem = adapter_dir / ADAPTER_FEATURES_STEM
    if stem.with_suffix(".json").is_file():
        grown = cio.read_features(stem, adapter_dir)
        # the saved features cover the grown catalog; new items are its last rows
        rows = np.arange(len(model.item_vocab), len(model.item_vocab) + len(items))
        features = EntityFeatures({n: f.take(rows) for n, f in grown.items()})
    empty = np.zeros(0, dtype=np.int64)
    target = Interactions(empty, empty, users, items, item_features=features)
    align_vocabulary(model, target, init="zeros", user_init="zeros")

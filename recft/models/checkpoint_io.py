"""Checkpoint files: names, JSON, safetensors, features, checksums, provenance stamps."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recft._version import __version__
from recft.data.features import CategoricalFeature
from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError, DataError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAINING_NAME = "training.json"
CARD_NAME = "README.md"
CHECKSUMS_NAME = "checksums.json"  # written last: its presence marks a complete checkpoint
USERS_NAME = "vocab/users.json"
ITEMS_NAME = "vocab/items.json"
ITEM_FEATURES_STEM = "vocab/item_features"  # + .safetensors (jagged arrays), .json (vocabs)
USER_FEATURES_STEM = "vocab/user_features"
ITEM_ATTRIBUTES_NAME = "vocab/item_attributes.parquet"


def write_json(path: Path, value: Any, *, sort_keys: bool = True) -> None:
    """Write ``value`` as indented JSON (numpy scalars and paths converted)."""
    try:
        text = json.dumps(value, indent=2, sort_keys=sort_keys, default=_json_default)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path.name}: cannot write as JSON: {error}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def read_json(path: Path, directory: Path) -> Any:
    """Parse a checkpoint JSON file; missing or malformed files name themselves."""
    name = relative_name(path, directory)
    if not path.is_file():
        raise CheckpointError(f"{directory}: checkpoint file {name} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{directory}: {name} is corrupt (not valid JSON: {error})") from None


def relative_name(path: Path, directory: Path) -> str:
    try:
        return path.relative_to(directory).as_posix()
    except ValueError:
        return str(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serialisable")


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors with safetensors (never pickle); shared storage is copied apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", "recft_version": __version__})


def load_tensors(path: Path, directory: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; truncation or corruption becomes a CheckpointError."""
    name = relative_name(path, directory)
    if not path.is_file():
        raise CheckpointError(f"{directory}: checkpoint file {name} is missing")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{directory}: {name} is corrupt or truncated and cannot be read ({error}); "
            "re-save or re-download the checkpoint"
        ) from None


def state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict as contiguous CPU tensors that share no storage."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state-dict entry {name!r} is a {type(value).__name__}, "
                                  "not a tensor; only plain tensors can be saved")
        tensor = value.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        # tied weights share storage, which safetensors refuses: store each as its own copy
        if pointer in seen or tensor.untyped_storage().nbytes() != tensor.nbytes:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[name] = tensor
    bad = first_non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"cannot save {type(module).__name__}: {bad}")
    return tensors


def first_non_finite(tensors: dict[str, torch.Tensor], chunk: int = 1 << 24) -> str | None:
    """A description of the first floating-point tensor holding NaN or inf, or None.

    Checked ``chunk`` elements at a time, so a large table needs no full-size mask.
    """
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            continue
        flat = tensor.detach().reshape(-1)
        for start in range(0, flat.numel(), chunk):
            if bool(torch.isfinite(flat[start:start + chunk]).all()):
                continue
            bad = ~torch.isfinite(tensor.detach())
            first = tuple(int(i) for i in bad.nonzero()[0].tolist())
            return (f"tensor {name!r} has {int(bad.sum())} NaN/inf values (first at index "
                    f"{list(first)}, value {tensor[first].item()}); the training diverged or "
                    "the weights were altered")
    return None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tensor_manifest(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    return {name: {"shape": list(t.shape), "dtype": dtype_name(t.dtype)}
            for name, t in sorted(tensors.items())}


def write_features(features: dict[str, CategoricalFeature], stem: Path) -> None:
    """``stem.safetensors`` holds offsets/values/weights; ``stem.json`` the value vocabularies."""
    tensors: dict[str, torch.Tensor] = {}
    described: dict[str, Any] = {}
    for name, feature in features.items():
        tensors[f"{name}.offsets"] = torch.from_numpy(
            np.ascontiguousarray(feature.offsets, np.int64))
        tensors[f"{name}.values"] = torch.from_numpy(
            np.ascontiguousarray(feature.values, np.int64))
        if feature.weights is not None:
            tensors[f"{name}.weights"] = torch.from_numpy(
                np.ascontiguousarray(feature.weights, np.float32))
        described[name] = {"vocab": feature.vocab.to_dict(), "num_entities": feature.num_entities,
                           "weighted": feature.weights is not None}
    save_tensors(tensors, stem.with_suffix(".safetensors"))
    write_json(stem.with_suffix(".json"), described)


def read_features(stem: Path, directory: Path) -> dict[str, CategoricalFeature]:
    described = read_json(stem.with_suffix(".json"), directory)
    tensors = load_tensors(stem.with_suffix(".safetensors"), directory)
    where = relative_name(stem.with_suffix(".safetensors"), directory)
    features: dict[str, CategoricalFeature] = {}
    for name, info in described.items():
        try:
            vocab = Vocabulary.from_dict(info["vocab"], source=f"{where} feature {name!r}")
            weights = tensors[f"{name}.weights"].numpy() if info.get("weighted") else None
            features[name] = CategoricalFeature(
                tensors[f"{name}.offsets"].numpy(), tensors[f"{name}.values"].numpy(), vocab,
                weights,
            )
        except KeyError as missing:
            raise CheckpointError(f"{directory}: {where} lacks {missing} for feature "
                                  f"{name!r}") from None
        except DataError as error:
            raise CheckpointError(f"{directory}: {where} feature {name!r}: {error}") from None
    return features


def file_checksums(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` by POSIX relative path."""
    return {name: sha256_file(directory / name) for name in directory_files(directory)}


def write_checksums(directory: Path) -> dict[str, str]:
    """Write ``checksums.json`` (last: it marks the directory complete) listing every file."""
    files = {name: digest for name, digest in file_checksums(directory).items()
             if name != CHECKSUMS_NAME}
    write_json(directory / CHECKSUMS_NAME, {"algorithm": "sha256", "files": files})
    return files


def directory_files(directory: Path) -> list[str]:
    """POSIX relative paths of everything under ``directory`` but folders, sorted; a link
    counts as a file (and is never followed into another folder)."""
    names = []
    for root, folders, files in os.walk(directory):
        links = [name for name in folders if os.path.islink(os.path.join(root, name))]
        for name in (*files, *links):
            names.append(relative_name(Path(root) / name, directory))
    return sorted(names)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def environment_stamp() -> dict[str, Any]:
    """Versions and hardware of the process that saves, for ``training.json``."""
    versions = {"recft": __version__, "torch": torch.__version__,
                "python": platform.python_version(), "numpy": np.__version__}
    for package in ("torchrec", "fbgemm_gpu", "fbgemm-gpu-cpu", "pandas", "safetensors"):
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    hardware: dict[str, Any] = {
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return {
        "versions": versions,
        "hardware": hardware,
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def stamp_training(training: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's training record plus auto-stamped versions, hardware and timestamp.

    The caller's values win, except that ``versions`` is merged so a partial override (for
    example the dataset loader's version) keeps the auto-detected library versions.
    """
    info = dict(training or {})
    stamp = environment_stamp()
    info["versions"] = {**stamp["versions"], **(info.get("versions") or {})}
    for key in ("hardware", "saved_at"):
        info.setdefault(key, stamp[key])
    return info
